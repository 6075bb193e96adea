"""What the method needs from a model, as a :class:`~typing.Protocol`.

Ships, Sahara, the ablations, generation and evaluation take a :class:`HookedChatModel`:
the hooked TransformerLens bridge, the Hugging Face model it wraps, the tokenizer, the
model's shape, and the prompt formatting. :class:`~safety_heads.models.chat_model.ChatModel` (what
:func:`~safety_heads.models.chat_model.load_model` returns) is one; a test or a user can hand in any
object with these members. Functions that take a plain Hugging Face model (weight surgery,
export of edited weights, organism building) say so and type it ``Any``.
"""

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from safety_heads.models.prompts import TokenBatch

__all__ = ["HookedChatModel"]


@runtime_checkable
class HookedChatModel(Protocol):
    """A chat model with hooks, as the method uses it."""

    name: str
    bridge: Any  # transformer_lens.model_bridge.TransformerBridge: hooks and forward passes
    tokenizer: Any  # a Hugging Face tokenizer

    @property
    def hf_model(self) -> Any:
        """The Hugging Face causal LM the bridge wraps (its decoder runs layer suffixes)."""
        ...

    @property
    def n_layers(self) -> int: ...

    @property
    def n_heads(self) -> int:
        """Query heads per layer."""
        ...

    @property
    def n_kv_heads(self) -> int: ...

    @property
    def d_head(self) -> int: ...

    @property
    def device(self) -> torch.device:
        """Where inputs go."""
        ...

    @property
    def dtype(self) -> torch.dtype: ...

    def format(self, query: str, template: str = "chat", system: str | None = None) -> str:
        """The prompt text the model sees for ``query``."""
        ...

    def encode(
        self, queries: Sequence[str], template: str = "chat", system: str | None = None
    ) -> TokenBatch:
        """A left-padded batch of formatted queries on :attr:`device`."""
        ...

    def check_context(
        self,
        queries: Sequence[str],
        template: str = "chat",
        system: str | None = None,
        new_tokens: int = 0,
    ) -> None:
        """Raise, naming the first prompt that does not fit the model's context."""
        ...
