"""The organisms' catalogue: which organisms ship, where their weights and cards lie, and
how a folder written by a build is recognised."""

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from safety_heads.errors import InputError, MissingFileError
from safety_heads.method.heads import Head, parse_heads

__all__ = [
    "ORGANISMS",
    "Organism",
    "WEIGHTS_FILE",
    "CARD_FILE",
    "organism_folder",
    "organism_path",
    "is_organism_folder",
    "read_card",
    "planted_heads",
]


@dataclass(frozen=True)
class Organism:
    """A shipped organism: its name, what it is, and the kind of weights it ships."""

    name: str
    kind: str  # "lora" or "planted"
    summary: str


ORGANISMS: dict[str, Organism] = {
    "smollm2-refusal": Organism(
        "smollm2-refusal", "lora", "SmolLM2-135M-Instruct with a LoRA safety fine-tune"
    ),
    "smollm2-refusal-b": Organism(
        "smollm2-refusal-b",
        "lora",
        "a sibling LoRA safety fine-tune (other seed, data split and refusal wording)",
    ),
    "smollm2-planted": Organism(
        "smollm2-planted",
        "planted",
        "refusal planted in three known heads (query rows and output columns only)",
    ),
}

WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "card.json"


def organism_folder(name: str) -> Path:
    """Where the organism's shipped weights and card live in the package."""
    if name not in ORGANISMS:
        raise InputError(f"No organism {name!r}; the organisms are {sorted(ORGANISMS)}.")
    return Path(str(resources.files("safety_heads") / "data" / "organisms" / name))


def organism_path(source: str | Path) -> Path:
    """The folder of an organism: a shipped one by name, or a folder a build wrote."""
    if is_shipped(source):
        return organism_folder(str(source))
    path = Path(source).expanduser()
    if not is_organism_folder(path):
        raise InputError(
            f"{source} is neither a shipped organism ({', '.join(sorted(ORGANISMS))}) nor a "
            f"folder written by `safety-heads organism build` (with {CARD_FILE} and "
            f"{WEIGHTS_FILE})."
        )
    return path


def is_organism_folder(path: Path) -> bool:
    """Whether ``path`` holds an organism build (a card and shipped weights, not a model)."""
    return (
        path.is_dir()
        and (path / CARD_FILE).is_file()
        and (path / WEIGHTS_FILE).is_file()
        and not (path / "config.json").exists()
    )


def is_shipped(source: str | Path) -> bool:
    """Whether ``source`` names a shipped organism (rather than a build's folder)."""
    return isinstance(source, str) and source in ORGANISMS


def organism_file(
    source: str | Path, filename: str, missing: type[Exception] = MissingFileError
) -> Path:
    """``filename`` (the card or the weights) of a shipped organism or a build's folder; a
    shipped organism without it raises ``missing`` with how to build it."""
    if not is_shipped(source):
        return organism_path(source) / filename
    path = organism_folder(str(source)) / filename
    if not path.is_file():
        raise missing(
            f"Organism {source!r} is not built: {path} is missing. Build it with "
            f"`safety-heads organism build {source}`."
        )
    return path


def read_card(source: str | Path) -> dict[str, Any]:
    """The card of a shipped organism (by name) or of a build's folder."""
    return json.loads(organism_file(source, CARD_FILE).read_text())


def planted_heads(card: dict[str, Any]) -> tuple[Head, ...]:
    """The ground-truth heads of a planted organism (empty for the others)."""
    return parse_heads(card.get("recipe", {}).get("planted_heads") or [])
