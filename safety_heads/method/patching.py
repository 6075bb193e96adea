"""Activation patching per head: what a head's output on a harmless prompt does in place
of its output on a harmful one.

Each harmful prompt ``i`` is paired with harmless prompt ``i`` (cycling through the
harmless ones when they are fewer). The positions patched are the ones every prompt ends
with: the chat template's closing tokens after the request ("<|im_end|>\\n<|im_start|>
assistant\\n" and the like), where a refusal is decided and where the two prompts of a pair
line up token for token. For head ``h`` of layer ``l``, its attention output ``z`` at
those positions is replaced by the same head's ``z`` on the paired harmless prompt (run
unablated), and the score is the KL divergence ``KL(p || p_patched)`` of the next-token
distribution at the last position, as in Ships; per prompt, then averaged.

Unlike Ships (which asks what breaks when a head attends uniformly), this asks what changes
when a head behaves as it does on a harmless request: a head that carries the "this is
harmful" signal should score high, a head that every prompt needs should not.

The passes run on the layer-suffix engine of :mod:`safety_heads.method.fast_path`: the
harmful prompts' residual streams are cached once, and each layer's patches run only the
layers from that one on, one (head, prompt) pair per batch row. The harmless prompts need
one forward pass in all.
:func:`~safety_heads.method.per_head_loop.patching_reference` is the one-pass-per-head
loop it is tested against.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from safety_heads.errors import InputError
from safety_heads.method.fast_path import (
    ScoreSettings,
    batch_budget,
    build_groups,
    group_hidden,
    kl_rows,
    row_chunks,
    run_layers,
    unembed_logprobs,
)
from safety_heads.method.heads import Head, ranked
from safety_heads.models.interface import HookedChatModel
from safety_heads.models.prompts import TokenBatch

__all__ = [
    "PatchingScores",
    "patching_scores",
    "common_ending",
    "prepare_patching",
    "source_z",
    "patch_hook",
]


@dataclass(frozen=True)
class PatchingScores:
    """Per-prompt KL of each head's patch (``[prompts, n_layers, n_heads]``) and the number
    of closing positions patched."""

    per_prompt: Float[Tensor, "prompts n_layers n_heads"]
    positions: int

    @property
    def scores(self) -> Float[Tensor, "n_layers n_heads"]:
        return self.per_prompt.mean(dim=0)

    def top(self, k: int = 10) -> list[Head]:
        return [Head(e["layer"], e["head"]) for e in ranked(self.scores, k)]


def common_ending(batch: TokenBatch) -> int:
    """How many tokens every prompt of ``batch`` ends with (left padding), capped so that
    every prompt keeps at least one token of its own before them."""
    lengths = batch.attention_mask.sum(dim=-1)
    shortest = int(lengths.min())
    tail = batch.input_ids[:, -shortest:]
    agree = (tail == tail[:1]).all(dim=0).flip(0)  # from the last position backwards
    return min(int(agree.long().cumprod(dim=0).sum()), shortest - 1)


@torch.no_grad()
def source_z(
    model: HookedChatModel,
    texts: Sequence[str],
    positions: int,
    template: str = "chat",
    system: str | None = None,
    batch_size: int = 16,
) -> list[Float[Tensor, "prompts positions n_heads d_head"]]:
    """Each layer's ``z`` at the last ``positions`` positions of each of ``texts``
    (formatted with ``template``), unablated, ``batch_size`` prompts to a pass."""
    parts: list[list[Tensor]] = []
    for start in range(0, len(texts), batch_size):
        batch = model.encode(list(texts[start : start + batch_size]), template, system)
        kept: dict[int, Tensor] = {}

        def keep(activation: Tensor, *, hook: Any, kept: dict = kept) -> None:
            kept[int(hook.name.split(".")[1])] = activation[:, -positions:].clone()

        hooks = [(f"blocks.{layer}.attn.hook_z", keep) for layer in range(model.n_layers)]
        with model.bridge.hooks(fwd_hooks=hooks):
            model.bridge(
                batch.input_ids,
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids,
            )
        parts.append([kept[layer] for layer in range(model.n_layers)])
    return [torch.cat(layer) for layer in zip(*parts, strict=True)]


def patch_hook(
    heads: Int[Tensor, " rows"], source: Float[Tensor, "rows positions d_head"], positions: int
):
    """Replace head ``heads[r]``'s ``z`` at the last ``positions`` positions of row ``r``
    by ``source[r]``."""

    def hook(z: Float[Tensor, "rows pos n_heads d_head"], *, hook: Any) -> Tensor:
        z = z.clone()
        rows = torch.arange(z.shape[0], device=z.device)
        z[rows, -positions:, heads.to(z.device)] = source.to(z.device, z.dtype)
        return z

    return hook


def prepare_patching(
    model: HookedChatModel,
    harmful: Sequence[str],
    harmless: Sequence[str],
    template: str,
    system: str | None,
) -> tuple[list[str], list[str], int]:
    """The harmful prompts formatted, the harmless prompt paired with each, and how many
    closing positions to patch; bad input is refused here, before any pass."""
    harmful, harmless = list(harmful), list(harmless)
    if not harmful or not harmless:
        raise InputError("Activation patching needs harmful and harmless prompts, both.")
    model.check_context(harmful + harmless, template, system)
    formatted = [model.format(t, template, system) for t in harmful]
    paired = [harmless[i % len(harmless)] for i in range(len(harmful))]
    both = model.encode(harmful + harmless, template, system)
    positions = common_ending(both)
    if positions < 1:
        raise InputError(
            "The prompts share no closing tokens to patch (no chat template after the "
            "request); use template='chat' or 'query'."
        )
    return formatted, paired, positions


@torch.no_grad()
def patching_scores(
    model: HookedChatModel,
    harmful: Sequence[str],
    harmless: Sequence[str],
    *,
    template: str = "chat",
    system: str | None = None,
    max_batch_tokens: int | None = None,
) -> PatchingScores:
    """Every head's activation-patching score (module docstring) on the layer-suffix
    engine: one cached pass over the prompts, then per layer one suffix run per batch of
    (head, prompt) rows."""
    formatted, paired, positions = prepare_patching(model, harmful, harmless, template, system)
    source = source_z(model, paired, positions, template, system)  # in harmful-prompt order
    settings = ScoreSettings(max_batch_tokens=max_batch_tokens, min_shared_tokens=None)
    fixed = torch.zeros(model.n_layers, model.n_heads, dtype=torch.bool)
    groups = build_groups(model, formatted, fixed, settings)
    base = unembed_logprobs(model, group_hidden(groups))
    scores = torch.zeros(len(formatted), model.n_layers, model.n_heads, dtype=torch.float64)
    for layer in range(model.n_layers):
        for group in groups:
            size = len(group.index)
            head_of_row = torch.arange(model.n_heads).repeat_interleave(size)
            prompt_of_row = torch.arange(size).repeat(model.n_heads)
            width = group.batch.input_ids.shape[1]
            budget = settings.max_batch_tokens or batch_budget(model, width)
            for part in row_chunks(len(head_of_row), width, budget):
                rows, heads = prompt_of_row[part], head_of_row[part]
                prompts = group.index[rows]  # in the caller's order
                patch = source[layer][prompts.to(source[layer].device), :, heads]
                hook = patch_hook(heads, patch, positions)
                device = group.batch.input_ids.device
                hidden = run_layers(
                    model,
                    layer,
                    group.resid_pre[layer][rows.to(device)],
                    group.batch.attention_mask[rows.to(device)],
                    group.batch.position_ids[rows.to(device)],
                    [(f"blocks.{layer}.attn.hook_z", hook)],
                )
                changed = unembed_logprobs(model, hidden)
                kl = kl_rows(base[prompts.to(base.device)], changed)
                scores[prompts, layer, heads] = kl.double().cpu()
    return PatchingScores(scores, positions)
