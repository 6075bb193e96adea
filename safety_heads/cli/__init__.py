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
import sys
import traceback
import warnings
from collections.abc import Sequence

from safety_heads.cli.common import Runner
from safety_heads.errors import SafetyHeadsError

__all__ = ["main", "build_parser", "one_line"]


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
    """Run one command. A failure the user can fix (:class:`~safety_heads.errors.SafetyHeadsError`)
    prints one line and exits 2, Ctrl-C exits 130 (``--verbose`` adds the traceback to
    both); any other exception is a bug: its traceback, and a line asking for a report."""
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    prefix = f"safety-heads {args.command}"

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        sys.stderr.write(f"{prefix}: warning: {one_line(message)}\n")

    shown_by, warnings.showwarning = warnings.showwarning, show_warning
    try:
        return runners[args.command](args)
    except KeyboardInterrupt:
        if args.verbose:
            traceback.print_exc()
        parser.exit(
            130,
            f"{prefix}: interrupted; what was finished is saved: re-run the same "
            "command to resume.\n",
        )
    except (SafetyHeadsError, OSError) as error:  # OSError: a full disk, a permission
        if args.verbose:
            traceback.print_exc()
        parser.exit(2, f"{prefix}: error: {one_line(error)}\n")
    except Exception as error:
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(error, torch.OutOfMemoryError):
            if args.verbose:
                traceback.print_exc()
            parser.exit(
                2,
                f"{prefix}: error: out of memory ({one_line(error)[:160]}); lower "
                "--batch-size or --max-batch-tokens where the command has them, "
                "load the model in --dtype bfloat16, or use a larger device. A "
                "re-run resumes.\n",
            )
        traceback.print_exc()
        sys.stderr.write(
            f"{prefix}: unexpected error: this is a bug in safety-heads; please "
            "report it with the command line, the traceback above and the output of "
            "`pip list`.\n"
        )
        return 1
    finally:
        warnings.showwarning = shown_by
    return 1


def one_line(error: BaseException) -> str:
    """``error``'s message on one line (a library's message may span several)."""
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    raise SystemExit(main())
