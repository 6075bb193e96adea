"""Attention heads as values.

A head is a ``(layer, head)`` pair, both 0-based. Zhou et al. write head 26 of layer 2 as
"2-26"; this package prints it as ``2.26`` and reads ``"2.26"``, ``"2-26"``, ``"L2H26"``,
``(2, 26)`` or a :class:`Head`. Under grouped-query attention ``head`` is always the
*query* head index.

Head maps are ``[n_layers, n_heads]`` tensors (scores, or True where a head is chosen):
:func:`candidate_mask`, :func:`ranked`, :func:`top_heads`, :func:`heads_in`, and their JSON
form with unscored heads as ``null`` (:func:`map_to_json`, :func:`map_from_json`).
"""

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from safety_heads.errors import InputError
from safety_heads.models.interface import HookedChatModel

__all__ = [
    "Head",
    "HeadLike",
    "parse_head",
    "parse_heads",
    "check_heads",
    "candidate_mask",
    "map_to_json",
    "map_from_json",
    "ranked",
    "heads_in",
    "top_heads",
]

_HEAD_PATTERN = re.compile(r"^\s*(?:L\s*(\d+)\s*H\s*(\d+)|(\d+)\s*[.\-:/]\s*(\d+))\s*$", re.I)


@dataclass(frozen=True, order=True)
class Head:
    """One query head: ``layer`` and ``head`` are 0-based indices."""

    layer: int
    head: int

    def __post_init__(self) -> None:
        for field in ("layer", "head"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"Head.{field} must be a non-negative int, got {value!r}.")

    def __str__(self) -> str:
        return f"{self.layer}.{self.head}"

    def to_dict(self) -> dict[str, int]:
        return {"layer": self.layer, "head": self.head}


HeadLike = Head | str | Sequence[int] | Mapping[str, int]


def parse_head(value: HeadLike) -> Head:
    """Read one head from ``"2.26"``, ``"2-26"``, ``"L2H26"``, ``(2, 26)`` or a Head."""
    if isinstance(value, Head):
        return value
    if isinstance(value, str):
        match = _HEAD_PATTERN.match(value)
        if match is None:
            raise InputError(
                f"Cannot read a head from {value!r}: write layer and head as '2.26', "
                "'2-26' or 'L2H26' (0-based)."
            )
        numbers = [int(g) for g in match.groups() if g is not None]
        return Head(numbers[0], numbers[1])
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return Head(int(value[0]), int(value[1]))
    if isinstance(value, Mapping) and {"layer", "head"} <= value.keys():
        return Head(int(value["layer"]), int(value["head"]))
    raise TypeError(
        f"Cannot read a head from {value!r} ({type(value).__name__}): pass a Head, "
        "a string such as '2.26', or a (layer, head) pair."
    )


def parse_heads(value: str | Iterable[HeadLike] | HeadLike | None) -> tuple[Head, ...]:
    """Read several heads: ``"2.26,5.1"``, a list of head-likes, or one head-like.

    Order is kept; an empty string or ``None`` gives no heads.
    """
    if value is None:
        return ()
    is_pair = (
        isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value)
    )
    if isinstance(value, Head) or is_pair:
        return (parse_head(value),)
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,\s;]+", value) if p]
        return tuple(parse_head(p) for p in parts)
    return tuple(parse_head(v) for v in value)


def check_heads(heads: Iterable[Head], n_layers: int, n_heads: int) -> None:
    """Raise ``ValueError`` if a head is out of range or repeated."""
    seen: set[Head] = set()
    for head in heads:
        if head.layer >= n_layers or head.head >= n_heads:
            raise InputError(
                f"Head {head} is out of range: this model has layers 0..{n_layers - 1} "
                f"and heads 0..{n_heads - 1} per layer."
            )
        if head in seen:
            raise InputError(f"Head {head} is listed twice; list each head once.")
        seen.add(head)


# Head maps: [n_layers, n_heads] tensors of scores or choices.


def candidate_mask(
    model: HookedChatModel, heads: Sequence[HeadLike] | str | None
) -> Bool[Tensor, "n_layers n_heads"]:
    """Which heads to score: all of them (``None``) or the given subset."""
    if heads is None:
        return torch.ones(model.n_layers, model.n_heads, dtype=torch.bool)
    chosen = parse_heads(heads)
    if not chosen:
        raise InputError(
            "The subset of heads to score is empty; pass heads=None to score every head."
        )
    check_heads(chosen, model.n_layers, model.n_heads)
    mask = torch.zeros(model.n_layers, model.n_heads, dtype=torch.bool)
    for head in chosen:
        mask[head.layer, head.head] = True
    return mask


def map_to_json(scores: Tensor | None) -> list | None:
    """A score tensor as nested lists, unscored (NaN) entries as ``null``."""
    if scores is None:
        return None
    values = scores.double().tolist()

    def clean(value: Any) -> Any:
        if isinstance(value, list):
            return [clean(v) for v in value]
        return None if math.isnan(value) else value

    return clean(values)


def map_from_json(values: Any) -> Tensor | None:
    if values is None:
        return None

    def clean(value: Any) -> Any:
        if isinstance(value, list):
            return [clean(v) for v in value]
        return math.nan if value is None else value

    return torch.tensor(clean(values), dtype=torch.float64)


def ranked(
    scores: Float[Tensor, "n_layers n_heads"], limit: int | None = None
) -> list[dict[str, Any]]:
    """Heads sorted by score, highest first, as ``{layer, head, score}`` (NaN skipped)."""
    flat = scores.double().flatten()
    order = torch.argsort(torch.nan_to_num(flat, nan=-math.inf), descending=True, stable=True)
    n_heads = scores.shape[1]
    out = []
    for index in order.tolist():
        if math.isnan(flat[index]):
            continue
        out.append(
            {"layer": index // n_heads, "head": index % n_heads, "score": float(flat[index])}
        )
        if limit is not None and len(out) >= limit:
            break
    return out


def heads_in(mask: Bool[Tensor, "n_layers n_heads"]) -> list[Head]:
    """The heads marked True in a ``[n_layers, n_heads]`` mask, in layer-major order."""
    return [Head(int(layer), int(head)) for layer, head in mask.nonzero().tolist()]


def top_heads(scores: Float[Tensor, "n_layers n_heads"], n: int) -> list[Head]:
    return [Head(e["layer"], e["head"]) for e in ranked(scores, n)]
