"""The ``safety-heads`` command line.

Each module of this package adds its subcommands through ``register(subparsers)``, which
returns ``{name: runner}``; a runner takes the parsed arguments and returns an exit code.
Output files are JSON; progress bars and summaries go to stderr and stdout.
"""

import argparse
import importlib
import logging
import os
import pkgutil
from collections.abc import Sequence

from safety_heads.cli.common import Runner

__all__ = ["main", "build_parser"]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Runner]]:
    parser = argparse.ArgumentParser(
        prog="safety-heads",
        description="Find and test the attention heads a chat model relies on to refuse.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runners: dict[str, Runner] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            runners.update(register(subparsers))
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
