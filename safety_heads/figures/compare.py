"""Do two head rankings agree? Rank statistics on score maps.

The paper's findings are comparisons: UA finds heads that agree across data sets better
than SC does; two fine-tunes of one base share safety heads; a chat model's safety heads
are not the base model's. Each is a question about two ``[n_layers, n_heads]`` score maps
of one architecture, A and B, answered here with two numbers:

* **Spearman rank correlation** over all heads scored in both maps: the Pearson
  correlation of the two rank vectors, ties given their average rank. 1 means the same
  order, -1 the reverse order, ~0 no relation. It weighs the whole ranking, including the
  long tail of unimportant heads.
* **Top-k overlap** (Jaccard index) of the k best heads of each map:
  ``|top_k(A) & top_k(B)| / |top_k(A) | top_k(B)|``. 1 when both pick the same k heads,
  0 when they share none. It looks only at the heads one would ablate.

Heads that are NaN in either map (not scored, or already chosen in a Sahara step) are left
out of both numbers. Everything here is a pure function of the maps;
:func:`score_map` reads the map to compare out of a Ships or Sahara result, and
:func:`read_scores` loads either kind of result file.
"""

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from safety_heads.errors import InputError
from safety_heads.method.heads import Head, map_from_json, map_to_json, top_heads
from safety_heads.method.sahara import SaharaResult
from safety_heads.method.ships import ShipsResult

__all__ = [
    "MapComparison",
    "average_ranks",
    "spearman",
    "topk_jaccard",
    "compare_maps",
    "compare_results",
    "score_map",
    "read_scores",
    "SHIPS_MAPS",
]

SHIPS_MAPS = ("mean", "frequency", "contrast", "control")
"""The maps of a Ships result: mean score, top-k frequency, harmful minus control, control."""


