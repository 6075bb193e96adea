"""An organism's weights applied to the base: LoRA factors merged, planted slices written.

Applying an organism is a pure weight edit of a fresh copy of the base: LoRA factors are
merged (``W + scale * B @ A``; scale 1 for truncated updates, which fold it in), planted
slices replace the base's query rows and output-projection columns of their heads.
:func:`truncate_lora` cuts a trained update to its best low-rank approximation for shipping.
"""

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from safety_heads.errors import InputError
from safety_heads.method.surgery import decoder_layers
from safety_heads.organisms.catalogue import WEIGHTS_FILE, organism_path, planted_heads, read_card

__all__ = ["apply_organism", "merge_lora", "truncate_lora", "lora_scale"]


@torch.no_grad()
def merge_lora(hf_model: Any, factors: dict[str, torch.Tensor], scale: float) -> None:
    """Add ``scale * B @ A`` to each linear layer named in ``factors`` (keys
    ``PATH.lora_A`` [r, d_in] and ``PATH.lora_B`` [d_out, r]), in place, in float32."""
    modules = dict(hf_model.named_modules())
    for key in [k for k in factors if k.endswith(".lora_A")]:
        path = key.removesuffix(".lora_A")
        if path not in modules:
            raise KeyError(f"LoRA factors name {path!r}, which this model does not have.")
        weight = modules[path].weight
        delta = scale * (factors[f"{path}.lora_B"].float() @ factors[key].float())
        weight.copy_((weight.float() + delta).to(weight.dtype))


@torch.no_grad()
def truncate_lora(
    factors: dict[str, torch.Tensor], scale: float, rank: int
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The best rank-``rank`` approximation of each LoRA update ``scale * B @ A``.

    Returns new factors whose product is that approximation with the scale folded in (merge
    them with scale 1), as ``B' = U sqrt(S)``, ``A' = sqrt(S) V^T`` of the update's top
    singular triplets (Eckart-Young: no rank-``rank`` matrix is closer in Frobenius norm),
    in float32; and, per module path, the share of the update's squared Frobenius norm
    kept (1.0 where ``rank`` reaches the update's rank). Works in float64 on the r x r core
    (QR of B and A^T), never on the d_out x d_in update itself.
    """
    if not isinstance(rank, int) or rank < 1:
        raise InputError(f"rank={rank!r}: give a whole number of at least 1.")
    out: dict[str, torch.Tensor] = {}
    kept: dict[str, float] = {}
    for key in [k for k in factors if k.endswith(".lora_A")]:
        path = key.removesuffix(".lora_A")
        if f"{path}.lora_B" not in factors:
            raise KeyError(f"LoRA factors have {key!r} but no {path}.lora_B.")
        a, b = factors[key].double(), factors[f"{path}.lora_B"].double()
        q_b, r_b = torch.linalg.qr(b)
        q_a, r_a = torch.linalg.qr(a.T)
        u, s, vh = torch.linalg.svd(scale * r_b @ r_a.T)
        k = min(rank, s.numel())
        root = s[:k].sqrt()
        out[f"{path}.lora_B"] = ((q_b @ u[:, :k]) * root).float().contiguous()
        out[key] = (root[:, None] * (vh[:k] @ q_a.T)).float().contiguous()
        total = float((s**2).sum())
        kept[path] = float((s[:k] ** 2).sum()) / total if total > 0 else 1.0
    return out, kept


def lora_scale(recipe: dict[str, Any]) -> float:
    """The factor the shipped LoRA factors of a card's recipe are merged with: 1 where the
    build shipped a truncated update with the scale folded in (``shipped_rank``), else
    ``lora_alpha / lora_r`` as peft trains them."""
    if recipe.get("shipped_rank", 0):
        return 1.0
    return float(recipe["lora_alpha"]) / recipe["lora_r"]


@torch.no_grad()
def apply_organism(hf_model: Any, source: str | Path) -> dict[str, Any]:
    """Apply the weights of an organism (a shipped one by name, or a build's folder) to
    ``hf_model`` in place.

    Returns the organism's card. ``hf_model`` must be a fresh (unhooked) copy of the base.
    """
    card = read_card(source)
    folder = organism_path(source)
    tensors = load_file(str(folder / WEIGHTS_FILE))
    kind = card["recipe"]["kind"]
    if kind == "lora":
        merge_lora(hf_model, tensors, lora_scale(card["recipe"]))
    elif kind == "planted":
        d_head = (
            hf_model.config.head_dim
            if getattr(hf_model.config, "head_dim", None)
            else (hf_model.config.hidden_size // hf_model.config.num_attention_heads)
        )
        for head in planted_heads(card):
            attention = decoder_layers(hf_model)[head.layer].self_attn
            rows = slice(head.head * d_head, (head.head + 1) * d_head)
            attention.q_proj.weight[rows, :] = tensors[f"{head.layer}.{head.head}.q_rows"]
            attention.o_proj.weight[:, rows] = tensors[f"{head.layer}.{head.head}.o_columns"]
    else:
        raise InputError(f"Organism {source} has an unknown kind {kind!r} in its card.")
    return card
