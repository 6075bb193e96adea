"""Result files that double as checkpoints, so long runs survive a crash or a kill.

A long run (Ships over every head, a Sahara search, generating hundreds of answers) writes
its output JSON file as it goes. While it runs the file holds

``{"kind": ..., "settings": {...}, "complete": false, "progress": {...}}``

where ``progress`` maps finished units of work (a layer, a search step, a batch of
prompts) to their results. Each write goes to a temporary file that is then renamed over
the old one, so a kill at any moment leaves either the previous or the new state, never a
torn file. Re-running with the same settings picks up ``progress`` and skips the finished
units; the finished run replaces the file with the full result (``"complete": true``).
Re-running with other settings into the same file is refused: the error names the
settings that differ.
"""

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safety_heads.errors import OutputExistsError

__all__ = [
    "Checkpoint",
    "CheckpointMismatch",
    "check_result_path",
    "differing_keys",
    "write_json_atomic",
]


class CheckpointMismatch(OutputExistsError):
    """The output file belongs to a run with other settings."""


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(data, stream, indent=1)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def differing_keys(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two settings dicts (missing counts as None)."""
    return sorted(key for key in set(saved) | set(wanted) if saved.get(key) != wanted.get(key))


def _normalise(value: Any) -> Any:
    """A value as it reads back from JSON (tuples become lists, and so on)."""
    return json.loads(json.dumps(value))


def _saved_result(path: Path, kind: str) -> dict[str, Any] | None:
    """The run of ``kind`` saved at ``path`` (None when there is no file yet); raises
    CheckpointMismatch when the file is not one."""
    if not path.exists():
        return None
    if not path.is_file():
        raise CheckpointMismatch(f"{path} is a folder, not a result file; choose a file path.")
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointMismatch(
            f"{path} exists but is not a readable result file ({error}); move it "
            "away or choose another output path."
        ) from error
    if not isinstance(saved, dict) or saved.get("kind") != kind or "settings" not in saved:
        found = saved.get("kind", "different") if isinstance(saved, dict) else "non-result"
        raise CheckpointMismatch(
            f"{path} holds a {found!r} file, not a {kind!r} run; choose another output path."
        )
    return saved


def check_result_path(path: str | os.PathLike[str], kind: str) -> Path:
    """``path`` resolved, once a run of ``kind`` can write its result there: a new file in an
    existing, writable folder, or an earlier result of the same kind (to resume). Cheap:
    call it before loading a model."""
    path = Path(path).expanduser()
    for parent in path.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise CheckpointMismatch(f"--out {path}: {parent} is a file, not a folder.")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise CheckpointMismatch(
            f"--out {path}: the folder {folder} does not exist; create it first."
        )
    if not os.access(folder, os.W_OK):
        raise CheckpointMismatch(f"--out {path}: the folder {folder} is not writable.")
    _saved_result(path, kind)
    return path


@dataclass
class Checkpoint:
    """The checkpoint of one run: ``path`` (or None: keep nothing), its kind and settings."""

    path: Path | None
    kind: str
    settings: dict[str, Any]
    progress: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.path = Path(self.path) if self.path is not None else None
        self.settings = _normalise(self.settings)

    def resume(self) -> dict[str, Any]:
        """Load earlier progress of the same run; ``{}`` for a new run.

        A completed file of the same run resumes with all its units done, so the run
        rebuilds its result without recomputing anything.
        """
        saved = _saved_result(self.path, self.kind) if self.path is not None else None
        if saved is None:
            return self.progress
        if saved["settings"] != self.settings:
            differing = differing_keys(saved["settings"], self.settings)
            raise CheckpointMismatch(
                f"{self.path} was written by a {self.kind} run with other settings "
                f"(differing: {', '.join(differing)}). Re-run with the same arguments to "
                "resume it, or choose another output path (or delete the file) to start anew."
            )
        self.progress = _normalise(saved.get("progress", {}))
        return self.progress

    def save(self, key: str, value: Any) -> None:
        """Record one finished unit of work and write the file."""
        self.progress[key] = _normalise(value)
        if self.path is not None:
            write_json_atomic(
                self.path,
                {
                    "kind": self.kind,
                    "settings": self.settings,
                    "complete": False,
                    "progress": self.progress,
                },
            )

    def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        """Write the full result (keeping the progress, so a re-run can rebuild it)."""
        document = {
            "kind": self.kind,
            "settings": self.settings,
            "complete": True,
            **result,
            "progress": self.progress,
        }
        if self.path is not None:
            write_json_atomic(self.path, document)
        return document
