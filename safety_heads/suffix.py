"""The fast path behind Ships and Sahara: cached residuals, layer suffixes, batched ablations.

Scoring a head means comparing the model with and without that head. Two facts make it
cheap:

1. Ablating a head in layer ``l`` cannot change anything before layer ``l``. So the
   residual stream entering every layer is cached once per prompt group (with any fixed
   heads already ablated), and each ablated pass runs only layers ``l .. L-1`` from the
   cached residual.
2. Ablations of different heads are independent. One pass stacks many (head, prompt) rows
   along the batch axis; a single hook per layer ablates a different head in each row
   (``safety_heads.ablation`` hooks take a ``[rows, n_layers, n_heads]`` mask).

Only the final-norm hidden state of the last position is kept (Generalized Ships needs
nothing else); Ships applies the unembedding to that one position instead of to every
position. Rows per pass are bounded by a token budget (rows x prompt width), which bounds
memory.

The suffix runs through the wrapped Hugging Face decoder with its layer list temporarily
cut to ``layers[l:]``: hook names keep their global layer index, masks and rotary
embeddings are built by the model's own code, and the result equals a full forward pass
bit for bit (the test suite checks it against the one-pass-per-head reference loop).
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from safety_heads.ablation import ablation_hooks
from safety_heads.prompts import TokenBatch, encode_prompts

__all__ = ["PromptGroup", "prompt_groups", "cache_group", "suffix_hidden", "unembed_logprobs"]


@dataclass
class PromptGroup:
    """Prompts of similar length encoded together, with their cached residual streams.

    ``index`` holds the positions of these prompts in the caller's prompt list.
    ``resid_pre[l]`` is the residual stream entering layer ``l``; ``hidden`` the final-norm
    hidden state at the last position; both with the group's fixed heads ablated.
    """

    index: Int[Tensor, " group"]
    batch: TokenBatch
    resid_pre: list[Tensor]
    hidden: Float[Tensor, "group d_model"]


def prompt_groups(tokenizer: Any, texts: Sequence[str], max_prompts: int) -> list[tuple[list[int], TokenBatch]]:
    """Split formatted prompts into length-sorted groups of at most ``max_prompts``.

    Sorting by token length keeps the padding of each group small.
    """
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    groups = []
    for start in range(0, len(order), max_prompts):
        chosen = order[start : start + max_prompts]
        groups.append((chosen, encode_prompts(tokenizer, [texts[i] for i in chosen])))
    return groups


def _decoder(model: Any) -> Any:
    hf_model = model.hf_model
    return hf_model.get_decoder() if hasattr(hf_model, "get_decoder") else hf_model.model


def _layer_hooks(mask: Bool[Tensor, "rows n_layers n_heads"], first_layer: int, kind: str, epsilon: float, via: str) -> list:
    """Ablation hooks for layers ``first_layer`` on (earlier layers do not run)."""
    trimmed = mask.clone()
    trimmed[:, :first_layer] = False
    return ablation_hooks(trimmed, kind, epsilon, via)


@torch.no_grad()
def cache_group(
    model: Any,
    index: Sequence[int],
    batch: TokenBatch,
    fixed: Bool[Tensor, "n_layers n_heads"],
    kind: str,
    epsilon: float,
    via: str,
) -> PromptGroup:
    """One full pass over ``batch`` with the ``fixed`` heads ablated, caching residuals."""
    batch = batch.to(model.device)
    residuals: dict[int, Tensor] = {}

    def keep(layer: int):
        def hook(resid: Tensor, *, hook: Any) -> Tensor:
            residuals[layer] = resid.detach()
            return resid

        return hook

    hooks = [(f"blocks.{layer}.hook_resid_pre", keep(layer)) for layer in range(model.n_layers)]
    hooks += ablation_hooks(fixed, kind, epsilon, via) if bool(fixed.any()) else []
    with model.bridge.hooks(fwd_hooks=hooks):
        output = _decoder(model)(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
        )
    hidden = output.last_hidden_state[:, -1]
    resid_pre = [residuals[layer] for layer in range(model.n_layers)]
    return PromptGroup(torch.as_tensor(list(index)), batch, resid_pre, hidden)


@torch.no_grad()
def suffix_hidden(
    model: Any,
    group: PromptGroup,
    layer: int,
    rows: Int[Tensor, " rows"],
    mask: Bool[Tensor, "rows n_layers n_heads"],
    kind: str,
    epsilon: float,
    via: str,
) -> Float[Tensor, "rows d_model"]:
    """Final-norm last-position hidden states of ``rows`` (prompt indices within the
    group), running layers ``layer..L-1`` from the cache with ``mask[i]`` ablated in row i.

    ``mask`` must include the group's fixed heads (for layers from ``layer`` on).
    """
    decoder = _decoder(model)
    rows = rows.to(group.batch.input_ids.device)
    resid = group.resid_pre[layer][rows]
    attention_mask = group.batch.attention_mask[rows]
    position_ids = group.batch.position_ids[rows]
    layers = decoder.layers
    with model.bridge.hooks(fwd_hooks=_layer_hooks(mask, layer, kind, epsilon, via)):
        decoder.layers = torch.nn.ModuleList(list(layers)[layer:])
        try:
            output = decoder(
                inputs_embeds=resid,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
            )
        finally:
            decoder.layers = layers
    return output.last_hidden_state[:, -1]


@torch.no_grad()
def unembed_logprobs(model: Any, hidden: Float[Tensor, "rows d_model"]) -> Float[Tensor, "rows d_vocab"]:
    """Next-token log-probabilities (float32) from final-norm hidden states."""
    return model.hf_model.lm_head(hidden).float().log_softmax(dim=-1)


def row_chunks(n_rows: int, width: int, max_tokens: int) -> Iterator[slice]:
    """Slices of at most ``max_tokens // width`` rows (at least one)."""
    step = max(1, max_tokens // max(1, width))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))
