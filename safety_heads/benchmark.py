"""Which head-attribution method finds the safety heads? Every method on one model, in one
run, measured against exact Ships and against what ablating its best heads does.

The methods, each a map of every head (higher: more safety-relevant):

* ``ships``: exact Ships (Undifferentiated Attention), mean over the harmful prompts: the
  reference the others are measured against;
* ``ships-contrast``: the same less exact Ships on harmless prompts;
* ``atp-ua``, ``atp-sc``: attribution patching of Undifferentiated Attention and of
  Scaling Contribution (:func:`~safety_heads.method.screens.attribution_scores`);
* ``direction``, ``direction-contrast``: each head's write along the refusal direction on
  harmful prompts, and less the same on harmless ones
  (:func:`~safety_heads.method.screens.refusal_direction_scores`);
* ``patching``: activation patching of each head's output at the closing template tokens
  from a paired harmless prompt (:func:`~safety_heads.method.patching.patching_scores`).

Each is measured by the ranks of known safety heads (an organism's planted heads), its
Spearman correlation and top-10 overlap (Jaccard) with exact Ships, whether its top tenth
holds exact Ships' top 3, the attack success rate (the evaluated judge, with label counts,
and the paper's keyword judge) with its top 1, 3 and 5 heads ablated by Undifferentiated
Attention, the over-refusal on safe prompts (XSTest's) under the same ablations, and its
wall time. ``benchmarks/methods.py`` runs it on the three organisms; the result file
(kind ``methods-benchmark``) loads with :func:`~safety_heads.results.load_result` and is
drawn by the report.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxtyping import Float
from torch import Tensor

from safety_heads.errors import InputError
from safety_heads.evaluation.asr import AsrResult, evaluate_asr
from safety_heads.evaluation.generation import GenerationConfig
from safety_heads.evaluation.side_effects import side_effects
from safety_heads.figures.compare import spearman, topk_jaccard
from safety_heads.method.ablation import Ablation, AblationMethod
from safety_heads.method.heads import Head, map_from_json, map_to_json, top_heads
from safety_heads.method.patching import patching_scores
from safety_heads.method.screens import attribution_scores, refusal_direction_scores
from safety_heads.method.ships import ships
from safety_heads.models.interface import HookedChatModel

__all__ = ["METHODS", "SIZES", "MethodsBenchmark", "method_maps", "benchmark_methods"]

METHODS = (
    "ships",
    "ships-contrast",
    "atp-ua",
    "atp-sc",
    "direction",
    "direction-contrast",
    "patching",
)
SIZES = (1, 3, 5)


@dataclass(frozen=True)
class MethodsBenchmark:
    """The figures of :func:`benchmark_methods` per model (``models[name]``), and how they
    were measured (``settings``)."""

    models: dict[str, dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"settings": self.settings, "models": self.models}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "MethodsBenchmark":
        models = data["models"]
        for name, figures in models.items():
            for method, entry in figures["methods"].items():
                for key in ("seconds", "spearman_vs_ships", "ablated"):
                    if key not in entry:
                        raise KeyError(f"{name}/{method}/{key}")
        return cls(dict(models), dict(data.get("settings", {})))

    def scores(self, model: str, method: str) -> Float[Tensor, "n_layers n_heads"]:
        return map_from_json(self.models[model]["maps"][method])


def _timed(function: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def method_maps(
    model: HookedChatModel,
    harmful: Sequence[str],
    harmless: Sequence[str],
    work: Path,
    name: str,
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """Every method's map (float64) and its wall time in seconds; exact Ships resumes from
    its checkpoints under ``work``, and its time then counts only the layers left (the
    figures say so: ``exact_resumed``)."""
    exact, exact_s = _timed(
        lambda: ships(model, harmful, checkpoint=work / f"{name}-ships.json", progress=False)
    )
    control, control_s = _timed(
        lambda: ships(
            model, harmless, checkpoint=work / f"{name}-ships-control.json", progress=False
        )
    )
    ua, ua_s = _timed(lambda: attribution_scores(model, harmful))
    sc, sc_s = _timed(lambda: attribution_scores(model, harmful, AblationMethod("scale")))
    direction, direction_s = _timed(lambda: refusal_direction_scores(model, harmful, harmless))
    patched, patched_s = _timed(lambda: patching_scores(model, harmful, harmless))
    maps = {
        "ships": exact.mean,
        "ships-contrast": exact.mean - control.mean,
        "atp-ua": ua.scores,
        "atp-sc": sc.scores,
        "direction": direction.scores,
        "direction-contrast": direction.contrast,
        "patching": patched.scores,
    }
    seconds = {
        "ships": exact_s,
        "ships-contrast": exact_s + control_s,
        "atp-ua": ua_s,
        "atp-sc": sc_s,
        "direction": direction_s,
        "direction-contrast": direction_s,
        "patching": patched_s,
    }
    return {k: v.double() for k, v in maps.items()}, seconds


def asr_figures(result: AsrResult) -> dict[str, Any]:
    """The benchmark's ASR fields of one evaluation: both judges' rates and intervals and
    the labels."""
    keyword = result.keyword_asr
    return {
        "asr": result.asr.value,
        "asr_ci": [result.asr.low, result.asr.high],
        "labels": result.labels,
        "keyword_asr": keyword.value,
        "keyword_asr_ci": [keyword.low, keyword.high],
    }


def _rates(
    model: HookedChatModel,
    heads: list[Head],
    sets: dict[str, list[str]],
    config: GenerationConfig,
    work: Path,
    name: str,
) -> dict[str, Any]:
    """ASR on the harmful prompts and over-refusal on the safe ones, ``heads`` ablated."""
    tag = "-".join(str(h) for h in heads) or "none"
    ablation = Ablation.of(heads) if heads else None
    asr = evaluate_asr(
        model,
        sets["asr"],
        ablation,
        config=config,
        out=work / f"{name}-asr-{tag}.json",
        progress=False,
    )
    safe = side_effects(
        model,
        sets["safe"],
        ablation,
        config=config,
        out=work / f"{name}-safe-{tag}.json",
        progress=False,
    )
    return {
        "heads": [str(h) for h in heads],
        **asr_figures(asr),
        "over_refusal": safe.over_refusal.value,
        "over_refusal_ci": [safe.over_refusal.low, safe.over_refusal.high],
        "over_refusal_labels": safe.to_json()["labels"],
    }


def _rank(scores: Tensor, head: Head) -> int:
    order = [(h.layer, h.head) for h in top_heads(scores, scores.numel())]
    return order.index((head.layer, head.head)) + 1


def benchmark_methods(
    model: HookedChatModel,
    name: str,
    sets: dict[str, list[str]],
    config: GenerationConfig,
    work: str | Path,
    planted: Sequence[Head] = (),
) -> dict[str, Any]:
    """Every method's map and figures on ``model`` (module docstring).

    ``sets``: ``harmful`` and ``harmless`` prompts to score heads on, ``asr`` harmful prompts
    to generate on, ``safe`` prompts for over-refusal (XSTest's safe ones). ``work``: a
    folder for the runs' checkpoints, so that a killed benchmark resumes. ``planted``: heads
    known to carry refusal, whose ranks are reported.
    """
    missing = {"harmful", "harmless", "asr", "safe"} - set(sets)
    if missing:
        raise InputError(f"benchmark_methods needs the prompt sets {sorted(missing)} too.")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    resumed = any((work / f"{name}-{part}.json").exists() for part in ("ships", "ships-control"))
    maps, seconds = method_maps(model, sets["harmful"], sets["harmless"], work, name)
    measured: dict[tuple[Head, ...], dict[str, Any]] = {}

    def rates(heads: list[Head]) -> dict[str, Any]:
        if tuple(heads) not in measured:
            measured[tuple(heads)] = _rates(model, heads, sets, config, work, name)
        return measured[tuple(heads)]

    n_heads = model.n_layers * model.n_heads
    tenth = max(1, round(n_heads / 10))
    exact_top3 = top_heads(maps["ships"], 3)
    methods = {}
    for method, scores in maps.items():
        shortlist = set(top_heads(scores, tenth))
        methods[method] = {
            "seconds": seconds[method],
            "speedup_vs_exact": seconds["ships"] / seconds[method],
            "top10": [str(h) for h in top_heads(scores, 10)],
            "spearman_vs_ships": spearman(scores, maps["ships"]),
            "top10_jaccard_vs_ships": topk_jaccard(scores, maps["ships"], 10),
            "ships_top3_in_top_tenth": sum(h in shortlist for h in exact_top3),
            "ablated": {str(k): rates(top_heads(scores, k)) for k in SIZES if k <= n_heads},
        } | ({"planted_ranks": [_rank(scores, h) for h in planted]} if planted else {})
    return {
        "n_heads": n_heads,
        "top_tenth": tenth,
        "exact_resumed": resumed,
        "prompts": {key: len(value) for key, value in sets.items()},
        "planted": [str(h) for h in planted],
        "no_ablation": rates([]),
        "maps": {method: map_to_json(scores) for method, scores in maps.items()},
        "methods": methods,
    }
