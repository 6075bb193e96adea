"""``ships`` and ``sahara``: score heads on a prompt set, resumably."""

import argparse
import sys

from safety_heads.cli.common import (
    Runner,
    add_ablation_options,
    add_model_options,
    add_prompt_options,
    load_from_args,
    prompts_from_args,
)
from safety_heads.errors import InputError
from safety_heads.method.screens import SCREENS


def _add_scoring_options(parser: argparse.ArgumentParser) -> None:
    add_model_options(parser)
    add_prompt_options(parser)
    add_ablation_options(parser)
    parser.add_argument(
        "--via",
        default="query",
        choices=["query", "pattern"],
        help="undifferentiated attention by scaling the query (paper) or by an exactly "
        "uniform pattern (default: %(default)s)",
    )
    parser.add_argument("--heads", default=None, help="score only these heads, e.g. 2.26,5.1")
    parser.add_argument(
        "--screen",
        default=None,
        choices=list(SCREENS),
        help="rank every head with a fast screen first (atp: attribution patching of this "
        "run's ablation; direction: its write along the refusal direction, needs --control) "
        "and score only the best --keep exactly",
    )
    parser.add_argument("--keep", type=int, default=None, help="heads the screen passes on")
    parser.add_argument(
        "--control",
        default=None,
        help="control prompt set or file (e.g. harmless): adds control scores and the "
        "contrastive ranking",
    )
    parser.add_argument("--control-limit", type=int, default=None, help="use N control prompts")
    parser.add_argument(
        "--max-batch-tokens",
        type=int,
        default=None,
        help="rows x tokens per forward pass (default: what half the free memory holds, at "
        "most 65536 on a GPU and 4096 on a CPU); lower it if memory runs out",
    )
    parser.add_argument("--out", required=True, help="output JSON (also the resume checkpoint)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers) -> dict[str, Runner]:
    ships = subparsers.add_parser(
        "ships", help="Ships: KL shift of the first answer token when each head is ablated"
    )
    _add_scoring_options(ships)
    ships.add_argument("--top-k", type=int, default=10, help="per-prompt top-k for frequencies")
    sahara = subparsers.add_parser(
        "sahara", help="Sahara: greedy search for heads that disturb the harmful subspace"
    )
    _add_scoring_options(sahara)
    sahara.add_argument("--steps", type=int, default=3, help="heads to choose (default: 3)")
    sahara.add_argument("--rank", type=int, default=1, help="subspace rank r (default: 1)")
    sahara.add_argument(
        "--select",
        default="plain",
        choices=["plain", "contrast"],
        help="choose by the plain score (paper) or by score minus control score",
    )
    return {"ships": run_ships, "sahara": run_sahara}


def _control(args: argparse.Namespace) -> list[str] | None:
    from safety_heads.datasets import load_prompts

    if args.control is None:
        return None
    return load_prompts(
        args.control, limit=args.control_limit, shuffle=args.shuffle, seed=args.seed
    )


def _common(args: argparse.Namespace, kind: str) -> dict:
    """The settings shared by ships and sahara, checked before any model loads: the
    ablation's kind and epsilon, the prompt files, and the output path."""
    from safety_heads.checkpoint import check_result_path
    from safety_heads.method.ablation import Ablation
    from safety_heads.method.heads import parse_heads

    Ablation.of([], args.ablation, args.epsilon, args.via)  # refuses a bad kind or epsilon
    if args.heads is not None and not parse_heads(args.heads):
        raise InputError(
            "--heads names no heads; leave it out to score every head, or name "
            "some, e.g. --heads 2.26,5.1."
        )
    control = _control(args)
    if args.screen is not None:
        if args.heads is not None:
            raise InputError("Give --heads or --screen, not both.")
        if args.keep is None or args.keep < 1:
            raise InputError("--screen needs --keep K: how many of its best heads to score.")
        if args.screen == "direction" and control is None:
            raise InputError(
                "--screen direction contrasts with harmless prompts: add --control harmless, "
                "or use --screen atp."
            )
    elif args.keep is not None:
        raise InputError("--keep goes with --screen; leave it out, or add --screen atp.")
    check_result_path(args.out, kind)
    return dict(
        template=args.template,
        system=args.system,
        kind=args.ablation,
        epsilon=args.epsilon,
        via=args.via,
        heads=args.heads,
        screen=args.screen,
        keep=args.keep,
        control=control,
        max_batch_tokens=args.max_batch_tokens,
        checkpoint=args.out,
        progress=not args.quiet,
    )


def _report(title: str, rows: list[dict], label: str = "score") -> None:
    sys.stdout.write(f"{title}\n")
    for row in rows:
        sys.stdout.write(f"  head {row['layer']}.{row['head']:<4} {label} {row['score']:.6g}\n")


def run_ships(args: argparse.Namespace) -> int:
    from safety_heads.method.ships import ships

    if args.top_k < 1:
        raise InputError(f"--top-k must be >= 1 (heads counted per prompt), got {args.top_k}.")
    prompts, common = prompts_from_args(args), _common(args, "ships")
    model = load_from_args(args)
    result = ships(model, prompts, top_k=args.top_k, **common)
    _report(f"Ships, mean over {result.per_prompt.shape[0]} prompts (top 5):", result.top(5), "KL")
    if result.contrast is not None:
        _report("Contrast, harmful minus control (top 5):", result.top(5, by="contrast"), "dKL")
    sys.stdout.write(f"written to {args.out}\n")
    return 0


def run_sahara(args: argparse.Namespace) -> int:
    from safety_heads.method.sahara import sahara

    if args.steps < 1:
        raise InputError(f"--steps must be >= 1 (heads to choose), got {args.steps}.")
    if args.select == "contrast" and args.control is None:
        raise InputError(
            "--select contrast ranks heads by harmful minus control scores, so it "
            "needs control prompts: add --control harmless (or a file)."
        )
    prompts, common = prompts_from_args(args), _common(args, "sahara")
    model = load_from_args(args)
    result = sahara(model, prompts, steps=args.steps, rank=args.rank, select=args.select, **common)
    _report("Sahara heads, in order (score = principal angles, degrees):", result.chosen(), "angle")
    sys.stdout.write(f"written to {args.out}\n")
    return 0
