"""``compare``, ``report`` and ``demo``: see the results.

``compare A.json B.json --out FILE.html`` puts two Ships or Sahara results side by side
(one colour scale, the difference, a scatter) with their Spearman rank correlation and
top-k Jaccard overlap. ``report RESULT.json... --out FILE.html`` writes one self-contained
page of any result files. ``demo`` runs the main job end to end on the bundled models.
"""

import argparse
import math
import sys

from safety_heads.cli.common import Runner, print_json


def register(subparsers) -> dict[str, Runner]:
    from safety_heads.demo import DemoConfig

    defaults = DemoConfig()  # the demo's defaults live in one place

    compare = subparsers.add_parser(
        "compare", help="compare two Ships or Sahara results: heatmaps, Spearman, top-k overlap"
    )
    compare.add_argument("a", help="first result JSON (Ships or Sahara)")
    compare.add_argument("b", help="second result JSON (Ships or Sahara)")
    compare.add_argument("--out", required=True, help="HTML page to write")
    compare.add_argument(
        "--labels",
        nargs=2,
        default=None,
        metavar=("A", "B"),
        help="names of the two results (default: their file names)",
    )
    compare.add_argument(
        "--which",
        default=None,
        help="map to compare: mean, frequency, contrast, control (Ships) or step-S, "
        "contrast-S (Sahara); default: mean / step-1",
    )
    compare.add_argument(
        "--top-k", type=int, default=10, help="k of the top-k overlap (default: %(default)s)"
    )
    compare.add_argument(
        "--json",
        default=None,
        metavar="FILE",
        help="also write the comparison as JSON (for safety-heads report)",
    )

    report = subparsers.add_parser(
        "report", help="one self-contained HTML page of result files (no network needed)"
    )
    report.add_argument("results", nargs="+", help="result JSON files or export folders")
    report.add_argument("--out", required=True, help="HTML page to write")
    report.add_argument("--title", default="safety-heads report", help="page title")
    report.add_argument(
        "--labels", nargs="+", default=None, help="one name per result (default: the file names)"
    )
    report.add_argument(
        "--examples",
        type=int,
        default=5,
        help="judged answers shown per setting (default: %(default)s)",
    )

    demo = subparsers.add_parser(
        "demo", help="the main job end to end on the bundled models, with an HTML report"
    )
    demo.add_argument("--out", default="demo-out", help="output folder (default: %(default)s)")
    demo.add_argument(
        "--model", default=defaults.model, help="refusing model to dissect (default: %(default)s)"
    )
    demo.add_argument(
        "--base",
        default=defaults.base,
        help="its base model for the comparison, or 'none' (default: %(default)s)",
    )
    demo.add_argument(
        "--prompts",
        default=defaults.prompts,
        help="harmful prompt set or file (default: %(default)s)",
    )
    demo.add_argument(
        "--search-prompts",
        type=int,
        default=defaults.search_prompts,
        help="prompts to score heads and search on (default: %(default)s)",
    )
    demo.add_argument(
        "--eval-prompts",
        type=int,
        default=defaults.eval_prompts,
        help="further prompts of the set for the ASR (default: %(default)s)",
    )
    demo.add_argument(
        "--steps", type=int, default=defaults.steps, help="Sahara steps (default: %(default)s)"
    )
    demo.add_argument(
        "--shortlist",
        type=int,
        default=defaults.shortlist,
        help="search among the N best heads of step 1; 0: among all heads, the paper's "
        "exhaustive search, STEPS times slower (default: %(default)s)",
    )
    demo.add_argument(
        "--max-new-tokens",
        type=int,
        default=defaults.max_new_tokens,
        help="answer length (default: %(default)s)",
    )
    demo.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="answers generated at a time; lower it if memory runs short (default: %(default)s)",
    )
    demo.add_argument(
        "--ablation",
        default=defaults.kind,
        choices=["undifferentiated", "scale", "mean"],
        help="how heads are ablated (default: %(default)s)",
    )
    demo.add_argument(
        "--template",
        default=defaults.template,
        choices=["chat", "query", "direct"],
        help="prompt format (default: %(default)s)",
    )
    demo.add_argument("--no-export", action="store_true", help="skip writing the ablated model")
    demo.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    return {"compare": run_compare, "report": run_report, "demo": run_demo}


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def run_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from safety_heads.checkpoint import write_json_atomic
    from safety_heads.figures.compare import compare_results, read_scores
    from safety_heads.figures.report import ReportItem, report_html, sections_for, write_report

    labels = args.labels or [Path(args.a).stem, Path(args.b).stem]
    if labels[0] == labels[1]:
        labels = [args.a, args.b]
    comparison = compare_results(
        read_scores(args.a), read_scores(args.b), labels=labels, which=args.which, top_k=args.top_k
    )
    item = ReportItem("comparison", f"{labels[0]} vs {labels[1]}", comparison, "")
    page = report_html(sections_for([item]), title=f"{labels[0]} vs {labels[1]}")
    write_report(page, args.out)
    if args.json:
        write_json_atomic(Path(args.json), comparison.to_json())
    print_json(
        {
            "spearman": _number(comparison.spearman),
            "top_k": comparison.top_k,
            "jaccard": _number(comparison.jaccard),
            "shared": [str(h) for h in comparison.shared],
            "out": str(args.out),
        }
    )
    return 0


def run_report(args: argparse.Namespace) -> int:
    from safety_heads.figures.report import build_report, write_report

    page = build_report(args.results, labels=args.labels, title=args.title, examples=args.examples)
    path = write_report(page, args.out)
    sys.stdout.write(f"written to {path}\n")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from safety_heads.demo import DemoConfig
    from safety_heads.demo import run_demo as demo

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = DemoConfig(
        model=args.model,
        base=None if args.base is None or args.base.lower() == "none" else args.base,
        prompts=args.prompts,
        search_prompts=args.search_prompts,
        eval_prompts=args.eval_prompts,
        steps=args.steps,
        shortlist=args.shortlist or None,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        kind=args.ablation,
        template=args.template,
        export=not args.no_export,
    )
    result = demo(args.out, config, progress=not args.quiet)
    print_json(
        {
            "heads": [str(h) for h in result.heads],
            "asr": [round(a, 4) for a in result.asr],
            "keyword_asr": [round(a, 4) for a in result.keyword_asr],
            "spearman_vs_base": None if result.spearman is None else _number(result.spearman),
            "jaccard_vs_base": None if result.jaccard is None else _number(result.jaccard),
            "report": str(result.report),
            "files": {name: str(path) for name, path in result.files.items()},
        }
    )
    return 0
