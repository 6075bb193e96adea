"""Does ablating heads break refusal? Generation, attack success rate, side effects.

Zhou et al. turn head scores into evidence by generating answers to harmful prompts with
the heads ablated and counting the answers that are not refusals: the attack success rate
(ASR). This module does that for any :class:`~safety_heads.ablation.Ablation`:

* :func:`generate_responses`: batched, left-padded generation (KV cache on), greedy by
  default or top-k sampling with a seed (the paper: k = 5), up to ``max_new_tokens`` (128),
  stopping at EOS. Each batch draws its sampling seed from ``(seed, batch index)``, so a run
  resumed half-way samples exactly what an uninterrupted run samples.
* :func:`evaluate_asr`: ASR of a model on a prompt set with no heads or a head set ablated,
  with an exact Clopper-Pearson interval (:func:`success_rate`); the judge is pluggable
  (:mod:`safety_heads.judges`).
* :func:`asr_curve`: ASR with the first 0, 1, ..., k heads of an order ablated (a Sahara
  order): the paper's "ASR vs number of ablated heads".
* :func:`side_effects`: what the ablation costs on harmless prompts: the over-refusal rate
  (share of answers with an explicit refusal phrase) and the KL divergence
  ``KL(p_base || p_ablated)`` of the next-token distribution at the last prompt position.
* :func:`zero_shot_utility`: a thin bridge to EleutherAI's ``lm-eval`` for the paper's
  zero-shot utility tasks, run on an un-hooked copy with the ablation baked into the
  weights. Optional (``pip install lm-eval``) and not exercised offline beyond its wiring.

Generation-heavy runs take ``out=path``: the result file is written after every batch
(:class:`~safety_heads.checkpoint.Checkpoint`), a re-run with the same settings skips the
finished batches, and a re-run with other settings into the same file is refused.
"""

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, get_args

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens.utilities.statistics import success_rate_ci

from safety_heads.ablation import Ablation, PromptAblations
from safety_heads.checkpoint import Checkpoint
from safety_heads.errors import InputError
from safety_heads.forward import generate, next_token_logprobs
from safety_heads.heads import Head, check_heads
from safety_heads.interface import HookedChatModel
from safety_heads.judges import (
    EXPLICIT_REFUSAL_PHRASES,
    ContentJudge,
    Judge,
    KeywordJudge,
    Verdict,
    as_judge,
    check_verdicts,
    label_counts,
)
from safety_heads.models import model_identity
from safety_heads.prompts import Template, TokenBatch

__all__ = [
    "GenerationConfig",
    "Rate",
    "Response",
    "AsrResult",
    "asr_figures",
    "answer_figures",
    "AsrCurve",
    "SideEffects",
    "success_rate",
    "generate_responses",
    "evaluate_asr",
    "asr_curve",
    "next_token_kl",
    "side_effects",
    "zero_shot_utility",
    "UTILITY_TASKS",
]

logger = logging.getLogger(__name__)

UTILITY_TASKS = ("boolq", "rte", "winogrande", "arc_challenge", "openbookqa")
"""The zero-shot tasks of the paper's utility study, as ``lm-eval`` names them."""


@dataclass(frozen=True)
class GenerationConfig:
    """How answers are generated. Greedy unless ``do_sample``; then ``top_k`` (the paper
    uses 5; None samples from the full distribution) and ``seed`` apply."""

    max_new_tokens: int = 128
    do_sample: bool = False
    top_k: int | None = None
    seed: int = 0
    batch_size: int = 8
    template: str = "chat"  # a prompts.Template, checked on construction
    system: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"GenerationConfig.{name} must be an int >= 1, got {value!r}.")
        if self.top_k is not None and not self.do_sample:
            raise InputError(
                f"top_k={self.top_k} only applies to sampling: pass do_sample=True (the "
                "paper samples with top_k=5), or leave top_k out for greedy decoding."
            )
        if self.top_k is not None and self.top_k < 1:
            raise InputError(f"top_k must be >= 1 or None, got {self.top_k}.")
        if self.template not in get_args(Template):
            raise InputError(
                f"template={self.template!r} is not one of {get_args(Template)} (chat: the "
                "model's chat format; query: the paper's '## Query:' template; direct: bare)."
            )

    def settings(self) -> dict[str, Any]:
        """What changes the generated text (greedy runs ignore ``top_k`` and ``seed``)."""
        settings = asdict(self)
        if not self.do_sample:
            settings.pop("top_k")
            settings.pop("seed")
        return settings


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


