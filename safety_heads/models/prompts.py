"""Prompt formats and batch encoding.

Zhou et al. query models in three ways, all available here as ``template``:

``chat``
    The model's own chat format: the tokenizer's chat template when it has one, else a
    built-in format (``llama-2``: ``[INST] {query} [/INST]``; ``vicuna``: the v1.1
    ``USER: {query} ASSISTANT:``) chosen from the model's name or given explicitly.
``query``
    The paper's template ``## Query: {query}\\n## Answer:`` with no system prompt.
``direct``
    The bare query.

No system prompt is added by default (as in the paper). Some chat templates insert one of
their own when none is given (SmolLM2's does); that is part of the model's chat format and
is kept.

Token rules: batches are left-padded, carry an attention mask and position ids that count
only real tokens, and start with exactly one BOS token when the tokenizer adds one by
default (Llama-2, Vicuna, Mistral), and with none otherwise (SmolLM2, Qwen2), whatever the
chat template writes.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from jaxtyping import Int
from torch import Tensor

from safety_heads.errors import InputError

__all__ = [
    "Template",
    "ChatFormat",
    "QUERY_TEMPLATE",
    "TokenBatch",
    "format_prompt",
    "encode_prompts",
    "resolve_chat_format",
]

Template = Literal["chat", "query", "direct"]
ChatFormat = Literal["auto", "tokenizer", "llama-2", "vicuna"]

QUERY_TEMPLATE = "## Query: {query}\n## Answer:"


def _check_choice(name: str, value: str, literal: object) -> None:
    allowed = get_args(literal)
    if value not in allowed:
        raise InputError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}.")


def resolve_chat_format(tokenizer, requested: str = "auto", model_name: str = "") -> str:
    """Pick the chat format: the tokenizer's template if present, else a built-in one.

    ``auto`` uses the tokenizer's template when it has one, else guesses ``llama-2`` or
    ``vicuna`` from ``model_name``; when it cannot, it raises with the choices.
    """
    _check_choice("chat_format", requested, ChatFormat)
    if requested != "auto":
        if requested == "tokenizer" and not getattr(tokenizer, "chat_template", None):
            raise InputError(
                "chat_format='tokenizer' but this tokenizer has no chat template; pass "
                "chat_format='llama-2' or 'vicuna', or use template='query' or 'direct'."
            )
        return requested
    if getattr(tokenizer, "chat_template", None):
        return "tokenizer"
    lowered = model_name.lower()
    if "vicuna" in lowered:
        return "vicuna"
    if "llama-2" in lowered or "llama2" in lowered:
        return "llama-2"
    raise InputError(
        f"The tokenizer of {model_name or 'this model'} has no chat template and the name "
        "does not say which built-in format fits: pass chat_format='llama-2' or 'vicuna' "
        "to load_model, or use template='query' or 'direct'."
    )


def format_prompt(
    query: str,
    *,
    template: str = "chat",
    tokenizer=None,
    chat_format: str = "tokenizer",
    system: str | None = None,
) -> str:
    """Return the prompt text for one query (BOS handling happens at encoding)."""
    _check_choice("template", template, Template)
    if template == "direct":
        return query if system is None else f"{system}\n\n{query}"
    if template == "query":
        text = QUERY_TEMPLATE.format(query=query)
        return text if system is None else f"{system}\n\n{text}"
    if chat_format == "llama-2":
        if system is None:
            return f"[INST] {query.strip()} [/INST]"
        return f"[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{query.strip()} [/INST]"
    if chat_format == "vicuna":
        prefix = "" if system is None else f"{system} "
        return f"{prefix}USER: {query} ASSISTANT:"
    if chat_format != "tokenizer":
        _check_choice("chat_format", chat_format, ChatFormat)
    if tokenizer is None:
        raise InputError("template='chat' with the tokenizer's chat format needs a tokenizer.")
    messages = [] if system is None else [{"role": "system", "content": system}]
    messages.append({"role": "user", "content": query})
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except (TemplateError, ValueError) as error:  # the template's own raise_exception, or none
        hint = "leave the system prompt out (this template may take none), or " if system else ""
        raise InputError(
            f"The tokenizer's chat template cannot format this prompt ({error}); {hint}use "
            "template='query', or chat_format='llama-2' or 'vicuna' (CLI: --template query, "
            "--chat-format)."
        ) from error


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts BOS in front of plain text by default."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return len(ids) > 0 and ids[0] == bos


def pad_token_id(tokenizer) -> int:
    """The id used for padding (its value never matters: padding is masked)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def tokenize_prompt(tokenizer, text: str) -> list[int]:
    """Token ids of one formatted prompt with exactly one BOS where the model uses one."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    if adds_bos(tokenizer):
        while len(ids) > 1 and ids[0] == bos and ids[1] == bos:
            ids = ids[1:]
        if not ids or ids[0] != bos:
            ids = [bos, *ids]
    return ids


@dataclass(frozen=True)
class TokenBatch:
    """A left-padded batch of prompts, ready for a forward pass."""

    texts: tuple[str, ...]
    input_ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]

    @property
    def position_ids(self) -> Int[Tensor, "batch pos"]:
        """Positions counting real tokens only (padding gets 1, as HF does)."""
        return (self.attention_mask.cumsum(-1) - 1).masked_fill(self.attention_mask == 0, 1)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> "TokenBatch":
        return TokenBatch(self.texts, self.input_ids.to(device), self.attention_mask.to(device))

    def select(self, index: slice | Sequence[int]) -> "TokenBatch":
        """Rows of this batch, with padding columns shared by all of them removed."""
        rows = list(range(len(self))[index]) if isinstance(index, slice) else list(index)
        mask = self.attention_mask[rows]
        keep = int(mask.sum(-1).max())
        return TokenBatch(
            tuple(self.texts[i] for i in rows),
            self.input_ids[rows][:, -keep:],
            mask[:, -keep:],
        )


def encode_prompts(tokenizer, texts: Sequence[str]) -> TokenBatch:
    """Tokenize formatted prompt texts into one left-padded batch."""
    if isinstance(texts, str):
        raise TypeError("encode_prompts takes a list of prompt texts, not one string.")
    if len(texts) == 0:
        raise InputError("encode_prompts got no prompts; pass at least one.")
    rows = [tokenize_prompt(tokenizer, t) for t in texts]
    if any(len(r) == 0 for r in rows):
        raise InputError("A prompt tokenized to nothing; remove empty prompts.")
    return left_padded(tokenizer, texts, rows)


def left_padded(tokenizer, texts: Sequence[str], rows: Sequence[Sequence[int]]) -> TokenBatch:
    """Token id ``rows`` (one per text) as one left-padded batch with its attention mask."""
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id(tokenizer), dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, width - len(row) :] = 1
    return TokenBatch(tuple(texts), input_ids, attention_mask)


def answer_rows(
    tokenizer: Any,
    prompt_texts: Sequence[str],
    answers: Sequence[str],
    max_answer_tokens: int | None = None,
) -> tuple[list[list[int]], list[int]]:
    """Token ids of each formatted prompt followed by its answer (tokenized on its own, cut
    to ``max_answer_tokens``), and where each answer starts."""
    rows, starts = [], []
    for prompt, answer in zip(prompt_texts, answers, strict=True):
        head = tokenize_prompt(tokenizer, prompt)
        tail = list(tokenizer(answer, add_special_tokens=False)["input_ids"]) if answer else []
        tail = tail[:max_answer_tokens] if max_answer_tokens is not None else tail
        rows.append(head + tail)
        starts.append(len(head))
    return rows, starts
