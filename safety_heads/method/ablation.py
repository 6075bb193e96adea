"""Ablating attention heads with hooks.

Zhou et al. (section 3.1) knock out one head in two ways:

Undifferentiated Attention (``kind="undifferentiated"``)
    Multiply the head's query by a tiny ``epsilon`` (1e-5). Its attention scores become
    ~0, so after the softmax it attends uniformly to every position it may see (causal mask,
    padding excluded) and outputs the mean of those positions' value vectors. Two routes
    give the same result to float tolerance: ``via="query"`` scales the query (the paper's
    definition; ``epsilon`` matters), ``via="pattern"`` sets the head's pre-softmax scores
    to one constant over the visible keys, which makes its pattern exactly uniform (the
    ``epsilon -> 0`` limit; ``epsilon`` is unused). Masked keys stay masked, so left
    padding is respected.
Scaling Contribution (``kind="scale"``)
    Multiply the head's output ``z`` (the attention-weighted values, before the output
    projection) by ``epsilon``: the head contributes ~nothing.
Mean (``kind="mean"``)
    Replace the head's query by the mean of the queries of all heads of its layer (the
    reference code's ``mean_mask``).

Everything is per *query* head, so grouped-query attention (several query heads sharing
one key/value head) needs no special case. Hooks never touch weights, so nothing leaks
into the next forward pass; :func:`ablated` removes them on exit, also after an error.

Hooks are built from a ``[batch, n_heads]`` mask of the heads to ablate (a batch of 1
broadcasts), so one forward pass can ablate a different head in every batch row.
"""

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, get_args, no_type_check

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from safety_heads.errors import InputError
from safety_heads.method.heads import Head, HeadLike, check_heads, parse_heads
from safety_heads.models.interface import HookedChatModel

__all__ = [
    "AblationMethod",
    "Ablation",
    "PromptAblations",
    "AblationKind",
    "ablated",
    "ablation_hooks",
    "heads_mask",
]

AblationKind = Literal["undifferentiated", "scale", "mean"]
UniformVia = Literal["query", "pattern"]
Hook = tuple[str, Callable[..., Tensor]]


# Literal-typed for readers and static checkers; checked at run time by __post_init__,
# whose message lists the allowed values (a runtime type checker would say less).
@no_type_check
@dataclass(frozen=True)
class AblationMethod:
    """How heads are knocked out, whichever heads: the ``kind``, its ``epsilon`` and, for
    Undifferentiated Attention, ``via`` (the route). Checked once, on construction, and
    passed as one value through the fast path and the hooks."""

    kind: AblationKind = "undifferentiated"
    epsilon: float = 1e-5
    via: UniformVia = "query"

    def __post_init__(self) -> None:
        if self.kind not in get_args(AblationKind):
            raise InputError(
                f"Ablation kind {self.kind!r} is not one of {get_args(AblationKind)} "
                "(undifferentiated = the paper's Undifferentiated Attention, scale = its "
                "Scaling Contribution, mean = replace the query by the layer's mean query)."
            )
        if self.via not in get_args(UniformVia):
            raise InputError(f"via={self.via!r} is not one of {get_args(UniformVia)}.")
        eps = self.epsilon
        if isinstance(eps, bool) or not isinstance(eps, (int, float)):
            raise TypeError(f"epsilon must be a number, got {eps!r}.")
        if not math.isfinite(eps) or eps <= 0:
            raise InputError(
                f"epsilon must be a finite number > 0, got {eps!r} (the paper uses 1e-5)."
            )

    def describe(self) -> str:
        return f"{self.kind} (epsilon={self.epsilon:g})"