@dataclass(frozen=True)
class Response:
    """One prompt (the bare query), the model's answer, the judge's verdict and the paper's
    keyword judge's verdict on the same answer (``keyword``; None where not recorded)."""

    prompt: str
    response: str
    verdict: Verdict
    keyword: Verdict | None = None

    @property
    def attack_success(self) -> bool:
        return self.verdict.attack_success

    def to_dict(self) -> dict[str, Any]:
        data = {"prompt": self.prompt, "response": self.response, **self.verdict.to_dict()}
        if self.keyword is not None:
            data["keyword"] = {
                key: value for key, value in self.keyword.to_dict().items() if key != "refusal"
            }
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Response":
        """A response from :meth:`to_dict`'s output (or an older file's, without labels:
        its keyword verdict is then read again from the answer, which needs no model)."""
        keyword = data.get("keyword")
        return cls(
            str(data["prompt"]),
            str(data["response"]),
            Verdict.from_dict(data),
            Verdict.from_dict(keyword)
            if keyword is not None
            else KeywordJudge().verdict(str(data["response"])),
        )


AnyAblation = Ablation | PromptAblations
"""The same heads for every prompt, or each prompt's own heads."""


def _ablation_dict(ablation: AnyAblation | None) -> dict[str, Any]:
    if ablation is None:
        return {"heads": [], "kind": None, "epsilon": None, "via": None}
    return ablation.to_json()


def _heads_of(ablation: AnyAblation | None) -> tuple[Head, ...]:
    """The ablated heads (for per-prompt ablations: every head ablated for some prompt)."""
    return () if ablation is None else ablation.all_heads()


def _rows(ablation: AnyAblation | None, start: int, stop: int) -> AnyAblation | None:
    """The part of ``ablation`` that applies to prompts ``start .. stop-1``."""
    return None if ablation is None else ablation.rows(start, stop)


