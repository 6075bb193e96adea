"""Forward passes and generation of a :class:`~safety_heads.models.chat_model.ChatModel`, optionally
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

from safety_heads.errors import InputError
from safety_heads.method.ablation import Ablation, PromptAblations, ablated
from safety_heads.models.interface import HookedChatModel
from safety_heads.models.prompts import TokenBatch, answer_rows, left_padded

__all__ = [
    "next_token_logprobs",
    "unembed_float32",
    "generate",
    "Generation",
    "answer_logprobs",
]

FINAL_NORM_HOOK = "ln_final.hook_out"  # the final norm's output, what the output layer reads


def unembed_float32(
    model: HookedChatModel, hidden: Float[Tensor, "rows d_model"]
) -> Float[Tensor, "rows d_vocab"]:
    """Logits from final-norm hidden states, computed in float32 whatever the model's dtype.

    A half-precision model would round its logits to bf16 (about 3 significant digits)
    before the log-softmax, and a KL between two such distributions inherits the rounding;
    the output layer in float32 costs one matrix product per row. Soft-capped logits
    (Gemma-2's ``final_logit_softcapping``) are capped as the model caps them.
    """
    head = model.hf_model.get_output_embeddings()
    head = getattr(head, "original_component", head)  # the bridge wraps it
    bias = getattr(head, "bias", None)
    logits = torch.nn.functional.linear(
        hidden.float(), head.weight.float(), None if bias is None else bias.float()
    )
    config = model.hf_model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    cap = getattr(config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


@torch.no_grad()
def next_token_logprobs(
    model: HookedChatModel, batch: TokenBatch, ablation: Ablation | PromptAblations | None = None
) -> Float[Tensor, "batch d_vocab"]:
    """Log-probabilities of the token after each prompt, float32 (the output layer too, see
    :func:`unembed_float32`), with ``ablation`` applied."""
    _check_rows(batch, ablation)
    last: list[Tensor] = []

    def keep_last(hidden: Float[Tensor, "batch pos d_model"], *, hook: Any) -> None:
        last.append(hidden[:, -1])

    with ablated(model, ablation), model.bridge.hooks(fwd_hooks=[(FINAL_NORM_HOOK, keep_last)]):
        model.bridge(
            batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
        )
    return unembed_float32(model, last[0]).log_softmax(dim=-1)


def _check_rows(batch: TokenBatch, ablation: Ablation | PromptAblations | None) -> None:
    if ablation is not None and ablation.per_prompt is not None and len(ablation) != len(batch):
        raise InputError(
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
    model: HookedChatModel,
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
        raise InputError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
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


@torch.no_grad()
def answer_logprobs(
    model: HookedChatModel,
    prompt_texts: Sequence[str],
    answers: Sequence[str],
    max_answer_tokens: int | None = None,
) -> list[Float[Tensor, "answer_pos"]]:  # noqa: F821
    """Log-probability (float32) of each token of each answer after its formatted prompt,
    teacher-forced through the model as it is (no ablation): one forward pass for all.

    ``prompt_texts`` are formatted prompts (:meth:`ChatModel.format`); each answer is
    tokenized on its own and appended, cut to its first ``max_answer_tokens`` tokens when
    given. An empty answer gives an empty tensor.
    """
    tokenizer = model.tokenizer
    rows, starts = answer_rows(tokenizer, prompt_texts, answers, max_answer_tokens)
    batch = left_padded(tokenizer, prompt_texts, rows).to(model.device)
    width = batch.input_ids.shape[1]
    # Left padding puts every answer at the right edge: only the last `keep` positions
    # predict answer tokens, so only they are unembedded (the vocabulary is the costly part).
    keep = max(len(row) - start for row, start in zip(rows, starts, strict=True)) + 1
    logits = model.hf_model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        logits_to_keep=keep,
    ).logits
    logprobs = logits[:, :-1].float().log_softmax(-1)  # [batch, keep - 1, d_vocab]
    targets = batch.input_ids[:, width - keep + 1 :, None]  # [batch, keep - 1, 1]
    taken = logprobs.gather(-1, targets)[..., 0].cpu()  # [batch, keep - 1]
    return [
        taken[i, keep - 1 - (len(row) - start) :]
        for i, (row, start) in enumerate(zip(rows, starts, strict=True))
    ]
