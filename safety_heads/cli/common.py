"""Options and helpers shared by the subcommands."""

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from safety_heads.errors import InputError

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
        "--template",
        default="chat",
        choices=["chat", "query", "direct"],
        help="prompt format (default: %(default)s)",
    )
    parser.add_argument("--system", default=None, help="system prompt (default: none)")


def add_ablation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ablation",
        default="undifferentiated",
        choices=["undifferentiated", "scale", "mean"],
        help="how to knock out a head (default: %(default)s, the paper's favourite)",
    )
    parser.add_argument(
        "--epsilon", type=float, default=1e-5, help="ablation factor (default: %(default)s)"
    )


def add_judge_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--judge",
        default="content",
        choices=["content", "reader", "keyword"],
        help="content: the default judge (labels refusal, compliance, degenerate, echo, "
        "evasive, too_short; only compliance is an attack success); reader: the content "
        "judge with the reader probe, which also reads whether an answer serves the request "
        "(trained on this project's 135M-parameter organisms); keyword: the paper's "
        "keyword judge (default: %(default)s; the keyword figure is always kept beside it)",
    )
    parser.add_argument(
        "--classifier",
        default=None,
        metavar="MODEL",
        help="judge with a safety classifier (hub id or folder) instead",
    )
    parser.add_argument(
        "--classifier-preset",
        default=None,
        metavar="NAME",
        help="judge with a published classifier, prompted and read as published: "
        "llama-guard-3-1b, llama-guard-3-8b, harmbench-llama-2-13b, wildguard, ... "
        "(--classifier overrides where its weights are)",
    )
    parser.add_argument(
        "--classifier-template",
        default=None,
        metavar="FILE",
        help="text file with the classifier's prompt, holding {prompt} and {response} "
        "(default: the classifier's chat template)",
    )


def judge_from_args(args: argparse.Namespace) -> Any:
    """The judge the options name; files are read and names checked before any model loads."""
    from pathlib import Path

    from safety_heads.evaluation.classifiers import CLASSIFIER_PRESETS, ClassifierJudge
    from safety_heads.evaluation.judges import as_judge

    options = {"dtype": args.dtype, "device": args.device}
    if args.classifier_template is not None and args.classifier is None:
        raise InputError("--classifier-template needs --classifier MODEL.")
    if args.classifier_preset is not None:
        if args.classifier_preset not in CLASSIFIER_PRESETS:
            raise InputError(
                f"--classifier-preset {args.classifier_preset!r} is not one of "
                f"{', '.join(CLASSIFIER_PRESETS)}."
            )
        if args.classifier_template is not None:
            raise InputError(
                "--classifier-template cannot change a --classifier-preset's "
                "published prompt; use --classifier MODEL without a preset."
            )
        return ClassifierJudge.from_preset(args.classifier_preset, args.classifier, **options)
    if args.classifier is None:
        return as_judge(args.judge)
    template = "chat"
    if args.classifier_template is not None:
        path = Path(args.classifier_template)
        try:
            template = path.read_text()
        except OSError as error:
            raise InputError(
                f"--classifier-template {path}: cannot read it ({error.strerror or error})."
            ) from error
    return ClassifierJudge(args.classifier, template=template, **options)


def check_device_args(args: argparse.Namespace) -> None:
    """Refuse a ``--device`` torch does not know or this machine lacks, and ``--threads``
    below 1, with a one-line error."""
    import torch

    if args.threads is not None and args.threads < 1:
        raise InputError(
            f"--threads must be >= 1, got {args.threads} (leave it out for torch's choice)."
        )
    if args.device is None:
        return
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        raise InputError(
            f"--device {args.device!r} is not a device torch knows; use cpu, cuda, cuda:1, mps ..."
        ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"--device {args.device}: this torch has no CUDA device "
            f"(torch {torch.__version__}); use --device cpu or leave it out."
        )
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise InputError(
            f"--device {args.device}: only {torch.cuda.device_count()} CUDA device(s) here."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {args.device}: MPS is not available here; use --device cpu.")


def load_from_args(args: argparse.Namespace) -> Any:
    """The model named by ``--model`` with ``--dtype``, ``--device``, ``--threads``."""
    from safety_heads.models.chat_model import load_model

    check_device_args(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return load_model(
        args.model, dtype=args.dtype, device=args.device, chat_format=args.chat_format
    )


def prompts_from_args(args: argparse.Namespace) -> list[str]:
    from safety_heads.datasets import load_prompts

    return load_prompts(
        args.prompts, column=args.column, limit=args.limit, shuffle=args.shuffle, seed=args.seed
    )


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
