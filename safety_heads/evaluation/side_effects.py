"""What an ablation costs on harmless prompts, and on the paper's utility tasks.

* :func:`side_effects`: the over-refusal rate (answers the judge labels refusals, with the
  keyword figure of explicit refusal phrases beside it) and the KL divergence
  ``KL(p_base || p_ablated)`` of the next-token distribution at the last prompt position.
  Resumable through ``out`` like :func:`~safety_heads.evaluation.asr.evaluate_asr`.
* :func:`zero_shot_utility`: a thin bridge to EleutherAI's ``lm-eval`` for the paper's
  zero-shot utility tasks, run on an un-hooked copy with the ablation baked into the
  weights. Optional (``pip install lm-eval``) and not exercised offline beyond its wiring.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safety_heads.evaluation.asr import Rate, keyword_verdicts, success_rate
from safety_heads.evaluation.generation import (
    AnyAblation,
    GenerationConfig,
    Response,
    ablation_dict,
    ablation_from,
    active_ablation,
    heads_of,
    run_batches,
    start_run,
)
from safety_heads.evaluation.judges import EXPLICIT_REFUSAL_PHRASES, KeywordJudge, label_counts
from safety_heads.method.ablation import Ablation
from safety_heads.models.interface import HookedChatModel

__all__ = ["SideEffects", "side_effects", "zero_shot_utility", "UTILITY_TASKS"]


UTILITY_TASKS = ("boolq", "rte", "winogrande", "arc_challenge", "openbookqa")
"""The zero-shot tasks of the paper's utility study, as ``lm-eval`` names them."""


@dataclass(frozen=True)
class SideEffects:
    """What an ablation costs on harmless prompts.

    ``over_refusal``: share of answers the judge calls refusals. ``kl``: per prompt,
    ``KL(p_base || p_ablated)`` in nats of the next-token distribution at the last prompt
    position (0 for no ablation).
    """

    ablation: AnyAblation | None
    over_refusal: Rate
    kl: tuple[float, ...]
    responses: tuple[Response, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def keyword_over_refusal(self) -> Rate:
        """Share of answers with an explicit refusal phrase (the keyword figure)."""
        verdicts = keyword_verdicts(self.responses, KeywordJudge(EXPLICIT_REFUSAL_PHRASES))
        return success_rate([bool(v.refusal) for v in verdicts], self.over_refusal.confidence)

    @property
    def mean_kl(self) -> float:
        return sum(self.kl) / len(self.kl)

    def to_json(self) -> dict[str, Any]:
        keyword = self.keyword_over_refusal.to_dict()
        return {
            "heads": [str(h) for h in heads_of(self.ablation)],
            "ablation": ablation_dict(self.ablation),
            "judge": str(self.settings.get("judge", "")),
            "over_refusal": self.over_refusal.value,
            "over_refusal_ci": [self.over_refusal.low, self.over_refusal.high],
            "labels": label_counts([r.verdict for r in self.responses]),
            "n": self.over_refusal.n,
            "keyword_over_refusal": {
                "judge": KeywordJudge(EXPLICIT_REFUSAL_PHRASES).name,
                **{key: keyword[key] for key in ("rate", "ci")},
            },
            "mean_kl": self.mean_kl,
            "kl": list(self.kl),
            "responses": [r.to_dict() for r in self.responses],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SideEffects":
        """SideEffects from a ``side-effects`` result file's content."""
        responses = tuple(Response.from_dict(r) for r in data["responses"])
        settings = dict(data.get("settings", {}))
        settings.setdefault("judge", data.get("judge", ""))
        return cls(
            ablation_from(data.get("ablation")),
            success_rate([bool(r.verdict.refusal) for r in responses]),
            tuple(float(x) for x in data["kl"]),
            responses,
            settings,
        )


def side_effects(
    model: HookedChatModel,
    prompts: Sequence[str],
    ablation: AnyAblation | None,
    *,
    judge: Any = None,
    config: GenerationConfig | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> SideEffects:
    """Over-refusal rate and next-token KL of ``ablation`` on harmless ``prompts``.

    Pass ``load_prompts("harmless", ...)`` or XSTest's safe prompts
    (``load_prompts("xstest-safe")``). The default judge is the
    :class:`~safety_heads.evaluation.judges.ContentJudge` (over-refusal: answers labelled
    ``refusal``); the keyword figure kept beside it (``keyword_over_refusal``) counts
    answers with one of :data:`~safety_heads.evaluation.judges.EXPLICIT_REFUSAL_PHRASES` (apologies,
    stated inability, AI disclaimers: the paper's full list also holds hedges and warnings,
    "However", "illegal", that benign answers use). A judge must set ``Verdict.refusal``.
    Resumable through ``out`` like :func:`evaluate_asr`.
    """
    run = start_run(model, prompts, ablation, judge, config, out, "side-effects")
    ablation, checkpoint = run.ablation, run.checkpoint
    responses, kl = run_batches(
        model,
        run.prompts,
        ablation,
        run.judge,
        run.config,
        checkpoint,
        with_kl=True,
        need_refusal=True,
        keyword=KeywordJudge(EXPLICIT_REFUSAL_PHRASES),
        progress=progress,
    )
    over_refusal = success_rate([bool(r.verdict.refusal) for r in responses])
    result = SideEffects(ablation, over_refusal, tuple(kl), tuple(responses), checkpoint.settings)
    checkpoint.finish(result.to_json())
    return result


def zero_shot_utility(
    model: HookedChatModel,
    ablation: Ablation | None = None,
    tasks: Sequence[str] = UTILITY_TASKS,
    *,
    batch_size: int = 8,
    limit: int | None = None,
    device: str | None = None,
) -> dict[str, dict[str, float]]:
    """Zero-shot accuracy of the ablated model on ``tasks`` with EleutherAI's ``lm-eval``.

    A thin hook, untested against the real harness (it downloads its data sets): it loads a
    fresh un-hooked copy of ``model`` from ``model.source``, bakes ``ablation`` into its
    weights (:func:`safety_heads.evaluation.export.load_ablated_hf`), and hands it to
    ``lm_eval.simple_evaluate`` with ``num_fewshot=0``. Returns the numeric metrics per task
    (``{"boolq": {"acc,none": ...}, ...}``). ``limit`` caps examples per task (for a quick
    look only). Needs ``pip install "lm-eval[hf]"`` and network access for the data sets.
    """
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
    except ImportError as error:
        raise ImportError(
            "zero_shot_utility needs EleutherAI's lm-eval harness, which is not installed: "
            "pip install 'lm-eval[hf]' (its tasks also download their data sets)."
        ) from error
    from safety_heads.evaluation.export import load_ablated_hf

    hf_model = load_ablated_hf(model, active_ablation(model, ablation))
    hf_model.to(device or model.device)
    harness_model = HFLM(pretrained=hf_model, tokenizer=model.tokenizer, batch_size=batch_size)
    output = lm_eval.simple_evaluate(
        model=harness_model, tasks=list(tasks), num_fewshot=0, limit=limit
    )
    return {
        task: {
            name: float(value)
            for name, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        for task, metrics in output["results"].items()
    }