def _check_pair(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise InputError(
            f"The two score maps have different shapes {tuple(a.shape)} and {tuple(b.shape)}: "
            "rankings can only be compared on one architecture (same layers and heads)."
        )


def average_ranks(values: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """1-based ranks of ``values`` (smallest = 1), ties sharing their average rank."""
    values = values.double()
    order = torch.argsort(values, stable=True)
    ordered = values[order]
    ranks = torch.empty_like(values)
    start = 0
    n = values.numel()
    while start < n:
        stop = start + 1
        while stop < n and ordered[stop] == ordered[start]:
            stop += 1
        ranks[order[start:stop]] = (start + stop + 1) / 2  # mean of ranks start+1 .. stop
        start = stop
    return ranks


def _scored_pairs(
    a: Float[Tensor, "n_layers n_heads"], b: Float[Tensor, "n_layers n_heads"]
) -> tuple[Tensor, Tensor]:
    _check_pair(a, b)
    both = ~(a.isnan() | b.isnan())
    return a[both].double(), b[both].double()


def spearman(a: Float[Tensor, "n_layers n_heads"], b: Float[Tensor, "n_layers n_heads"]) -> float:
    """Spearman rank correlation of two maps over the heads scored in both.

    NaN when fewer than two heads are scored in both or a map is constant there (a rank
    correlation is undefined without variation).
    """
    x, y = _scored_pairs(a, b)
    if x.numel() < 2:
        return math.nan
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = float(rx.norm() * ry.norm())
    if norm == 0.0:
        return math.nan
    return float((rx * ry).sum()) / norm


def _top_set(scores: Tensor, k: int) -> set[Head]:
    return set(top_heads(scores, k))


def topk_jaccard(
    a: Float[Tensor, "n_layers n_heads"], b: Float[Tensor, "n_layers n_heads"], k: int
) -> float:
    """Jaccard index of the ``k`` highest-scoring heads of each map (ties: lower index first).

    Only heads scored in both maps take part, so a head one map never scored cannot count
    as a disagreement.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be an int >= 1, got {k!r}.")
    _check_pair(a, b)
    both = ~(a.isnan() | b.isnan())
    if not bool(both.any()):
        raise InputError("The two maps have no head scored in both; nothing to compare.")
    top_a = _top_set(a.double().masked_fill(~both, math.nan), k)
    top_b = _top_set(b.double().masked_fill(~both, math.nan), k)
    return len(top_a & top_b) / len(top_a | top_b)


@dataclass(frozen=True)
class MapComparison:
    """Two score maps of one architecture with their rank agreement.

    ``a`` and ``b`` are ``[n_layers, n_heads]`` (NaN: not scored); ``label_a``/``label_b``
    name them (e.g. "chat", "base"); ``top_k`` is the k of :attr:`jaccard`; ``info`` says
    where each map came from.
    """

    a: Float[Tensor, "n_layers n_heads"]
    b: Float[Tensor, "n_layers n_heads"]
    label_a: str = "A"
    label_b: str = "B"
    top_k: int = 10
    info: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_pair(self.a, self.b)
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise InputError(f"MapComparison.top_k must be an int >= 1, got {self.top_k!r}.")
        if self.label_a == self.label_b:
            raise InputError(
                f"Both maps are labelled {self.label_a!r}; give them different labels so "
                "figures and tables can tell them apart."
            )

    @property
    def spearman(self) -> float:
        return spearman(self.a, self.b)

    @property
    def jaccard(self) -> float:
        return topk_jaccard(self.a, self.b, self.top_k)

    @property
    def difference(self) -> Float[Tensor, "n_layers n_heads"]:
        """``a - b`` per head."""
        return self.a.double() - self.b.double()

    def top(self, which: str) -> list[Head]:
        """The ``top_k`` heads of map ``"a"`` or ``"b"``, best first."""
        if which not in ("a", "b"):
            raise InputError(f"which={which!r} must be 'a' or 'b'.")
        return top_heads(self.a if which == "a" else self.b, self.top_k)

    @property
    def shared(self) -> list[Head]:
        """Heads in both top-k lists, in the order of ``a``."""
        in_b = set(self.top("b"))
        return [h for h in self.top("a") if h in in_b]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "comparison",
            "label_a": self.label_a,
            "label_b": self.label_b,
            "top_k": self.top_k,
            "spearman": None if math.isnan(self.spearman) else self.spearman,
            "jaccard": self.jaccard,
            "top_a": [str(h) for h in self.top("a")],
            "top_b": [str(h) for h in self.top("b")],
            "shared": [str(h) for h in self.shared],
            "a": map_to_json(self.a),
            "b": map_to_json(self.b),
            "info": self.info or {},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "MapComparison":
        return cls(
            map_from_json(data["a"]),
            map_from_json(data["b"]),
            data["label_a"],
            data["label_b"],
            int(data["top_k"]),
            data.get("info") or None,
        )


def compare_maps(
    a: Float[Tensor, "n_layers n_heads"],
    b: Float[Tensor, "n_layers n_heads"],
    *,
    labels: Sequence[str] = ("A", "B"),
    top_k: int = 10,
    info: dict[str, Any] | None = None,
) -> MapComparison:
    """Compare two score maps: ``.spearman``, ``.jaccard`` (top ``top_k``), ``.shared``.

    Warns when ``top_k`` is not below the number of heads scored in both maps: every such
    head is then in both top sets, and the Jaccard index is 1 whatever the scores."""
    if len(labels) != 2:
        raise InputError(f"labels must name the two maps, got {list(labels)!r}.")
    scored = int((~(a.isnan() | b.isnan())).sum())
    if isinstance(top_k, int) and 0 < scored <= top_k:
        warnings.warn(
            f"top-{top_k} overlap of maps with only {scored} heads scored in both is 1 by "
            f"construction; choose a k below {scored} (CLI: --top-k).",
            UserWarning,
            stacklevel=2,
        )
    return MapComparison(a.double(), b.double(), str(labels[0]), str(labels[1]), top_k, info)


def score_map(
    result: ShipsResult | SaharaResult, which: str | None = None
) -> Float[Tensor, "n_layers n_heads"]:
    """The map of ``result`` that ranks heads.

    Ships: ``which`` is one of :data:`SHIPS_MAPS` (default ``mean``). Sahara: ``step-S``
    for the map of search step S (1-based; default ``step-1``, Generalized Ships of every
    head alone) or ``contrast-S`` for its harmful-minus-control map.
    """
    if isinstance(result, ShipsResult):
        which = which or "mean"
        maps = {
            "mean": result.mean,
            "frequency": result.topk_frequency,
            "contrast": result.contrast,
            "control": result.control_mean,
        }
        if which not in maps:
            raise InputError(f"A Ships result has the maps {SHIPS_MAPS}; got which={which!r}.")
        if maps[which] is None:
            raise InputError(
                f"This Ships result has no {which!r} map: it was computed without control "
                "prompts (run ships with --control harmless to get one)."
            )
        return maps[which]
    which = which or "step-1"
    steps = len(result.step_scores)
    name, _, number = which.partition("-")
    if name not in ("step", "contrast") or not number.isdigit() or not 1 <= int(number) <= steps:
        raise InputError(
            f"A Sahara result with {steps} step(s) has the maps 'step-1'..'step-{steps}' (and "
            f"'contrast-S' with control prompts); got which={which!r}."
        )
    if name == "contrast":
        if result.contrast_step_scores is None:
            raise InputError("This Sahara result has no control maps, so no 'contrast-S' map.")
        return result.contrast_step_scores[int(number) - 1]
    return result.step_scores[int(number) - 1]


def read_scores(path: str | Path) -> ShipsResult | SaharaResult:
    """Load a Ships or Sahara result file (written by ``ships``/``sahara`` or their CLI)."""
    from safety_heads.results import read_result_data, result_from_data

    kind, data = read_result_data(
        path,
        ("ships", "sahara"),
        "a Ships or Sahara result",
        "pass the --out file of safety-heads ships or safety-heads sahara.",
    )
    return result_from_data(kind, data, path)


def compare_results(
    a: ShipsResult | SaharaResult,
    b: ShipsResult | SaharaResult,
    *,
    labels: Sequence[str] = ("A", "B"),
    which: str | None = None,
    top_k: int = 10,
) -> MapComparison:
    """Compare two results on their ranking maps (:func:`score_map`, ``which`` for both)."""
    info = {
        label: {
            "kind": "ships" if isinstance(r, ShipsResult) else "sahara",
            "map": which or ("mean" if isinstance(r, ShipsResult) else "step-1"),
            **{k: r.info.get(k) for k in ("model", "template", "ablation", "epsilon")},
            "n_prompts": len(r.info.get("prompts") or []),
        }
        for label, r in zip(labels, (a, b), strict=True)
    }
    return compare_maps(
        score_map(a, which), score_map(b, which), labels=labels, top_k=top_k, info=info
    )
