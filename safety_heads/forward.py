"""Forward passes and generation of a :class:`~safety_heads.models.ChatModel`, optionally
with heads ablated.

The next-token distribution at the last prompt position (the first token of the answer)
is what Ships compares; it is returned as float32 log-probabilities whatever the model's
dtype. Generation is greedy by default, left-padded, with the KV cache, and stops at EOS.
"""


from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from safety_heads.ablation import Ablation, PromptAblations, ablated
from safety_heads.prompts import TokenBatch

__all__ = ["next_token_logprobs", "generate", "Generation"]


@torch.no_grad()
def next_token_logprobs(
    model: Any, batch: TokenBatch, ablation: Ablation | PromptAblations | None = None
) -> Float[Tensor, "batch d_vocab"]:
    """Log-probabilities of the token after each prompt, float32, with ``ablation`` applied."""
    _check_rows(batch, ablation)
    with ablated(model, ablation):
        logits = model.bridge(
            batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
        )
    return logits[:, -1].float().log_softmax(dim=-1)


def _check_rows(batch: TokenBatch, ablation: Ablation | PromptAblations | None) -> None:
    if isinstance(ablation, PromptAblations) and len(ablation) != len(batch):
        raise ValueError(
            f"The per-prompt ablation has {len(ablation)} rows but the batch has {len(batch)} "
            "prompts; pass the rows of exactly these prompts (PromptAblations.rows)."
        )


@dataclass(frozen=True)
class Generation:
    """Generated continuations of one batch: new token ids and their decoded text."""

    tokens: tuple[tuple[int, ...], ...]
    texts: tuple[str, ...]


def _cut_at_eos(row: Sequence[int], eos: int | None) -> tuple[int, ...]:
    row = tuple(int(t) for t in row)
    if eos is not None and eos in row:
        return row[: row.index(eos)]
    return row


@torch.no_grad()
def generate(
    model: Any,
    batch: TokenBatch,
    ablation: Ablation | PromptAblations | None = None,
    *,
    max_new_tokens: int = 128,
    do_sample: bool = False,
    top_k: int | None = None,
    seed: int = 0,
) -> Generation:
    """Continue each prompt of ``batch`` (greedy unless ``do_sample``), under ``ablation``.

    Sampling draws from the ``top_k`` most likely tokens with a fixed ``seed`` (the global
    torch RNG state is restored afterwards). The continuation stops at EOS; the EOS token
    itself is not part of the returned tokens or text.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
    _check_rows(batch, ablation)
    eos = model.tokenizer.eos_token_id
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), ablated(model, ablation):
        torch.manual_seed(seed)
        output: Int[Tensor, "batch total"] = model.bridge.generate(
            batch.input_ids,
            attention_mask=batch.attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            top_k=top_k,
            stop_at_eos=eos is not None,
            eos_token_id=eos,
            return_type="tokens",
            verbose=False,
        )
    new = output[:, batch.input_ids.shape[1] :].tolist()
    tokens = tuple(_cut_at_eos(row, eos) for row in new)
    texts = tuple(model.tokenizer.decode(list(t), skip_special_tokens=True) for t in tokens)
    return Generation(tokens, texts)
