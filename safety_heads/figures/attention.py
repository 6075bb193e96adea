"""Where do the chosen heads look, with and without the ablation?

Undifferentiated Attention flattens a head's pattern: after ``q x epsilon`` every visible
position gets the same weight. Seeing the pattern of a safety head on a harmful prompt
before and after (which tokens it reads, say the harmful verb, and that the ablation wipes
this out) is the quickest sanity check of a Ships or Sahara result.

:func:`attention_patterns` runs the model on one prompt and keeps the attention patterns
(``blocks.{layer}.attn.hook_pattern``) of the given heads, once as it is and once under an
ablation (by default UA of those same heads). The result is a plain value with a JSON form,
so the report (:mod:`safety_heads.figures.report`) can draw it offline with plotly
(:func:`safety_heads.figures.plots.attention_figure`). :func:`attention_view` turns it into a
circuitsvis widget for Jupyter and Colab. circuitsvis pages load their JavaScript from a
CDN when online: use the widget in notebooks, the plotly figure in offline pages.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from safety_heads.errors import InputError
from safety_heads.method.ablation import Ablation, hooks_for
from safety_heads.method.heads import (
    Head,
    HeadLike,
    check_heads,
    map_from_json,
    map_to_json,
    parse_heads,
)
from safety_heads.models.interface import HookedChatModel

__all__ = ["AttentionPatterns", "attention_patterns", "attention_view"]


@dataclass(frozen=True)
class AttentionPatterns:
    """Attention patterns of some heads on one prompt.

    ``base[i]`` is head ``heads[i]``'s ``[query position, key position]`` pattern without
    ablation; ``ablated[i]`` the same under ``ablation`` (None if no ablated run). ``tokens``
    are the prompt's tokens as text, one per position.
    """

    prompt: str
    tokens: tuple[str, ...]
    heads: tuple[Head, ...]
    base: Float[Tensor, "heads q_pos k_pos"]
    ablated: Float[Tensor, "heads q_pos k_pos"] | None = None
    ablation: Ablation | None = None
    model: str = ""

    def __post_init__(self) -> None:
        n_heads, q_pos, k_pos = self.base.shape
        if len(self.heads) != n_heads or len(self.tokens) != q_pos or q_pos != k_pos:
            raise InputError(
                f"Patterns of shape {tuple(self.base.shape)} do not match {len(self.heads)} "
                f"heads and {len(self.tokens)} tokens (expected [heads, tokens, tokens])."
            )
        if self.ablated is not None and self.ablated.shape != self.base.shape:
            raise InputError(
                f"Ablated patterns {tuple(self.ablated.shape)} and base patterns "
                f"{tuple(self.base.shape)} differ in shape."
            )

    def to_json(self) -> dict[str, Any]:
        ablation = self.ablation
        return {
            "kind": "attention",
            "model": self.model,
            "prompt": self.prompt,
            "tokens": list(self.tokens),
            "heads": [str(h) for h in self.heads],
            "base": map_to_json(self.base),
            "ablated": map_to_json(self.ablated),
            "ablation": None
            if ablation is None
            else {
                "heads": [str(h) for h in ablation.heads],
                "kind": ablation.kind,
                "epsilon": ablation.epsilon,
                "via": ablation.via,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AttentionPatterns":
        spec = data.get("ablation")
        ablation = (
            None
            if spec is None
            else Ablation.of(spec["heads"], spec["kind"], spec["epsilon"], spec["via"])
        )
        ablated = map_from_json(data.get("ablated"))
        return cls(
            data["prompt"],
            tuple(data["tokens"]),
            parse_heads(data["heads"]),
            map_from_json(data["base"]).float(),
            None if ablated is None else ablated.float(),
            ablation,
            data.get("model", ""),
        )


def _token_texts(tokenizer: Any, ids: Sequence[int]) -> tuple[str, ...]:
    """Each token decoded alone, so the labels read as text (``" bomb"``, not ``"Ġbomb"``)."""
    return tuple(tokenizer.decode([int(i)]) for i in ids)


@torch.no_grad()
def _patterns(
    model: HookedChatModel, batch: Any, heads: Sequence[Head], ablation: Ablation | None
) -> Tensor:
    """The patterns of ``heads`` on the one-prompt ``batch``: ``[heads, pos, pos]``."""
    kept: dict[int, Tensor] = {}

    def keep(pattern: Float[Tensor, "batch n_heads q_pos k_pos"], *, hook: Any) -> None:
        kept[int(hook.name.split(".")[1])] = pattern[0].detach().float().cpu()

    layers = sorted({h.layer for h in heads})
    capture = [(f"blocks.{layer}.attn.hook_pattern", keep) for layer in layers]
    with model.bridge.hooks(fwd_hooks=hooks_for(model, ablation) + capture):
        model.bridge(
            batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
        )
    return torch.stack([kept[h.layer][h.head] for h in heads])


def attention_patterns(
    model: HookedChatModel,
    prompt: str,
    heads: Sequence[HeadLike] | str,
    *,
    ablation: Ablation | None | str = "same",
    template: str = "chat",
    system: str | None = None,
) -> AttentionPatterns:
    """Patterns of ``heads`` on ``prompt`` (formatted with ``template``), base and ablated.

    ``ablation="same"`` (default) ablates ``heads`` themselves with Undifferentiated
    Attention; pass an :class:`~safety_heads.method.ablation.Ablation` to ablate other heads (and
    see what the kept heads do then), or ``None`` for the base patterns only.
    """
    heads = parse_heads(heads)
    if not heads:
        raise InputError("Name at least one head to show, e.g. heads='8.2,15.6'.")
    check_heads(heads, model.n_layers, model.n_heads)
    if isinstance(ablation, str):
        if ablation != "same":
            raise InputError(f"ablation={ablation!r}: pass 'same', an Ablation, or None.")
        ablation = Ablation(heads)
    batch = model.encode([prompt], template, system)
    base = _patterns(model, batch, heads, None)
    ablated = None if ablation is None else _patterns(model, batch, heads, ablation)
    tokens = _token_texts(model.tokenizer, batch.input_ids[0].tolist())
    return AttentionPatterns(prompt, tokens, heads, base, ablated, ablation, model.name)


def attention_view(patterns: AttentionPatterns, *, show: str = "both") -> Any:
    """A circuitsvis ``attention_heads`` widget of the patterns, for Jupyter and Colab.

    ``show`` is ``both`` (base and ablated side by side, named "2.26" and "2.26 ablated"),
    ``base`` or ``ablated``. Returns circuitsvis' ``RenderedHTML``: a notebook displays it as
    the last expression of a cell (online it loads circuitsvis from a CDN).
    """
    from circuitsvis.attention import attention_heads

    choices = ("both", "base", "ablated")
    if show not in choices:
        raise InputError(f"show={show!r} is not one of {choices}.")
    if show != "base" and patterns.ablated is None:
        raise InputError(
            f"show={show!r} needs ablated patterns; these were computed with ablation=None "
            "(use show='base', or recompute with an ablation)."
        )
    parts, names = [], []
    if show in ("both", "base"):
        parts.append(patterns.base)
        names += [str(h) for h in patterns.heads]
    if show in ("both", "ablated"):
        parts.append(patterns.ablated)
        names += [f"{h} ablated" for h in patterns.heads]
    stacked = torch.cat(parts)  # [views * heads, pos, pos]
    return attention_heads(
        attention=stacked, tokens=list(patterns.tokens), attention_head_names=names
    )
