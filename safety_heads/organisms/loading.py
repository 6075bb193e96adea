"""An organism merged into a copy of the bundled base, as a cached model folder.

The merged model is cached like the bundled base (:mod:`safety_heads.models.cache`), keyed by the
digests of the organism's weights and of the base's, so a rebuilt organism or another base
is merged again and a moved cache stays current. Its folder reloads like any other model
(weight export reloads it from there).
"""

from pathlib import Path
from typing import Any

import torch

from safety_heads.errors import ModelLoadError
from safety_heads.models.cache import bundled_base_folder, cache_dir, cached_folder, file_digest
from safety_heads.models.cache import weights_digest as base_weights_digest
from safety_heads.organisms.catalogue import (
    WEIGHTS_FILE,
    is_shipped,
    organism_file,
    organism_path,
    read_card,
)
from safety_heads.organisms.weights import apply_organism

__all__ = ["organism_source", "organism_model_folder", "organism_info"]


def organism_source(name: str, weights: Path, base: Path) -> dict[str, Any]:
    """What an organism's merged cache was built from: its shipped weights and its base's
    weights, by digest, so that a cache moved or copied elsewhere stays current."""
    return {
        "organism": name,
        "weights_sha256": file_digest(weights),
        "base_sha256": base_weights_digest(base),
    }


def _weights(source: str | Path) -> Path:
    return organism_file(source, WEIGHTS_FILE, ModelLoadError)


def _cache_name(source: str | Path, weights_sha256: str) -> str:
    if is_shipped(source):
        return source
    # A build's folder: named by its content, so copies of one build share a cache.
    return f"{read_card(source)['name']}-build-{weights_sha256[:12]}"


def organism_model_folder(source: str | Path) -> Path:
    """The organism (a shipped one by name, or a build's folder) merged into a copy of the
    base, as a cached folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = bundled_base_folder()
    weights = _weights(source)
    key = organism_source(read_card(source)["name"], weights, base)

    def build(folder: Path) -> None:
        model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
        apply_organism(model, source)
        model.save_pretrained(str(folder))
        AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(folder))

    return cached_folder(
        cache_dir() / "models" / _cache_name(source, key["weights_sha256"]), key, build
    )


def organism_info(source: str | Path) -> dict[str, Any]:
    """What a loaded organism's ``info`` says: its name, card and weights digest, and for
    a build's folder where it lies."""
    card = read_card(source)
    info = {
        "organism": card["name"],
        "card": card,
        "weights_sha256": file_digest(_weights(source)),
    }
    if not is_shipped(source):
        info["folder"] = str(organism_path(source))
    return info