@dataclass(frozen=True)
class Ablation:
    """Which heads to knock out and how. Heads may be given as strings (``"2.26"``).

    :class:`Ablation` (the same heads for every prompt) and :class:`PromptAblations` (each
    prompt's own heads) share one interface: ``method``, ``per_prompt`` (None, or the rows),
    ``all_heads()``, ``rows(start, stop)``, ``mask(n_layers, n_heads)``, ``describe()`` and
    ``to_json()``; code that takes either never needs to ask which one it has.
    """

    heads: tuple[Head, ...]
    kind: str = "undifferentiated"  # an AblationKind, checked on construction
    epsilon: float = 1e-5
    via: str = "query"  # a UniformVia, checked on construction

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", parse_heads(self.heads))
        AblationMethod(self.kind, self.epsilon, self.via)  # checks all three
        if len(set(self.heads)) != len(self.heads):
            repeated = sorted({str(h) for h in self.heads if self.heads.count(h) > 1})
            raise InputError(f"Heads {repeated} are listed more than once; list each once.")

    @classmethod
    def of(
        cls,
        heads: str | Sequence[HeadLike] | HeadLike,
        kind: str = "undifferentiated",
        epsilon: float = 1e-5,
        via: str = "query",
    ) -> "Ablation":
        """Build from any head spelling: ``Ablation.of("2.26,5.1", "scale")``.

        ``kind`` and ``via`` are checked on construction, with an error that lists the
        allowed values.
        """
        return cls(parse_heads(heads), kind, epsilon, via)

    def with_heads(self, heads: Sequence[HeadLike]) -> "Ablation":
        return Ablation(parse_heads(heads), self.kind, self.epsilon, self.via)

    @property
    def method(self) -> AblationMethod:
        return AblationMethod(self.kind, self.epsilon, self.via)

    @property
    def per_prompt(self) -> None:
        """None: the same heads for every prompt (see :class:`PromptAblations`)."""
        return None

    def all_heads(self) -> tuple[Head, ...]:
        return self.heads

    def rows(self, start: int, stop: int) -> "Ablation":
        """The ablation of prompts ``start .. stop-1``: the same heads."""
        return self

    def mask(self, n_layers: int, n_heads: int) -> Bool[Tensor, "1 n_layers n_heads"]:
        """``[1, n_layers, n_heads]``: True where a head is ablated (for every prompt)."""
        return heads_mask(self.heads, n_layers, n_heads)[None]

    def describe(self) -> str:
        heads = ", ".join(map(str, self.heads)) or "no heads"
        return f"{self.method.describe()} of {heads}"

    def to_json(self) -> dict[str, Any]:
        """How result files describe it (read back by ``evaluation``'s loaders)."""
        return {
            "heads": [str(h) for h in self.heads],
            "kind": self.kind,
            "epsilon": self.epsilon,
            "via": self.via,
        }


@dataclass(frozen=True)
class PromptAblations:
    """Each prompt's own heads, ablated the same way: the paper's per-query setting, where
    a query is answered with *its* top Ships heads knocked out.

    ``heads[i]`` are the heads of prompt ``i`` (may be empty: that prompt is left as is).
    Build one from a Ships result with :meth:`ShipsResult.prompt_ablations
    <safety_heads.method.ships.ShipsResult.prompt_ablations>`.
    """

    heads: Sequence[Any]  # one head spelling per prompt; stored as tuple[tuple[Head, ...], ...]
    kind: str = "undifferentiated"
    epsilon: float = 1e-5
    via: str = "query"

    def __post_init__(self) -> None:
        if isinstance(self.heads, str):
            raise TypeError("PromptAblations takes one head list per prompt, not one string.")
        rows = tuple(
            Ablation.of(row, self.kind, self.epsilon, self.via).heads for row in self.heads
        )
        object.__setattr__(self, "heads", rows)

    def __len__(self) -> int:
        return len(self.heads)

    @property
    def method(self) -> AblationMethod:
        return AblationMethod(self.kind, self.epsilon, self.via)

    @property
    def per_prompt(self) -> tuple[tuple[Head, ...], ...]:
        """Each prompt's heads, in the prompts' order."""
        return self.heads

    def to_json(self) -> dict[str, Any]:
        return {
            "heads": [str(h) for h in self.all_heads()],
            "kind": self.kind,
            "epsilon": self.epsilon,
            "via": self.via,
            "per_prompt": [[str(h) for h in row] for row in self.heads],
        }

    def rows(self, start: int, stop: int) -> "PromptAblations":
        """The ablations of prompts ``start .. stop-1``."""
        return PromptAblations(self.heads[start:stop], self.kind, self.epsilon, self.via)

    def all_heads(self) -> tuple[Head, ...]:
        """Every head ablated for some prompt, sorted."""
        return tuple(sorted({head for row in self.heads for head in row}))

    def describe(self) -> str:
        sizes = sorted({len(row) for row in self.heads})
        count = "/".join(map(str, sizes))
        return (
            f"{self.method.describe()} of each prompt's own {count} heads "
            f"({len(self.all_heads())} distinct over {len(self.heads)} prompts)"
        )

    def mask(self, n_layers: int, n_heads: int) -> Bool[Tensor, "prompts n_layers n_heads"]:
        """``[prompts, n_layers, n_heads]``: True where a prompt's head is ablated."""
        if not self.heads:
            return torch.zeros(0, n_layers, n_heads, dtype=torch.bool)
        return torch.stack([heads_mask(row, n_layers, n_heads) for row in self.heads])


