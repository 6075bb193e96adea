"""The exceptions this package raises for failures a user can fix.

Each message says what was wrong, what is allowed and what to do. The command line prints
such an error as one line and exits with status 2 (``--verbose`` adds the traceback); any
other exception is a bug in this package, shown with its traceback and a request to report
it. Each type also derives from the built-in exception a Python caller would expect
(``ValueError`` for bad input, ``FileExistsError`` for an output that is in the way), so
``except ValueError`` keeps working.
"""

__all__ = [
    "SafetyHeadsError",
    "InputError",
    "OutputExistsError",
    "MissingFileError",
    "ModelLoadError",
    "damaged_result",
    "first_line",
]


class SafetyHeadsError(Exception):
    """A failure the user can fix; its message names the problem and the fix."""


class InputError(SafetyHeadsError, ValueError):
    """An argument, file or setting that cannot be used as given."""


class OutputExistsError(SafetyHeadsError, FileExistsError):
    """An output path holds something this run may not replace."""


def damaged_result(source: object, kind: str, error: Exception) -> InputError:
    """The error for a result file of ``kind`` that parses as JSON but lacks what reading
    it needs (``error``: the KeyError, TypeError ... that showed it)."""
    missing = f"no field {error}" if isinstance(error, KeyError) else str(error)
    return InputError(
        f"{source} is not a complete {kind} result ({missing}): it is damaged or "
        "was written by another version; re-run the command that wrote it."
    )


class MissingFileError(SafetyHeadsError, FileNotFoundError):
    """A file the run needs is not there (the message says how to make it)."""


class ModelLoadError(SafetyHeadsError, RuntimeError):
    """A model could not be loaded; the message says why and what to do."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (a library's long error on one line)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
