"""Attention heads as values.

A head is a ``(layer, head)`` pair, both 0-based. Zhou et al. write head 26 of layer 2 as
"2-26"; this package prints it as ``2.26`` and reads ``"2.26"``, ``"2-26"``, ``"L2H26"``,
``(2, 26)`` or a :class:`Head`. Under grouped-query attention ``head`` is always the
*query* head index.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from safety_heads.errors import InputError

__all__ = ["Head", "HeadLike", "parse_head", "parse_heads", "check_heads"]

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
