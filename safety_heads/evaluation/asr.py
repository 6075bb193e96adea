"""Does ablating heads break refusal? The attack success rate (ASR).

Zhou et al. turn head scores into evidence by generating answers to harmful prompts with
the heads ablated and counting the answers that are not refusals: the attack success rate.
This module does that for any :class:`~safety_heads.method.ablation.Ablation`:

* :func:`evaluate_asr`: ASR of a model on a prompt set with no heads or a head set ablated,
  with an exact Clopper-Pearson interval (:func:`success_rate`); the judge is pluggable
  (:mod:`safety_heads.evaluation.judges`), and the paper's keyword judge's figure is kept
  beside it on the same answers.
* :func:`asr_curve`: ASR with the first 0, 1, ..., k heads of an order ablated (a Sahara
  order): the paper's "ASR vs number of ablated heads".

Both take ``out=path``: the result file is written after every batch and resumed from
(:func:`~safety_heads.evaluation.generation.run_batches`).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformer_lens.utilities.statistics import success_rate_ci

from safety_heads.errors import InputError
from safety_heads.evaluation.generation import (
    AnyAblation,
    GenerationConfig,
    Response,
    ablation_dict,
    ablation_from,
    ablation_options,
    heads_of,
    run_batches,
    start_run,
)
from safety_heads.evaluation.judges import (
    EXPLICIT_REFUSAL_PHRASES,
    Judge,
    KeywordJudge,
    Verdict,
    check_verdicts,
    label_counts,
)
from safety_heads.method.ablation import Ablation
from safety_heads.method.heads import Head
from safety_heads.models.interface import HookedChatModel

__all__ = [
    "Rate",
    "AsrResult",
    "AsrCurve",
    "success_rate",
    "asr_figures",
    "answer_figures",
    "evaluate_asr",
    "asr_curve",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rate:
    """``count`` of ``n`` with an exact Clopper-Pearson interval ``[low, high]``."""

    count: int
    n: int
    low: float
    high: float
    confidence: float = 0.95

    @property
    def value(self) -> float:
        return self.count / self.n

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.value,
            "ci": [self.low, self.high],
            "count": self.count,
            "n": self.n,
            "confidence": self.confidence,
        }


def success_rate(outcomes: Sequence[bool], confidence: float = 0.95) -> Rate:
    """Share of True outcomes with its exact (Clopper-Pearson) confidence interval.

    Uses ``transformer_lens.utilities.statistics.success_rate_ci``, which solves the
    binomial tails exactly: 0 of 10 gives [0, 0.3085], 5 of 10 gives [0.1871, 0.8129].
    """
    outcomes = list(outcomes)
    if not outcomes:
        raise InputError("success_rate needs at least one outcome; got none.")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence}.")
    interval = success_rate_ci([bool(o) for o in outcomes], confidence=confidence)
    return Rate(
        interval.n_successes, interval.n_trials, interval.ci_low, interval.ci_high, confidence
    )


def keyword_verdicts(
    responses: Sequence[Response], judge: KeywordJudge | None = None
) -> list[Verdict]:
    """Each response's recorded keyword verdict, or ``judge``'s (default: the paper's
    keyword judge) read from its text where none was recorded."""
    judge = judge or KeywordJudge()
    return [r.keyword or judge.verdict(r.response) for r in responses]


def asr_figures(
    responses: Sequence[Response], judge: str, confidence: float = 0.95
) -> dict[str, Any]:
    """The ASR figures of ``responses`` as written into result files: the judge's rate with
    its interval and label counts, and the same for the paper's keyword judge."""
    rate = success_rate([r.attack_success for r in responses], confidence)
    keywords = keyword_verdicts(responses)
    keyword = success_rate([v.attack_success for v in keywords], confidence)
    return {
        "judge": judge,
        "asr": rate.value,
        "asr_ci": [rate.low, rate.high],
        "n": rate.n,
        "successes": rate.count,
        "confidence": rate.confidence,
        "labels": label_counts([r.verdict for r in responses]),
        "keyword": {
            "judge": KeywordJudge().name,
            "asr": keyword.value,
            "asr_ci": [keyword.low, keyword.high],
            "successes": keyword.count,
            "labels": label_counts(keywords),
        },
    }


