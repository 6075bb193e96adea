"""Options and helpers shared by the subcommands."""

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

Runner = Callable[[argparse.Namespace], int]


def add_model_options(parser: argparse.ArgumentParser) -> None:
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


def add_prompt_options(parser: argparse.ArgumentParser, default: str = "advbench") -> None:
    parser.add_argument(
        "--prompts", default=default, help="bundled set name or file (default: %(default)s)"
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


def add_ablation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ablation", default="undifferentiated", choices=["undifferentiated", "scale", "mean"],
        help="how to knock out a head (default: %(default)s, the paper's favourite)",
    )
    parser.add_argument(
        "--epsilon", type=float, default=1e-5, help="ablation factor (default: %(default)s)"
    )


def load_from_args(args: argparse.Namespace) -> Any:
    """The model named by ``--model`` with ``--dtype``, ``--device``, ``--threads``."""
    from safety_heads.models import load_model

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return load_model(args.model, dtype=args.dtype, device=args.device, chat_format=args.chat_format)


def prompts_from_args(args: argparse.Namespace) -> list[str]:
    from safety_heads.datasets import load_prompts

    return load_prompts(
        args.prompts, column=args.column, limit=args.limit, shuffle=args.shuffle, seed=args.seed
    )


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
