"""``organism``: rebuild or re-measure the shipped refusing organisms."""

import argparse
import json
import sys

from safety_heads.cli.common import Runner


def register(subparsers) -> dict[str, Runner]:
    from safety_heads.organisms import ORGANISMS

    parser = subparsers.add_parser(
        "organism", help="rebuild (train) or re-evaluate a shipped refusing organism"
    )
    parser.add_argument("action", choices=["build", "evaluate", "card"])
    parser.add_argument("name", choices=sorted(ORGANISMS))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--max-new-tokens", type=int, default=64, help="evaluation answer length (default: 64)"
    )
    parser.add_argument("--limit", type=int, default=None, help="evaluate on N prompts per set")
    return {"organism": run_organism}


def run_organism(args: argparse.Namespace) -> int:
    import torch

    from safety_heads.organisms import read_card
    from safety_heads.training import build_organism, evaluate_organism

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.action == "build":
        card = build_organism(args.name)
        sys.stdout.write(f"trained {args.name}: {json.dumps(card['training'])}\n")
        evaluate_organism(args.name, max_new_tokens=args.max_new_tokens, limit=args.limit)
    elif args.action == "evaluate":
        evaluate_organism(args.name, max_new_tokens=args.max_new_tokens, limit=args.limit)
    sys.stdout.write(json.dumps(read_card(args.name), indent=1) + "\n")
    return 0