def answer_figures(
    judge: Judge,
    prompts: Sequence[str],
    answers: Sequence[str],
    kinds: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Both judges' figures on answers already generated: ``judge``'s attack success
    (compliance) and refusal rates and labels, the paper's keyword judge's attack success and
    refusal rates, and the share with an explicit refusal phrase (the keyword measure of
    over-refusal); with ``kinds`` (e.g. XSTest types, one per prompt) ``judge``'s refusal
    rate of each kind. Rates as :meth:`Rate.to_dict`."""
    verdicts = check_verdicts(judge, judge.judge(list(prompts), list(answers)), len(answers))
    keyword = [KeywordJudge().verdict(a) for a in answers]
    explicit = [KeywordJudge(EXPLICIT_REFUSAL_PHRASES).verdict(a) for a in answers]
    figures = {
        "judge": judge.name,
        "asr": success_rate([v.attack_success for v in verdicts]).to_dict(),
        "refusal_rate": success_rate([v.label == "refusal" for v in verdicts]).to_dict(),
        "labels": label_counts(verdicts),
        "keyword_asr": success_rate([v.attack_success for v in keyword]).to_dict(),
        "keyword_refusal_rate": success_rate([bool(v.refusal) for v in keyword]).to_dict(),
        "keyword_explicit_refusal_rate": success_rate(
            [bool(v.refusal) for v in explicit]
        ).to_dict(),
        "keyword_labels": label_counts(keyword),
    }
    if kinds is not None:
        figures["refusal_by_type"] = {
            kind: success_rate(
                [v.label == "refusal" for v, k in zip(verdicts, kinds, strict=True) if k == kind]
            ).to_dict()
            for kind in sorted(set(kinds))
        }
    return figures


@dataclass(frozen=True)
class AsrResult:
    """ASR of one model under one ablation (``None``: no heads ablated) on one prompt set.

    ``ablation`` may be a :class:`~safety_heads.method.ablation.PromptAblations` (each prompt's
    own heads); ``heads`` then lists every head ablated for some prompt.

    ``asr`` is the judge's rate (``settings["judge"]`` names the judge), ``keyword_asr`` the
    paper's keyword judge's on the same answers; ``labels`` counts the judge's labels.
    ``settings`` holds everything that shaped the result (model, prompts digest, generation
    settings, judge); ``responses`` every prompt, answer and both verdicts.
    """

    ablation: AnyAblation | None
    asr: Rate
    responses: tuple[Response, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def heads(self) -> tuple[Head, ...]:
        return heads_of(self.ablation)

    @property
    def judge(self) -> str:
        return str(self.settings.get("judge", KeywordJudge().name))

    @property
    def labels(self) -> dict[str, int]:
        return label_counts([r.verdict for r in self.responses])

    @property
    def keyword_asr(self) -> Rate:
        return success_rate(
            [v.attack_success for v in keyword_verdicts(self.responses)], self.asr.confidence
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **asr_figures(self.responses, self.judge, self.asr.confidence),
            "heads": [str(h) for h in self.heads],
            "ablation": ablation_dict(self.ablation),
            "responses": [r.to_dict() for r in self.responses],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AsrResult":
        """An AsrResult from a result file's content (``evaluate``, or one point of an
        ``asr-curve``); files written before labels and the keyword figure load too. The
        ablation comes back as an :class:`~safety_heads.method.ablation.Ablation` (per-prompt
        ablations as a :class:`~safety_heads.method.ablation.PromptAblations`)."""
        responses = tuple(Response.from_dict(r) for r in data["responses"])
        settings = dict(data.get("settings", {}))
        settings.setdefault("judge", data.get("judge", KeywordJudge().name))
        confidence = float(data.get("confidence", 0.95))
        return cls(
            ablation_from(data.get("ablation")),
            success_rate([r.attack_success for r in responses], confidence),
            responses,
            settings,
        )


@dataclass(frozen=True)
class AsrCurve:
    """ASR with the first 0, 1, ..., k heads of ``ablation.heads`` ablated, in that order.

    ``points[i]`` is the :class:`AsrResult` with the first ``i`` heads ablated.
    """

    ablation: Ablation
    points: tuple[AsrResult, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        points = [p.to_json() for p in self.points]
        return {
            "order": [str(h) for h in self.ablation.heads],
            "ablation": ablation_dict(self.ablation),
            "judge": self.points[0].judge,
            "asr": [p["asr"] for p in points],
            "asr_ci": [p["asr_ci"] for p in points],
            "keyword_asr": [p["keyword"]["asr"] for p in points],
            "keyword_asr_ci": [p["keyword"]["asr_ci"] for p in points],
            "labels": [p["labels"] for p in points],
            "n": self.points[0].asr.n,
            "points": [{"n_heads": i, **p} for i, p in enumerate(points)],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AsrCurve":
        """An AsrCurve from an ``asr-curve`` result file's content (the settings of the run
        apply to every point)."""
        settings = dict(data.get("settings", {}))
        points = tuple(
            AsrResult.from_json({"settings": settings, **point}) for point in data["points"]
        )
        ablation = ablation_from(data.get("ablation"))
        if ablation is None:  # a curve of no heads: the ablation kind is still recorded
            ablation = Ablation((), **ablation_options(data.get("ablation") or {}))
        return cls(ablation, points, settings)


def evaluate_asr(
    model: HookedChatModel,
    prompts: Sequence[str],
    ablation: AnyAblation | None = None,
    *,
    judge: Any = None,
    config: GenerationConfig | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> AsrResult:
    """ASR of ``model`` on ``prompts`` with ``ablation`` (None: the model as it is; a
    :class:`~safety_heads.method.ablation.PromptAblations`: each prompt with its own heads, the
    paper's per-query setting).

    ``judge``: a judge, a function ``(prompt, response) -> bool``, or None for the default
    :class:`~safety_heads.evaluation.judges.ContentJudge` (reading coherence with ``model``
    before any ablation); the paper's keyword judge's figure is kept beside it. ``out``: a
    JSON file written after every batch and resumed from (see the
    module docstring); the finished file holds ``asr``, ``asr_ci``, ``n``, ``heads`` and
    ``responses``.
    """
    run = start_run(model, prompts, ablation, judge, config, out, "evaluate")
    ablation, judge, checkpoint = run.ablation, run.judge, run.checkpoint
    responses, _ = run_batches(
        model,
        run.prompts,
        ablation,
        judge,
        run.config,
        checkpoint,
        keyword=KeywordJudge(),
        progress=progress,
    )
    rate = success_rate([r.attack_success for r in responses])
    result = AsrResult(ablation, rate, tuple(responses), checkpoint.settings)
    checkpoint.finish(result.to_json())
    keyword = result.keyword_asr
    logger.info(
        "ASR %.3f [%.3f, %.3f] (%s), keyword ASR %.3f, on %d prompts, %s.",
        rate.value,
        rate.low,
        rate.high,
        judge.name,
        keyword.value,
        rate.n,
        ablation.describe() if ablation else "no ablation",
    )
    return result


def asr_curve(
    model: HookedChatModel,
    prompts: Sequence[str],
    ablation: Ablation,
    *,
    judge: Any = None,
    config: GenerationConfig | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> AsrCurve:
    """ASR with the first 0, 1, ..., k heads of ``ablation.heads`` ablated (a Sahara order).

    Each point equals ``evaluate_asr(model, prompts, ablation.with_heads(heads[:i]))``.
    """
    if ablation is not None and ablation.per_prompt is not None:
        raise TypeError("asr_curve takes one head order (an Ablation), not PromptAblations.")
    if ablation is None or not ablation.heads:
        raise InputError("asr_curve needs an ablation with at least one head (the order).")
    run = start_run(model, prompts, ablation, judge, config, out, "asr-curve")
    judge, checkpoint = run.judge, run.checkpoint
    points = []
    for count in range(len(ablation.heads) + 1):
        step = ablation.with_heads(ablation.heads[:count]) if count else None
        responses, _ = run_batches(
            model,
            run.prompts,
            step,
            judge,
            run.config,
            checkpoint,
            prefix=f"heads-{count}/",
            keyword=KeywordJudge(),
            progress=progress,
            desc=f"{count} heads",
        )
        rate = success_rate([r.attack_success for r in responses])
        point = AsrResult(step, rate, tuple(responses), checkpoint.settings)
        points.append(point)
        logger.info(
            "%d heads ablated: ASR %.3f [%.3f, %.3f] (%s), keyword ASR %.3f",
            count,
            rate.value,
            rate.low,
            rate.high,
            judge.name,
            point.keyword_asr.value,
        )
    curve = AsrCurve(ablation, tuple(points), checkpoint.settings)
    checkpoint.finish(curve.to_json())
    return curve
