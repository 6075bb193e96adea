"""``evaluate`` and ``export``: does ablating heads break refusal, and the ablated weights.

``evaluate`` generates answers with ``--heads`` ablated, judges them (the default content
judge, ``--judge keyword`` for the paper's, or a ``--classifier``) and writes the attack
success rate with its 95% Clopper-Pearson interval, the keyword judge's beside it, the
count of each label and every response to ``--out``; the file is written after every batch and a
re-run with the same arguments resumes it. ``--curve`` evaluates the first 0, 1, ..., k
heads of ``--heads`` in order (a Sahara order; ``--heads-from sahara.json`` reads one).
``export`` writes a Hugging Face checkpoint with the ablation baked into the weights.
"""

import argparse
import json
from pathlib import Path

from safety_heads.cli.common import (
    Runner,
    add_ablation_options,
    add_judge_options,
    add_model_options,
    add_prompt_options,
    judge_from_args,
    load_from_args,
    print_json,
    prompts_from_args,
)
from safety_heads.errors import InputError

PAPER_TOP_K = 5


def register(subparsers) -> dict[str, Runner]:
    evaluate = subparsers.add_parser(
        "evaluate", help="generate answers with heads ablated, judge them, report the ASR"
    )
    add_model_options(evaluate)
    add_prompt_options(evaluate)
    add_ablation_options(evaluate)
    which = evaluate.add_mutually_exclusive_group()
    which.add_argument(
        "--heads",
        default="",
        help="heads to ablate, e.g. 2.26,5.1 (layer.head, 0-based; "
        "default: none, the model as it is)",
    )
    which.add_argument(
        "--heads-from",
        default=None,
        metavar="FILE",
        help="read the heads, in order, from the 'heads' list of a result JSON (e.g. the "
        "output of safety-heads sahara)",
    )
    evaluate.add_argument(
        "--curve",
        action="store_true",
        help="evaluate the first 0, 1, ..., k of --heads in order (ASR vs number of heads)",
    )
    evaluate.add_argument(
        "--max-new-tokens", type=int, default=128, help="answer length cap (default: %(default)s)"
    )
    evaluate.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="prompts per generation batch (default: %(default)s)",
    )
    evaluate.add_argument(
        "--sample", action="store_true", help="top-k sampling seeded by --seed instead of greedy"
    )
    evaluate.add_argument(
        "--top-k",
        type=int,
        default=None,
        help=f"with --sample: sample from the K likeliest tokens (default: {PAPER_TOP_K}, "
        "the paper's)",
    )
    add_judge_options(evaluate)
    evaluate.add_argument(
        "--out", required=True, help="result JSON, written as it goes; re-run to resume"
    )
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")

    export = subparsers.add_parser(
        "export", help="write a Hugging Face checkpoint with heads ablated in its weights"
    )
    add_model_options(export)
    add_ablation_options(export)
    export.add_argument("--heads", required=True, help="heads to ablate, e.g. 2.26,5.1")
    export.add_argument("--out", required=True, help="folder to write the checkpoint to")
    export.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out if it holds an earlier export (a folder of other files, or one "
        "that holds the current folder, is never replaced)",
    )
    return {"evaluate": run_evaluate, "export": run_export}


def _heads_from_args(args: argparse.Namespace) -> tuple:
    from safety_heads.method.heads import parse_heads

    if args.heads_from is None:
        return parse_heads(args.heads)
    path = Path(args.heads_from)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"--heads-from {path}: cannot read it as JSON ({error}).") from error
    if isinstance(data, dict) and data.get("kind") == "ships":
        ranking = ",".join(f"{h['layer']}.{h['head']}" for h in (data.get("top") or [])[:3])
        raise InputError(
            f"--heads-from {path} is a Ships result: it scores heads one at a time and its "
            "'heads' are the heads it scored, not an order to ablate. Pick heads from its "
            f"ranking ('top'): e.g. its best three, --heads {ranking or 'L.H,L.H,L.H'}; or "
            "pass a Sahara result, whose heads are an order."
        )
    if not isinstance(data, dict) or not isinstance(data.get("heads"), list):
        raise InputError(
            f"--heads-from {path} has no 'heads' list; pass a result file of safety-heads "
            'sahara (or any JSON with "heads": ["2.26", ...]), or use --heads.'
        )
    return parse_heads(data["heads"])


def run_evaluate(args: argparse.Namespace) -> int:
    from safety_heads.checkpoint import check_result_path
    from safety_heads.evaluation.asr import asr_curve, evaluate_asr
    from safety_heads.evaluation.generation import GenerationConfig
    from safety_heads.method.ablation import Ablation

    if args.top_k is not None and not args.sample:
        raise InputError(f"--top-k {args.top_k} only applies with --sample (greedy otherwise).")
    config = GenerationConfig(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.sample,
        top_k=(args.top_k or PAPER_TOP_K) if args.sample else None,
        seed=args.seed,
        batch_size=args.batch_size,
        template=args.template,
        system=args.system,
    )
    ablation = Ablation.of(_heads_from_args(args), args.ablation, args.epsilon)
    if args.curve and not ablation.heads:
        raise InputError("--curve needs --heads: the order of heads to ablate one by one.")
    judge = judge_from_args(args)
    prompts = prompts_from_args(args)
    check_result_path(args.out, "asr-curve" if args.curve else "evaluate")
    model = load_from_args(args)
    if args.curve:
        curve = asr_curve(
            model,
            prompts,
            ablation,
            judge=judge,
            config=config,
            out=args.out,
            progress=not args.quiet,
        )
        summary = {
            key: curve.to_json()[key]
            for key in ("order", "judge", "asr", "asr_ci", "keyword_asr", "labels", "n")
        }
    else:
        result = evaluate_asr(
            model,
            prompts,
            ablation,
            judge=judge,
            config=config,
            out=args.out,
            progress=not args.quiet,
        )
        data = result.to_json()
        summary = {
            "heads": data["heads"],
            "judge": data["judge"],
            "asr": data["asr"],
            "asr_ci": data["asr_ci"],
            "keyword_asr": data["keyword"]["asr"],
            "labels": data["labels"],
            "n": data["n"],
        }
    print_json({**summary, "out": str(args.out)})
    return 0


def run_export(args: argparse.Namespace) -> int:
    from safety_heads.evaluation.export import check_export_target, export_ablated
    from safety_heads.method.ablation import Ablation

    ablation = Ablation.of(args.heads, args.ablation, args.epsilon)
    if not ablation.heads:
        raise InputError("--heads names no heads; pass e.g. --heads 2.26,5.1.")
    check_export_target(Path(args.out), args.overwrite)  # before the slow model load
    model = load_from_args(args)
    report = export_ablated(model, ablation, args.out, overwrite=args.overwrite)
    print_json(report.to_json())
    return 0
