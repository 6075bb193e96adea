"""The ``safety-heads`` command line.

Every subcommand is a pair: ``_add_NAME(subparsers)`` declares its options and
``_run_NAME(args)`` does the work through the library. Output files are JSON; progress
and summaries go to stderr and stdout.
"""

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

__all__ = ["main", "build_parser"]

Runner = Callable[[argparse.Namespace], int]


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="smollm2-135m-instruct",
        help="bundled model name, local folder, .gguf file or hub id (default: %(default)s)",
    )
    parser.add_argument("--dtype", default=None, help="float32, bfloat16 or float16")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    parser.add_argument(
        "--chat-format",
        default="auto",
        choices=["auto", "tokenizer", "llama-2", "vicuna"],
        help="chat format for --template chat (default: the tokenizer's template)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )


def _add_prompt_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prompts", default="advbench", help="bundled set name or file (default: %(default)s)"
    )
    parser.add_argument("--column", default=None, help="prompt column/key in a CSV or JSONL")
    parser.add_argument("--limit", type=int, default=None, help="use the first N prompts")
    parser.add_argument(
        "--shuffle", action="store_true", help="draw a seeded random sample (with --limit)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for --shuffle and sampling")
    parser.add_argument(
        "--template", default="chat", choices=["chat", "query", "direct"],
        help="prompt format (default: %(default)s)",
    )
    parser.add_argument("--system", default=None, help="system prompt (default: none)")


def _load(args: argparse.Namespace):
    from safety_heads.models import load_model

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return load_model(args.model, dtype=args.dtype, device=args.device, chat_format=args.chat_format)


def _add_info(subparsers) -> Runner:
    parser = subparsers.add_parser("info", help="load a model and describe it")
    _add_model_options(parser)
    return _run_info


def _run_info(args: argparse.Namespace) -> int:
    model = _load(args)
    description = {
        "model": model.name,
        "source": model.source,
        "n_layers": model.n_layers,
        "n_heads": model.n_heads,
        "n_key_value_heads": model.n_kv_heads,
        "d_head": model.d_head,
        "chat_format": model.chat_format,
        "dtype": str(model.dtype).removeprefix("torch."),
        "device": str(model.device),
    }
    sys.stdout.write(json.dumps(description, indent=2) + "\n")
    return 0


def _add_format(subparsers) -> Runner:
    parser = subparsers.add_parser("format", help="show prompts exactly as the model sees them")
    _add_model_options(parser)
    _add_prompt_options(parser)
    parser.set_defaults(limit=3)
    return _run_format


def _run_format(args: argparse.Namespace) -> int:
    from safety_heads.datasets import load_prompts

    model = _load(args)
    prompts = load_prompts(
        args.prompts, column=args.column, limit=args.limit, shuffle=args.shuffle, seed=args.seed
    )
    batch = model.encode(prompts, template=args.template, system=args.system)
    for row, mask in zip(batch.input_ids, batch.attention_mask):
        ids = row[mask.bool()].tolist()
        decoded = model.tokenizer.decode(ids)
        sys.stdout.write(f"--- {len(ids)} tokens ---\n{decoded}\n")
    return 0


COMMANDS: tuple[Callable[..., Runner], ...] = (_add_info, _add_format)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Runner]]:
    parser = argparse.ArgumentParser(
        prog="safety-heads",
        description="Find and test the attention heads a chat model relies on to refuse.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    runners = {}
    for add in COMMANDS:
        before = set(subparsers.choices)
        runner = add(subparsers)
        (name,) = set(subparsers.choices) - before
        runners[name] = runner
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from safety_heads.models import ModelLoadError

    try:
        return runners[args.command](args)
    except (ValueError, ModelLoadError, FileExistsError) as error:
        parser.exit(2, f"safety-heads {args.command}: error: {error}\n")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
