"""Generating answers, with or without heads ablated: the machinery every evaluation runs on.

* :func:`generate_responses`: batched, left-padded generation (KV cache on), greedy by
  default or top-k sampling with a seed (the paper: k = 5), up to ``max_new_tokens`` (128),
  stopping at EOS. Each batch draws its sampling seed from ``(seed, batch index)``, so a run
  resumed half-way samples exactly what an uninterrupted run samples.
* :func:`next_token_kl`: ``KL(p_base || p_ablated)`` of the next-token distribution at the
  last prompt position.
* :func:`run_batches`: generate and judge prompts batch by batch, saving each batch in a
  :class:`~safety_heads.checkpoint.Checkpoint`; :mod:`~safety_heads.evaluation.asr` and
  :mod:`~safety_heads.evaluation.side_effects` build on it, so that a result file is
  written after every batch, a re-run with the same settings skips the finished batches,
  and a re-run with other settings into the same file is refused.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, get_args

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from safety_heads.checkpoint import Checkpoint
from safety_heads.errors import InputError
from safety_heads.evaluation.judges import (
    ContentJudge,
    Judge,
    KeywordJudge,
    Verdict,
    as_judge,
    check_verdicts,
)
from safety_heads.method.ablation import Ablation, PromptAblations
from safety_heads.method.forward import generate, next_token_logprobs
from safety_heads.method.heads import Head, check_heads
from safety_heads.models.chat_model import model_identity
from safety_heads.models.interface import HookedChatModel
from safety_heads.models.prompts import Template, TokenBatch

__all__ = [
    "AnyAblation",
    "GenerationConfig",
    "Response",
    "generate_responses",
    "next_token_kl",
]


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


def ablation_dict(ablation: AnyAblation | None) -> dict[str, Any]:
    if ablation is None:
        return {"heads": [], "kind": None, "epsilon": None, "via": None}
    return ablation.to_json()


def heads_of(ablation: AnyAblation | None) -> tuple[Head, ...]:
    """The ablated heads (for per-prompt ablations: every head ablated for some prompt)."""
    return () if ablation is None else ablation.all_heads()


def ablation_rows(ablation: AnyAblation | None, start: int, stop: int) -> AnyAblation | None:
    """The part of ``ablation`` that applies to prompts ``start .. stop-1``."""
    return None if ablation is None else ablation.rows(start, stop)


def ablation_options(described: dict[str, Any]) -> dict[str, Any]:
    return {
        key: described[key] for key in ("kind", "epsilon", "via") if described.get(key) is not None
    }


def ablation_from(described: dict[str, Any] | None) -> AnyAblation | None:
    """The ablation a result file describes (:func:`ablation_dict`), or None."""
    if not described or not described.get("heads"):
        return None
    options = ablation_options(described)
    if "per_prompt" in described:
        return PromptAblations(tuple(tuple(row) for row in described["per_prompt"]), **options)
    return Ablation.of(described["heads"], **options)


def check_prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        raise TypeError("Pass a list of prompts, not one string: [prompt].")
    prompts = list(prompts)
    if not prompts:
        raise InputError("No prompts given; pass at least one (e.g. load_prompts('advbench')).")
    return prompts


def active_ablation(
    model: HookedChatModel, ablation: AnyAblation | None, prompts: Sequence[str] = ()
) -> AnyAblation | None:
    """``ablation`` checked against the model's shape (and, per prompt, against the number
    of ``prompts``); None when it ablates nothing."""
    if ablation is None or not heads_of(ablation):
        return None
    if ablation.per_prompt is not None and len(ablation.per_prompt) != len(prompts):
        raise InputError(
            f"The per-prompt ablation has {len(ablation)} rows for {len(prompts)} prompts; "
            "give one head list per prompt, in the prompts' order."
        )
    check_heads(heads_of(ablation), model.n_layers, model.n_heads)
    return ablation


def _batch_seed(seed: int, index: int) -> int:
    """The sampling seed of batch ``index``: independent streams, stable across processes."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def run_settings(
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
        "ablation": ablation_dict(ablation),
        "generation": config.settings(),
        "judge": judge.name,
    }


def bound_judge(judge: Any, model: HookedChatModel, config: GenerationConfig) -> Judge:
    """``judge`` as :func:`~safety_heads.evaluation.judges.as_judge` makes it, a
    :class:`~safety_heads.evaluation.judges.ContentJudge` (the default) reading coherence with the
    evaluated model, as it was before any ablation, with the generation's prompt format."""
    judge = as_judge(judge)
    if isinstance(judge, ContentJudge) and judge.model is None:
        return judge.with_model(model, config.template, config.system)
    return judge


def open_checkpoint(out: str | Path | None, kind: str, settings: dict[str, Any]) -> Checkpoint:
    """The run's checkpoint at ``out`` (None: kept in memory), with earlier progress loaded."""
    checkpoint = Checkpoint(Path(out) if out is not None else None, kind, settings)
    checkpoint.resume()
    return checkpoint


@dataclass(frozen=True)
class Run:
    """A generation run, checked and ready: :func:`start_run`'s output."""

    prompts: list[str]
    config: GenerationConfig
    judge: Judge
    ablation: AnyAblation | None
    checkpoint: Checkpoint


def start_run(
    model: HookedChatModel,
    prompts: Sequence[str],
    ablation: AnyAblation | None,
    judge: Any,
    config: GenerationConfig | None,
    out: str | Path | None,
    kind: str,
) -> Run:
    """Check a run's inputs before any generation (prompts, context length, ablation),
    bind its judge, and open its checkpoint at ``out`` with earlier progress loaded."""
    prompts = check_prompts(prompts)
    config = config or GenerationConfig()
    model.check_context(prompts, config.template, config.system, config.max_new_tokens)
    judge = bound_judge(judge, model, config)
    ablation = active_ablation(model, ablation, prompts)
    settings = run_settings(model, prompts, ablation, config, judge)
    return Run(prompts, config, judge, ablation, open_checkpoint(out, kind, settings))


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


def batch_kl(
    model: HookedChatModel, batch: TokenBatch, ablation: AnyAblation | None
) -> Float[Tensor, "batch"]:  # noqa: F821
    if ablation is None:
        return torch.zeros(len(batch))
    base = next_token_logprobs(model, batch)  # [batch, d_vocab], float32
    changed = next_token_logprobs(model, batch, ablation)
    return (base.exp() * (base - changed)).sum(-1).cpu()


def run_batches(
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
            rows = ablation_rows(ablation, start, start + len(queries))
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
                unit["kl"] = batch_kl(model, batch, rows).tolist()
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
    prompts = check_prompts(prompts)
    config = config or GenerationConfig()
    ablation = active_ablation(model, ablation, prompts)
    texts: list[str] = []
    starts = range(0, len(prompts), config.batch_size)
    for index, start in enumerate(
        tqdm(starts, desc="generating", unit="batch", disable=not progress, leave=False)
    ):
        queries = prompts[start : start + config.batch_size]
        rows = ablation_rows(ablation, start, start + len(queries))
        texts.extend(_generate_batch(model, queries, rows, config, index)[1])
    return texts


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
    prompts = check_prompts(prompts)
    ablation = active_ablation(model, ablation, prompts)
    parts = [
        batch_kl(
            model,
            model.encode(prompts[start : start + batch_size], template, system),
            ablation_rows(ablation, start, start + batch_size),
        )
        for start in range(0, len(prompts), batch_size)
    ]
    return torch.cat(parts)