def heads_mask(
    heads: Sequence[Head], n_layers: int, n_heads: int
) -> Bool[Tensor, "n_layers n_heads"]:
    """A boolean ``[n_layers, n_heads]`` map with True at ``heads``."""
    check_heads(heads, n_layers, n_heads)
    mask = torch.zeros(n_layers, n_heads, dtype=torch.bool)
    for head in heads:
        mask[head.layer, head.head] = True
    return mask


# Hook factories. Every hook reads a mask of shape [batch or 1, n_heads] and returns a new
# tensor: untouched heads are multiplied by exactly 1 or passed through, so they are bit-exact.


def scale_heads_hook(mask: Bool[Tensor, "b n_heads"], factor: float) -> Callable[..., Tensor]:
    """Multiply the masked heads of a ``[batch, pos, n_heads, d_head]`` activation."""

    def hook(activation: Float[Tensor, "batch pos n_heads d_head"], *, hook: Any) -> Tensor:
        scale = torch.where(mask, factor, 1.0).to(activation.dtype).to(activation.device)
        return activation * scale[:, None, :, None]

    return hook


def mean_query_hook(mask: Bool[Tensor, "b n_heads"]) -> Callable[..., Tensor]:
    """Replace the masked heads' queries by the mean query over the layer's heads."""

    def hook(query: Float[Tensor, "batch pos n_heads d_head"], *, hook: Any) -> Tensor:
        mean = query.float().mean(dim=2, keepdim=True).to(query.dtype)
        chosen = mask.to(query.device)[:, None, :, None]
        return torch.where(chosen, mean.expand_as(query), query)

    return hook


def uniform_scores_hook(mask: Bool[Tensor, "b n_heads"]) -> Callable[..., Tensor]:
    """Set the masked heads' visible pre-softmax scores to 0, so their pattern is uniform.

    A key is visible when its score was not pushed to the dtype's minimum by the causal or
    padding mask; masked keys keep their score and so stay masked.
    """

    def hook(scores: Float[Tensor, "batch n_heads q_pos k_pos"], *, hook: Any) -> Tensor:
        visible = scores > torch.finfo(scores.dtype).min / 2
        chosen = mask.to(scores.device)[:, :, None, None] & visible
        return scores.masked_fill(chosen, 0.0)

    return hook


def query_norm(hf_model: Any) -> str | None:
    """How the model normalises queries before attention: ``None`` (Llama, Mistral, Qwen2,
    Gemma-2 ...), ``"per_head"`` (an RMSNorm over each head's query: Qwen3, Gemma-3) or
    ``"across_heads"`` (one norm over all heads' queries together: OLMo-2)."""
    from safety_heads.method.surgery import decoder_layers

    attention = decoder_layers(hf_model)[0].self_attn
    norm = getattr(attention, "q_norm", None)
    if norm is None:
        return None
    weight = getattr(norm, "weight", None)
    d_head = getattr(hf_model.config, "head_dim", None) or (
        hf_model.config.hidden_size // hf_model.config.num_attention_heads
    )
    return "per_head" if weight is None or weight.numel() == d_head else "across_heads"


