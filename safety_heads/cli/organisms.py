"""``organism``: rebuild or re-measure the shipped refusing organisms."""

import argparse
import json
import sys
from pathlib import Path

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
    parser.add_argument(
        "--out",
        default=None,
        help="build: the folder to write the organism into (default: the user cache, "
        "~/.cache/safety-heads/organisms/NAME; never the installed package)",
    )
    parser.add_argument(
        "--folder",
        default=None,
        help="evaluate, card: an organism folder written by a build, instead of the shipped one",
    )
    return {"organism": run_organism}


def run_organism(args: argparse.Namespace) -> int:
    import torch

    from safety_heads.errors import InputError
    from safety_heads.organisms import (
        build_organism,
        default_build_folder,
        evaluate_organism,
        organism_path,
        read_card,
    )
    from safety_heads.organisms.training import check_build_folder

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.action == "build":
        if args.folder is not None:
            raise InputError("organism build writes into --out; --folder is for evaluate and card.")
        folder = Path(args.out).expanduser() if args.out else default_build_folder(args.name)
        check_build_folder(folder, args.name)  # before minutes of work
        card = build_organism(args.name, out=folder)
        sys.stdout.write(f"trained {args.name} into {folder}: {json.dumps(card['training'])}\n")
        evaluate_organism(folder, max_new_tokens=args.max_new_tokens, limit=args.limit)
        source: str | Path = folder
    else:
        if args.out is not None:
            raise InputError(f"organism {args.action} takes --folder, not --out.")
        source = Path(args.folder).expanduser() if args.folder else args.name
        if args.folder:
            organism_path(source)  # a folder that holds no build is refused here
            built = read_card(source)["name"]
            if built != args.name:
                raise InputError(f"{args.folder} holds a build of {built}, not of {args.name}.")
        if args.action == "evaluate":
            results = evaluate_organism(
                source, max_new_tokens=args.max_new_tokens, limit=args.limit
            )
            if not args.folder:  # the shipped card is not rewritten: print what was measured
                sys.stdout.write(json.dumps({"held_out": results}, indent=1) + "\n")
                return 0
    sys.stdout.write(json.dumps(read_card(source), indent=1) + "\n")
    return 0
