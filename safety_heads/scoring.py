"""Shared machinery of Ships and Sahara: settings, prompt groups, per-layer ablated passes,
score maps and their JSON form."""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, get_args

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from safety_heads.ablation import AblationKind, UniformVia
from safety_heads.errors import InputError
from safety_heads.heads import Head, HeadLike, check_heads, parse_heads
from safety_heads.suffix import PromptGroup, cache_group, prompt_groups, row_chunks, suffix_hidden

__all__ = ["ScoreSettings", "candidate_mask", "map_to_json", "map_from_json", "ranked"]


@dataclass(frozen=True)
class ScoreSettings:
    """How heads are ablated while scoring, and how the work is batched.

    ``max_batch_tokens`` bounds one pass (rows x prompt width); ``max_group_prompts``
    bounds how many prompts share one residual cache. ``min_shared_tokens``: when the
    prompts of a group all start with the same tokens (a chat template's system prompt)
    and there are at least this many of them, that opening is run once per ablated head
    instead of once per (head, prompt) (see :mod:`safety_heads.suffix`); ``None`` never
    shares, which is only useful to measure what sharing saves. None of the three changes
    the scores beyond float rounding; they trade memory or overhead for speed.
    """

    kind: str = "undifferentiated"
    epsilon: float = 1e-5
    via: str = "query"
    max_batch_tokens: int | None = None  # None: from the memory free now (batch_budget)
    max_group_prompts: int = 64
    min_shared_tokens: int | None = 8

    def __post_init__(self) -> None:
        if self.kind not in get_args(AblationKind):
            raise InputError(f"kind={self.kind!r} is not one of {get_args(AblationKind)}.")
        if self.via not in get_args(UniformVia):
            raise InputError(f"via={self.via!r} is not one of {get_args(UniformVia)}.")
        if not math.isfinite(self.epsilon) or self.epsilon <= 0:
            raise InputError(f"epsilon must be a finite number > 0, got {self.epsilon!r}.")
        for name in ("max_batch_tokens", "max_group_prompts"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.min_shared_tokens is not None and self.min_shared_tokens < 1:
            raise InputError(
                f"min_shared_tokens must be >= 1, or None to never share an opening; "
                f"got {self.min_shared_tokens}."
            )

    def shared_opening(self, shared: int) -> int:
        """How many of a group's ``shared`` opening tokens to run once per ablation: all of
        them when there are enough, else none."""
        if self.min_shared_tokens is None or shared < self.min_shared_tokens:
            return 0
        return shared

    def provenance(self) -> dict[str, Any]:
        """The settings that change results (batching does not)."""
        return {"ablation": self.kind, "epsilon": self.epsilon, "via": self.via}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def candidate_mask(
    model: Any, heads: Sequence[HeadLike] | str | None
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


def build_groups(
    model: Any,
    texts: Sequence[str],
    fixed: Bool[Tensor, "n_layers n_heads"],
    settings: ScoreSettings,
) -> list[PromptGroup]:
    """Length-sorted prompt groups with residuals cached under the ``fixed`` ablation."""
    return [
        cache_group(model, index, batch, fixed, settings.kind, settings.epsilon, settings.via)
        for index, batch in prompt_groups(model.tokenizer, texts, settings.max_group_prompts)
    ]


def group_hidden(groups: Sequence[PromptGroup]) -> Float[Tensor, "prompts d_model"]:
    """The groups' cached last-position hidden states, in the caller's prompt order."""
    n = sum(len(g.index) for g in groups)
    first = groups[0].hidden
    out = torch.empty(n, first.shape[-1], dtype=first.dtype, device=first.device)
    for group in groups:
        out[group.index.to(first.device)] = group.hidden
    return out


CPU_BATCH_TOKENS = 4096  # larger passes gain nothing on a CPU; they only hold more memory
GPU_BATCH_TOKENS = 1 << 16


def free_memory(device: torch.device) -> int:
    """Bytes free for activations now: free GPU memory on CUDA, available RAM otherwise."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30  # not Linux: assume 4 GiB


def batch_budget(model: Any, width: int, share: float = 0.5) -> int:
    """Tokens (rows x prompt width) per layer-suffix pass that fit in ``share`` of the free
    memory (:func:`free_memory`), at most :data:`GPU_BATCH_TOKENS` on a GPU and
    :data:`CPU_BATCH_TOKENS` on a CPU. Per token, one layer holds about 8 hidden-sized
    vectors (residual, norm, queries, keys, values, attention output) and 3 MLP-sized ones
    in the model's dtype, and eager attention's scores and pattern, ``2 x n_heads x width``
    float32 numbers."""
    config = model.hf_model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    d_model = config.hidden_size
    d_mlp = getattr(config, "intermediate_size", 4 * d_model) or 4 * d_model
    itemsize = torch.finfo(model.dtype).bits // 8 if model.dtype.is_floating_point else 4
    per_token = itemsize * (8 * d_model + 3 * d_mlp) + 4 * 2 * model.n_heads * max(1, width)
    device = model.device
    cap = GPU_BATCH_TOKENS if device.type == "cuda" else CPU_BATCH_TOKENS
    return max(width, min(cap, int(share * free_memory(device) / per_token)))


def layer_hidden(
    model: Any,
    groups: Sequence[PromptGroup],
    layer: int,
    heads: Sequence[int],
    fixed: Bool[Tensor, "n_layers n_heads"],
    settings: ScoreSettings,
) -> Float[Tensor, "heads prompts d_model"]:
    """Last-position hidden states of every prompt with each of ``heads`` (of ``layer``)
    ablated on top of ``fixed``, computed on layer suffixes in batched passes."""
    n_prompts = sum(len(g.index) for g in groups)
    out: Tensor | None = None
    head_ids = torch.tensor(list(heads))
    for group in groups:
        size = len(group.index)
        # Row r ablates heads[r // size] for prompt r % size of this group.
        slot_of_row = torch.arange(len(heads)).repeat_interleave(size)
        prompt_of_row = torch.arange(size).repeat(len(heads))
        # Rows per pass are bounded by the full width even when the opening is shared: the
        # remainder rows still attend to (and hold keys for) every position.
        width = group.batch.input_ids.shape[1]
        opening = settings.shared_opening(group.shared)
        budget = settings.max_batch_tokens or batch_budget(model, width)
        for part in row_chunks(len(slot_of_row), width, budget):
            n_rows = part.stop - part.start
            mask = fixed.expand(n_rows, -1, -1).clone()
            mask[torch.arange(n_rows), layer, head_ids[slot_of_row[part]]] = True
            # Sharing pays only when several rows of this pass ablate the same head.
            shares = n_rows > len(slot_of_row[part].unique())
            hidden = suffix_hidden(
                model,
                group,
                layer,
                prompt_of_row[part],
                mask,
                settings.kind,
                settings.epsilon,
                settings.via,
                opening if shares else 0,
            )
            if out is None:
                out = hidden.new_empty(len(heads), n_prompts, hidden.shape[-1])
            targets = group.index[prompt_of_row[part]].to(hidden.device)
            out[slot_of_row[part].to(hidden.device), targets] = hidden
    assert out is not None
    return out


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
