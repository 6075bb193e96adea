"""Reference loops: the definitions computed the slow, obvious way.

One full forward pass per (head, prompt), one prompt at a time, all positions' logits, as
the paper's public code does. They exist to check the fast path (the test suite) and to
measure it (``benchmarks/``); use :func:`safety_heads.method.ships.ships` and
:func:`safety_heads.method.sahara.sahara` for real work.
"""

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from safety_heads.method.ablation import Ablation
from safety_heads.method.forward import next_token_logprobs
from safety_heads.method.heads import Head
from safety_heads.method.patching import patch_hook, prepare_patching, source_z
from safety_heads.method.principal import principal_angle_score
from safety_heads.models.interface import HookedChatModel

__all__ = [
    "ships_reference",
    "generalized_ships_reference",
    "last_hidden_reference",
    "patching_reference",
]


def ships_reference(
    model: HookedChatModel,
    prompts: Sequence[str],
    heads: Sequence[Head],
    *,
    template: str = "chat",
    kind: str = "undifferentiated",
    epsilon: float = 1e-5,
) -> Float[Tensor, "prompts heads"]:
    """KL(base || ablated) of the next-token distribution, one pass per head and prompt."""
    scores = torch.empty(len(prompts), len(heads), dtype=torch.float64)
    for i, prompt in enumerate(prompts):
        batch = model.encode([prompt], template=template)
        base = next_token_logprobs(model, batch)
        for j, head in enumerate(heads):
            ablated = next_token_logprobs(model, batch, Ablation((head,), kind, epsilon))
            scores[i, j] = (base.exp() * (base - ablated)).sum().item()
    return scores


@torch.no_grad()
def last_hidden_reference(
    model: HookedChatModel,
    prompts: Sequence[str],
    ablation: Ablation | None,
    *,
    template: str = "chat",
) -> Float[Tensor, "prompts d_model"]:
    """Final-norm hidden state at the last position, one full pass per prompt."""
    from safety_heads.method.ablation import ablated

    rows = []
    for prompt in prompts:
        batch = model.encode([prompt], template=template)
        with ablated(model, ablation):
            _, cache = model.bridge.run_with_cache(
                batch.input_ids,
                attention_mask=batch.attention_mask,
                names_filter=lambda name: name == "ln_final.hook_out",
            )
        rows.append(cache["ln_final.hook_out"][0, -1].double())
    return torch.stack(rows)


def generalized_ships_reference(
    model: HookedChatModel,
    prompts: Sequence[str],
    heads: Sequence[Head],
    *,
    fixed: Sequence[Head] = (),
    template: str = "chat",
    kind: str = "undifferentiated",
    epsilon: float = 1e-5,
    rank: int = 1,
) -> Float[Tensor, " heads"]:
    """Principal-angle score of each head in ``heads`` ablated together with ``fixed``,
    against the unablated model, one full pass per (head, prompt)."""
    base = last_hidden_reference(model, prompts, None, template=template)
    scores = torch.empty(len(heads), dtype=torch.float64)
    for j, head in enumerate(heads):
        ablation = Ablation((*fixed, head), kind, epsilon)
        ablated_states = last_hidden_reference(model, prompts, ablation, template=template)
        scores[j] = principal_angle_score(base, ablated_states, rank)
    return scores


@torch.no_grad()
def patching_reference(
    model: HookedChatModel,
    harmful: Sequence[str],
    harmless: Sequence[str],
    heads: Sequence[Head],
    *,
    template: str = "chat",
    system: str | None = None,
) -> Float[Tensor, "prompts heads"]:
    """Activation patching (:mod:`safety_heads.method.patching`): KL(base || patched) of
    the next-token distribution, one pass per head and prompt, one prompt at a time."""
    *_, positions = prepare_patching(model, harmful, harmless, template, system)
    scores = torch.empty(len(harmful), len(heads), dtype=torch.float64)
    for i, prompt in enumerate(harmful):
        source = source_z(model, [harmless[i % len(harmless)]], positions, template, system)
        batch = model.encode([prompt], template, system)
        base = next_token_logprobs(model, batch)
        for j, head in enumerate(heads):
            hook = patch_hook(
                torch.tensor([head.head]), source[head.layer][:, :, head.head], positions
            )
            with model.bridge.hooks(fwd_hooks=[(f"blocks.{head.layer}.attn.hook_z", hook)]):
                patched = next_token_logprobs(model, batch)
            scores[i, j] = (base.exp() * (base - patched)).sum().item()
    return scores
