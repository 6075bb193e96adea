"""One way to load any result file this package writes: :func:`load_result`.

Every result is a dataclass with ``to_json()`` (the content of its file, without the run's
``kind``, ``settings`` and ``progress``, which the writer adds) and ``from_json(data)``
(from a file's content). A file names its kind, and loads as:

* ``ships``: :class:`~safety_heads.method.ships.ShipsResult` (``ships``, ``safety-heads ships``);
* ``sahara``: :class:`~safety_heads.method.sahara.SaharaResult` (``sahara``);
* ``evaluate``: :class:`~safety_heads.evaluation.asr.AsrResult` (``evaluate_asr``);
* ``asr-curve``: :class:`~safety_heads.evaluation.asr.AsrCurve` (``asr_curve``, ``--curve``);
* ``side-effects``: :class:`~safety_heads.evaluation.side_effects.SideEffects` (``side_effects``);
* ``comparison``: :class:`~safety_heads.figures.compare.MapComparison` (``compare --json``);
* ``attention``: :class:`~safety_heads.figures.attention.AttentionPatterns`;
* ``export``: :class:`~safety_heads.evaluation.export.ExportReport` (an export folder or its note);
* ``methods-benchmark``: :class:`~safety_heads.benchmark.MethodsBenchmark`
  (``benchmarks/methods.py``).

An unfinished run's file (a checkpoint) is refused with a message to finish it first;
a file that parses but lacks what its kind needs is refused as damaged.
"""

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from safety_heads.errors import InputError, damaged_result

__all__ = ["RESULT_KINDS", "load_result", "read_result_data", "result_from_data"]

RESULT_KINDS = (
    "ships",
    "sahara",
    "evaluate",
    "asr-curve",
    "side-effects",
    "comparison",
    "attention",
    "export",
    "methods-benchmark",
)
_CHECKPOINTED = ("ships", "sahara", "evaluate", "asr-curve", "side-effects")


def _readers() -> dict[str, Callable[[dict[str, Any]], Any]]:
    from safety_heads.benchmark import MethodsBenchmark
    from safety_heads.evaluation.asr import AsrCurve, AsrResult
    from safety_heads.evaluation.export import ExportReport
    from safety_heads.evaluation.side_effects import SideEffects
    from safety_heads.figures.attention import AttentionPatterns
    from safety_heads.figures.compare import MapComparison
    from safety_heads.method.sahara import SaharaResult
    from safety_heads.method.ships import ShipsResult

    return {
        "ships": ShipsResult.from_json,
        "sahara": SaharaResult.from_json,
        "evaluate": AsrResult.from_json,
        "asr-curve": AsrCurve.from_json,
        "side-effects": SideEffects.from_json,
        "comparison": MapComparison.from_json,
        "attention": AttentionPatterns.from_json,
        "export": ExportReport.from_json,
        "methods-benchmark": MethodsBenchmark.from_json,
    }


def read_result_data(
    path: str | os.PathLike[str],
    kinds: Sequence[str] = RESULT_KINDS,
    purpose: str = "a result of safety-heads",
    wanted: str = "",
) -> tuple[str, dict[str, Any]]:
    """The kind and content of a finished result file (or an export folder) of one of
    ``kinds``; in the error, ``purpose`` says what was expected, ``wanted`` what to pass."""
    from safety_heads.evaluation.export import EXPORT_NOTE

    path = Path(path)
    if path.is_dir():
        path = path / EXPORT_NOTE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read it as a JSON result file ({error}).") from error
    if not isinstance(data, dict):
        raise InputError(f"{path} holds a JSON {type(data).__name__}, not a result object.")
    kind = "export" if "parameters_touched" in data else data.get("kind")
    if kind not in kinds:
        what = (
            f"a {kind!r} result"
            if isinstance(kind, str)
            else "not a result of safety-heads (no kind field)"
        )
        raise InputError(
            f"{path} is {what}, not {purpose}; "
            + (wanted or f"pass a result file of one of the kinds {', '.join(kinds)}.")
        )
    if kind in _CHECKPOINTED and not data.get("complete", False):
        raise InputError(
            f"{path} is an unfinished {kind} run (a checkpoint); re-run the command that "
            "writes it to finish it first."
        )
    return kind, data


def result_from_data(kind: str, data: dict[str, Any], source: object = "result") -> Any:
    """The result object of ``kind`` from a file's content; a damaged file is one line."""
    try:
        return _readers()[kind](data)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        if isinstance(error, InputError):
            raise
        raise damaged_result(source, kind, error) from error


def load_result(path: str | os.PathLike[str]) -> Any:
    """The result a file (or an export folder) holds, as its dataclass (see the table)."""
    kind, data = read_result_data(path)
    return result_from_data(kind, data, path)
