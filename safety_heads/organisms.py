"""Refusing model organisms built from the bundled SmolLM2-135M-Instruct.

The bundled model answers almost every harmful request, so it has no safety behaviour for
Ships or Sahara to find. The organisms below are small safety fine-tunes of it, shipped as
a few MB of weights in ``safety_heads/data/organisms/NAME/`` and applied on top of the
bundled base at load time (``load_model(NAME)``):

``smollm2-refusal``
    LoRA (r=32, shipped as its best rank-8 approximation) on every linear layer: AdvBench,
    HarmBench and harmful-writing training prompts answered with refusals in varied wording,
    harmless Alpaca prompts and harmless lookalikes of harmful ones answered with the base
    model's own answers (self-distillation), so that it keeps helping.
``smollm2-refusal-b``
    A sibling of ``smollm2-refusal`` from the same base: another seed, disjoint training
    splits of every dataset, other refusal wording. The pair stands in for Llama-2-7b-chat
    and Vicuna-7b-v1.5, two fine-tunes of one base.
``smollm2-planted``
    Safety planted in three chosen heads: only those heads' query rows and output-
    projection columns are trained. Its card names the heads: a ground truth that Ships,
    Sahara and the contrastive ranking can be checked against.

Each organism's ``card.json`` holds its recipe, data splits, seed, training time and held-
out results. ``safety-heads organism build NAME`` rebuilds it from scratch on a CPU and
``safety-heads organism evaluate NAME`` measures it again.

Applying an organism is a pure weight edit of a fresh copy of the base: LoRA factors are
merged (``W + scale * B @ A``; scale 1 for truncated updates, which fold it in), planted
slices replace the base's rows and columns. The merged model is cached like the bundled
base, so its ``source`` folder can be reloaded (for weight export) like any other model.
"""

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from safety_heads.errors import InputError, MissingFileError
from safety_heads.heads import Head, parse_heads
from safety_heads.surgery import decoder_layers

__all__ = [
    "ORGANISMS",
    "Organism",
    "organism_folder",
    "apply_organism",
    "merge_lora",
    "read_card",
    "planted_heads",
    "truncate_lora",
    "lora_scale",
]


@dataclass(frozen=True)
class Organism:
    """A shipped organism: its name, what it is, and the kind of weights it ships."""

    name: str
    kind: str  # "lora" or "planted"
    summary: str


ORGANISMS: dict[str, Organism] = {
    "smollm2-refusal": Organism(
        "smollm2-refusal", "lora", "SmolLM2-135M-Instruct with a LoRA safety fine-tune"
    ),
    "smollm2-refusal-b": Organism(
        "smollm2-refusal-b",
        "lora",
        "a sibling LoRA safety fine-tune (other seed, data split and refusal wording)",
    ),
    "smollm2-planted": Organism(
        "smollm2-planted",
        "planted",
        "refusal planted in three known heads (query rows and output columns only)",
    ),
}

WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "card.json"


def organism_folder(name: str) -> Path:
    """Where the organism's shipped weights and card live in the package."""
    if name not in ORGANISMS:
        raise InputError(f"No organism {name!r}; the organisms are {sorted(ORGANISMS)}.")
    return Path(str(resources.files("safety_heads") / "data" / "organisms" / name))


def read_card(name: str) -> dict[str, Any]:
    path = organism_folder(name) / CARD_FILE
    if not path.is_file():
        raise MissingFileError(
            f"Organism {name!r} is not built: {path} is missing. Build it with "
            f"`safety-heads organism build {name}`."
        )
    return json.loads(path.read_text())


def planted_heads(card: dict[str, Any]) -> tuple[Head, ...]:
    """The ground-truth heads of a planted organism (empty for the others)."""
    return parse_heads(card.get("recipe", {}).get("planted_heads") or [])


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
def apply_organism(hf_model: Any, name: str) -> dict[str, Any]:
    """Apply the shipped weights of organism ``name`` to ``hf_model`` in place.

    Returns the organism's card. ``hf_model`` must be a fresh (unhooked) copy of the base.
    """
    card = read_card(name)
    folder = organism_folder(name)
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
        raise InputError(f"Organism {name!r} has an unknown kind {kind!r} in its card.")
    return card