def _keyword_verdicts(
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
    keyword_verdicts = _keyword_verdicts(responses)
    keyword = success_rate([v.attack_success for v in keyword_verdicts], confidence)
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
            "labels": label_counts(keyword_verdicts),
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

    ``ablation`` may be a :class:`~safety_heads.ablation.PromptAblations` (each prompt's
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
        return _heads_of(self.ablation)

    @property
    def judge(self) -> str:
        return str(self.settings.get("judge", KeywordJudge().name))

    @property
    def labels(self) -> dict[str, int]:
        return label_counts([r.verdict for r in self.responses])

    @property
    def keyword_asr(self) -> Rate:
        return success_rate(
            [v.attack_success for v in _keyword_verdicts(self.responses)], self.asr.confidence
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **asr_figures(self.responses, self.judge, self.asr.confidence),
            "heads": [str(h) for h in self.heads],
            "ablation": _ablation_dict(self.ablation),
            "responses": [r.to_dict() for r in self.responses],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AsrResult":
        """An AsrResult from a result file's content (``evaluate``, or one point of an
        ``asr-curve``); files written before labels and the keyword figure load too. The
        ablation comes back as an :class:`~safety_heads.ablation.Ablation` (per-prompt
        ablations as a :class:`~safety_heads.ablation.PromptAblations`)."""
        responses = tuple(Response.from_dict(r) for r in data["responses"])
        settings = dict(data.get("settings", {}))
        settings.setdefault("judge", data.get("judge", KeywordJudge().name))
        confidence = float(data.get("confidence", 0.95))
        return cls(
            _ablation_from(data.get("ablation")),
            success_rate([r.attack_success for r in responses], confidence),
            responses,
            settings,
        )


def _ablation_options(described: dict[str, Any]) -> dict[str, Any]:
    return {
        key: described[key] for key in ("kind", "epsilon", "via") if described.get(key) is not None
    }


def _ablation_from(described: dict[str, Any] | None) -> AnyAblation | None:
    """The ablation a result file describes (:func:`_ablation_dict`), or None."""
    if not described or not described.get("heads"):
        return None
    options = _ablation_options(described)
    if "per_prompt" in described:
        return PromptAblations(tuple(tuple(row) for row in described["per_prompt"]), **options)
    return Ablation.of(described["heads"], **options)


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
            "ablation": _ablation_dict(self.ablation),
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
        ablation = _ablation_from(data.get("ablation"))
        if ablation is None:  # a curve of no heads: the ablation kind is still recorded
            ablation = Ablation((), **_ablation_options(data.get("ablation") or {}))
        return cls(ablation, points, settings)


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
        verdicts = _keyword_verdicts(self.responses, KeywordJudge(EXPLICIT_REFUSAL_PHRASES))
        return success_rate([bool(v.refusal) for v in verdicts], self.over_refusal.confidence)

    @property
    def mean_kl(self) -> float:
        return sum(self.kl) / len(self.kl)

    def to_json(self) -> dict[str, Any]:
        keyword = self.keyword_over_refusal.to_dict()
        return {
            "heads": [str(h) for h in _heads_of(self.ablation)],
            "ablation": _ablation_dict(self.ablation),
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
            _ablation_from(data.get("ablation")),
            success_rate([bool(r.verdict.refusal) for r in responses]),
            tuple(float(x) for x in data["kl"]),
            responses,
            settings,
        )


def _check_prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        raise TypeError("Pass a list of prompts, not one string: [prompt].")
    prompts = list(prompts)
    if not prompts:
        raise InputError("No prompts given; pass at least one (e.g. load_prompts('advbench')).")
    return prompts


def _active(
    model: HookedChatModel, ablation: AnyAblation | None, prompts: Sequence[str] = ()
) -> AnyAblation | None:
    """``ablation`` checked against the model's shape (and, per prompt, against the number
    of ``prompts``); None when it ablates nothing."""
    if ablation is None or not _heads_of(ablation):
        return None
    if ablation.per_prompt is not None and len(ablation.per_prompt) != len(prompts):
        raise InputError(
            f"The per-prompt ablation has {len(ablation)} rows for {len(prompts)} prompts; "
            "give one head list per prompt, in the prompts' order."
        )
    check_heads(_heads_of(ablation), model.n_layers, model.n_heads)
    return ablation


def _batch_seed(seed: int, index: int) -> int:
    """The sampling seed of batch ``index``: independent streams, stable across processes."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def _run_settings(
    model: HookedChatModel,
    prompts: Sequence[str],
    ablation: AnyAblation | None,
    config: GenerationConfig,
    judge: Judge,
) -> dict[str, Any]:
    """Everything that changes a run's result, as written into its result file."""
    digest = hashlib.sha256(json.dumps(list(prompts)).encode()).hexdigest()
    return {
        **model_identity(model),
        "source": model.source,
        "dtype": str(model.dtype).removeprefix("torch."),
        "prompts": {"n": len(prompts), "sha256": digest},
        "ablation": _ablation_dict(ablation),
        "generation": config.settings(),
        "judge": judge.name,
    }


def _bound_judge(judge: Any, model: HookedChatModel, config: GenerationConfig) -> Judge:
    """``judge`` as :func:`~safety_heads.judges.as_judge` makes it, a
    :class:`~safety_heads.judges.ContentJudge` (the default) reading coherence with the
    evaluated model, as it was before any ablation, with the generation's prompt format."""
    judge = as_judge(judge)
    if isinstance(judge, ContentJudge) and judge.model is None:
        return judge.with_model(model, config.template, config.system)
    return judge


def _checkpoint(out: str | Path | None, kind: str, settings: dict[str, Any]) -> Checkpoint:
    """The run's checkpoint at ``out`` (None: kept in memory), with earlier progress loaded."""
    checkpoint = Checkpoint(Path(out) if out is not None else None, kind, settings)
    checkpoint.resume()
    return checkpoint


def _generate_batch(
    model: HookedChatModel,
    queries: Sequence[str],
    ablation: AnyAblation | None,
    config: GenerationConfig,
    index: int,
) -> tuple[TokenBatch, tuple[str, ...]]:
    batch = model.encode(list(queries), config.template, config.system)
    generation = generate(
        model,
        batch,
        ablation,
        max_new_tokens=config.max_new_tokens,
        do_sample=config.do_sample,
        top_k=config.top_k,
        seed=_batch_seed(config.seed, index),
    )
    return batch, generation.texts


def _batch_kl(
    model: HookedChatModel, batch: TokenBatch, ablation: AnyAblation | None
) -> Float[Tensor, "batch"]:  # noqa: F821
    if ablation is None:
        return torch.zeros(len(batch))
    base = next_token_logprobs(model, batch)  # [batch, d_vocab], float32
    changed = next_token_logprobs(model, batch, ablation)
    return (base.exp() * (base - changed)).sum(-1).cpu()


def _run_batches(
    model: HookedChatModel,
    prompts: Sequence[str],
    ablation: AnyAblation | None,
    judge: Judge,
    config: GenerationConfig,
    checkpoint: Checkpoint,
    *,
    prefix: str = "",
    with_kl: bool = False,
    need_refusal: bool = False,
    keyword: KeywordJudge | None = None,
    progress: bool = True,
    desc: str = "generating",
) -> tuple[list[Response], list[float]]:
    """Generate and judge ``prompts`` batch by batch, saving each batch in ``checkpoint``.

    Batches already in ``checkpoint.progress`` are read back, not generated again. Each
    answer is also read by the paper's keyword judge (``keyword``; None: not kept).
    """
    responses: list[Response] = []
    kl: list[float] = []
    starts = range(0, len(prompts), config.batch_size)
    for index, start in enumerate(
        tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False)
    ):
        queries = list(prompts[start : start + config.batch_size])
        key = f"{prefix}batch-{index}"
        if key not in checkpoint.progress:
            rows = _rows(ablation, start, start + len(queries))
            batch, texts = _generate_batch(model, queries, rows, config, index)
            verdicts = check_verdicts(judge, judge.judge(queries, list(texts)), len(queries))
            if need_refusal and any(v.refusal is None for v in verdicts):
                raise InputError(
                    f"Judge {judge.name!r} does not say which answers are refusals "
                    "(Verdict.refusal is None), so it cannot measure over-refusal; use a "
                    "ContentJudge, a KeywordJudge or a judge whose verdicts set "
                    "refusal=True/False."
                )
            unit: dict[str, Any] = {
                "responses": list(texts),
                "verdicts": [v.to_dict() for v in verdicts],
            }
            if keyword is not None:
                unit["keyword_verdicts"] = [keyword.verdict(t).to_dict() for t in texts]
            if with_kl:
                unit["kl"] = _batch_kl(model, batch, rows).tolist()
            checkpoint.save(key, unit)
        unit = checkpoint.progress[key]
        verdicts = [Verdict.from_dict(v) for v in unit["verdicts"]]
        if keyword is None:
            keyword_verdicts = [None] * len(verdicts)
        elif "keyword_verdicts" in unit:
            keyword_verdicts = [Verdict.from_dict(v) for v in unit["keyword_verdicts"]]
        else:  # progress saved before the keyword figure was kept: it needs no model
            keyword_verdicts = [keyword.verdict(t) for t in unit["responses"]]
        responses.extend(map(Response, queries, unit["responses"], verdicts, keyword_verdicts))
        kl.extend(unit.get("kl", []))
    return responses, kl


def generate_responses(
    model: HookedChatModel,
    prompts: Sequence[str],
    ablation: AnyAblation | None = None,
    config: GenerationConfig | None = None,
    *,
    progress: bool = True,
) -> list[str]:
    """Answers of ``model`` (a ChatModel) to ``prompts`` under ``ablation``, in order.

    Prompts are formatted with ``config.template`` and generated ``config.batch_size`` at a
    time; the text stops before EOS.
    """
    prompts = _check_prompts(prompts)
    config = config or GenerationConfig()
    ablation = _active(model, ablation, prompts)
    texts: list[str] = []
    starts = range(0, len(prompts), config.batch_size)
    for index, start in enumerate(
        tqdm(starts, desc="generating", unit="batch", disable=not progress, leave=False)
    ):
        queries = prompts[start : start + config.batch_size]
        rows = _rows(ablation, start, start + len(queries))
        texts.extend(_generate_batch(model, queries, rows, config, index)[1])
    return texts


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
    :class:`~safety_heads.ablation.PromptAblations`: each prompt with its own heads, the
    paper's per-query setting).

    ``judge``: a judge, a function ``(prompt, response) -> bool``, or None for the paper's
    keyword judge. ``out``: a JSON file written after every batch and resumed from (see the
    module docstring); the finished file holds ``asr``, ``asr_ci``, ``n``, ``heads`` and
    ``responses``.
    """
    prompts = _check_prompts(prompts)
    config = config or GenerationConfig()
    model.check_context(prompts, config.template, config.system, config.max_new_tokens)
    judge = _bound_judge(judge, model, config)
    ablation = _active(model, ablation, prompts)
    settings = _run_settings(model, prompts, ablation, config, judge)
    checkpoint = _checkpoint(out, "evaluate", settings)
    responses, _ = _run_batches(
        model,
        prompts,
        ablation,
        judge,
        config,
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
    prompts = _check_prompts(prompts)
    config = config or GenerationConfig()
    model.check_context(prompts, config.template, config.system, config.max_new_tokens)
    judge = _bound_judge(judge, model, config)
    if ablation is not None and ablation.per_prompt is not None:
        raise TypeError("asr_curve takes one head order (an Ablation), not PromptAblations.")
    if _active(model, ablation) is None:
        raise InputError("asr_curve needs an ablation with at least one head (the order).")
    settings = _run_settings(model, prompts, ablation, config, judge)
    checkpoint = _checkpoint(out, "asr-curve", settings)
    points = []
    for count in range(len(ablation.heads) + 1):
        step = ablation.with_heads(ablation.heads[:count]) if count else None
        responses, _ = _run_batches(
            model,
            prompts,
            step,
            judge,
            config,
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


@torch.no_grad()
def next_token_kl(
    model: HookedChatModel,
    prompts: Sequence[str],
    ablation: AnyAblation | None,
    *,
    template: str = "chat",
    system: str | None = None,
    batch_size: int = 16,
) -> Float[Tensor, "n_prompts"]:  # noqa: F821
    """Per prompt, ``KL(p_base || p_ablated)`` (nats, float32) of the next-token
    distribution at the last prompt position, computed from log-probabilities."""
    prompts = _check_prompts(prompts)
    ablation = _active(model, ablation, prompts)
    parts = [
        _batch_kl(
            model,
            model.encode(prompts[start : start + batch_size], template, system),
            _rows(ablation, start, start + batch_size),
        )
        for start in range(0, len(prompts), batch_size)
    ]
    return torch.cat(parts)


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
    :class:`~safety_heads.judges.ContentJudge` (over-refusal: answers labelled
    ``refusal``); the keyword figure kept beside it (``keyword_over_refusal``) counts
    answers with one of :data:`~safety_heads.judges.EXPLICIT_REFUSAL_PHRASES` (apologies,
    stated inability, AI disclaimers: the paper's full list also holds hedges and warnings,
    "However", "illegal", that benign answers use). A judge must set ``Verdict.refusal``.
    Resumable through ``out`` like :func:`evaluate_asr`.
    """
    prompts = _check_prompts(prompts)
    config = config or GenerationConfig()
    model.check_context(prompts, config.template, config.system, config.max_new_tokens)
    judge = _bound_judge(judge, model, config)
    ablation = _active(model, ablation, prompts)
    settings = _run_settings(model, prompts, ablation, config, judge)
    checkpoint = _checkpoint(out, "side-effects", settings)
    responses, kl = _run_batches(
        model,
        prompts,
        ablation,
        judge,
        config,
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
    weights (:func:`safety_heads.export.load_ablated_hf`), and hands it to
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
    from safety_heads.export import load_ablated_hf

    hf_model = load_ablated_hf(model, _active(model, ablation))
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