def query_hook(model: HookedChatModel, kind: str = "undifferentiated") -> str:
    """The hook at which an ablation of ``kind`` reads or scales a head's query.

    ``hook_q`` (the query projection's output) on most models. Where the attention
    normalises each query (:func:`query_norm`), a query scaled by epsilon before the norm
    comes out of the norm unchanged and the head is not ablated; there Undifferentiated
    Attention scales ``hook_rot_q`` (after the norm and the rotary embedding), which makes
    the head's attention uniform exactly as on Llama. Mean ablation keeps ``hook_q``: with a
    per-head norm the mean pre-norm query is the weight edit's; with one norm across heads
    it would change every head's query, so it is refused.
    """
    hf_model = getattr(model, "hf_model", None)
    norm = query_norm(hf_model) if hf_model is not None else None
    if norm == "across_heads" and kind == "mean":
        raise InputError(
            f"{getattr(model, 'name', 'This model')} normalises the queries of all heads "
            "together (q_norm across heads), so replacing one head's query changes every "
            "head's: mean ablation is not a per-head ablation here. Use "
            "kind='undifferentiated' or 'scale'."
        )
    return "hook_rot_q" if norm is not None and kind == "undifferentiated" else "hook_q"


def ablation_hooks(
    mask: Bool[Tensor, "... n_layers n_heads"],
    method: AblationMethod = AblationMethod(),
    query_hook: str = "hook_q",
) -> list[Hook]:
    """Forward hooks ablating the heads marked in ``mask``.

    ``mask`` is ``[n_layers, n_heads]`` (same heads for every batch row) or
    ``[batch, n_layers, n_heads]`` (its own heads for each row). Layers with nothing
    marked get no hook. ``query_hook``: where Undifferentiated Attention scales the query
    (:func:`query_hook` says which one a model needs).
    """
    if mask.ndim == 2:
        mask = mask[None]
    kind, epsilon, via = method.kind, method.epsilon, method.via
    hooks: list[Hook] = []
    for layer in range(mask.shape[1]):
        layer_mask = mask[:, layer]
        if not bool(layer_mask.any()):
            continue
        prefix = f"blocks.{layer}.attn"
        if kind == "scale":
            hooks.append((f"{prefix}.hook_z", scale_heads_hook(layer_mask, epsilon)))
        elif kind == "mean":
            hooks.append((f"{prefix}.hook_q", mean_query_hook(layer_mask)))
        elif via == "pattern":
            hooks.append((f"{prefix}.hook_attn_scores", uniform_scores_hook(layer_mask)))
        else:
            hooks.append((f"{prefix}.{query_hook}", scale_heads_hook(layer_mask, epsilon)))
    return hooks


def hooks_for(model: HookedChatModel, ablation: Ablation | PromptAblations | None) -> list[Hook]:
    """The hooks that apply ``ablation`` to ``model`` (a ChatModel); none for ``None``.

    With :class:`PromptAblations` the batch must hold exactly its prompts, in order.
    """
    if ablation is None or not ablation.heads:
        return []
    mask = ablation.mask(model.n_layers, model.n_heads)
    return ablation_hooks(mask, ablation.method, query_hook(model, ablation.kind))


@contextmanager
def ablated(model: HookedChatModel, ablation: Ablation | PromptAblations | None) -> Iterator[Any]:
    """Apply ``ablation`` to ``model`` (a ChatModel) inside a ``with`` block.

    A :class:`PromptAblations` applies row ``i``'s heads to batch row ``i``: run exactly
    its prompts, in its order.

    Works for forward passes and for generation with the KV cache (the hooks fire on every
    new token). The hooks are removed on exit, also when the block raises. ``None`` or an
    ablation with no heads leaves the model as it is.
    """
    hooks = hooks_for(model, ablation)
    with model.bridge.hooks(fwd_hooks=hooks):
        yield model
