"""Weight surgery: bake a head ablation into the weights of a Hugging Face model copy.

Each ablation of :mod:`safety_heads.method.ablation` has an exact weight-space twin:

* Undifferentiated Attention: scale the head's rows of the query projection (and its
  slice of the query bias, where the model has one, as Qwen2 does) by ``epsilon``;
* Scaling Contribution: scale the head's columns of the output projection by ``epsilon``;
* Mean: replace the head's query rows (and bias slice) by their mean over the layer's heads.

The edits are pure functions from a weight matrix to a new matrix; :func:`ablate_weights`
applies them to a deep copy and returns it, leaving the caller's model untouched
(``in_place=True`` edits a model loaded for export instead of copying it).
"""

import copy
from collections.abc import Sequence
from typing import Any

import torch
from einops import rearrange
from jaxtyping import Float
from torch import Tensor

from safety_heads.errors import InputError
from safety_heads.method.ablation import Ablation, query_norm
from safety_heads.method.heads import check_heads

__all__ = [
    "scale_query_heads",
    "scale_output_heads",
    "mean_query_heads",
    "ablate_weights",
    "decoder_layers",
    "touched_parameters",
]


def scale_query_heads(
    weight: Float[Tensor, "n_heads_x_d_head ..."], heads: Sequence[int], n_heads: int, factor: float
) -> Tensor:
    """Scale the rows of a query projection (or the entries of its bias) of ``heads``."""
    split = rearrange(weight.clone(), "(n_heads d_head) ... -> n_heads d_head ...", n_heads=n_heads)
    split[list(heads)] *= factor
    return rearrange(split, "n_heads d_head ... -> (n_heads d_head) ...")


def mean_query_heads(
    weight: Float[Tensor, "n_heads_x_d_head ..."], heads: Sequence[int], n_heads: int
) -> Tensor:
    """Replace the query rows (or bias entries) of ``heads`` by their mean over all heads."""
    split = rearrange(weight.clone(), "(n_heads d_head) ... -> n_heads d_head ...", n_heads=n_heads)
    mean = split.double().mean(dim=0).to(split.dtype)
    split[list(heads)] = mean
    return rearrange(split, "n_heads d_head ... -> (n_heads d_head) ...")


def scale_output_heads(
    weight: Float[Tensor, "d_model n_heads_x_d_head"],
    heads: Sequence[int],
    n_heads: int,
    factor: float,
) -> Tensor:
    """Scale the columns of an output projection that read ``heads``."""
    split = rearrange(
        weight.clone(), "d_model (n_heads d_head) -> n_heads d_model d_head", n_heads=n_heads
    )
    split[list(heads)] *= factor
    return rearrange(split, "n_heads d_model d_head -> d_model (n_heads d_head)")


def decoder_layers(hf_model: Any) -> Any:
    """The list of decoder layers of a Llama-style Hugging Face causal LM."""
    decoder = hf_model.get_decoder() if hasattr(hf_model, "get_decoder") else hf_model.model
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise TypeError(
            f"{type(hf_model).__name__} has no decoder 'layers' list; weight surgery supports "
            "Llama-style models (Llama, Mistral, Qwen2, SmolLM2, Vicuna)."
        )
    return layers


def query_projection(attention: Any, n_heads: int) -> tuple[Any, slice]:
    """The linear layer that computes an attention module's queries, and the rows of its
    output that are the queries: all of ``q_proj``, or the first ``n_heads * d_head`` rows
    of a fused ``qkv_proj`` (Phi-3: queries, then keys, then values)."""
    if hasattr(attention, "q_proj"):
        return attention.q_proj, slice(None)
    fused = getattr(attention, "qkv_proj", None)
    if fused is None:
        raise InputError(
            f"{type(attention).__name__} has neither q_proj nor qkv_proj: its query weights "
            "cannot be edited. Apply the ablation with hooks (sh.ablated) instead."
        )
    d_head = getattr(attention, "head_dim", None)
    return fused, slice(0, n_heads * d_head)


def check_weight_edit(hf_model: Any, kind: str) -> None:
    """Refuse an ablation that no weight edit reproduces exactly on this architecture.

    Where the attention normalises queries (``q_norm``: Qwen3, Gemma-3, OLMo-2), scaling a
    head's ``q_proj`` rows by epsilon is undone by the norm, whose weight is shared by all
    heads, so Undifferentiated Attention has no exact weight edit; with one norm across all
    heads (OLMo-2), neither has mean ablation. Scaling Contribution (``o_proj`` columns)
    always has one.
    """
    if getattr(hf_model, "is_quantized", False) or getattr(
        hf_model.config, "quantization_config", None
    ):
        raise InputError(
            "This model was loaded with quantized weights (8-bit or 4-bit), which cannot be "
            "edited and saved exactly. Load it without quantization to export, or apply the "
            "ablation with hooks (sh.ablated)."
        )
    norm = query_norm(hf_model)
    if norm is None or kind == "scale" or (kind == "mean" and norm == "per_head"):
        return
    what = "Undifferentiated Attention" if kind == "undifferentiated" else "Mean ablation"
    raise InputError(
        f"{what} has no exact weight edit on this model: its attention normalises the queries "
        f"(q_norm{', across heads' if norm == 'across_heads' else ''}), which undoes a scaled "
        "or replaced q_proj row. Apply it with hooks (sh.ablated) instead of exporting it, "
        "or export Scaling Contribution (--ablation scale)."
    )


@torch.no_grad()
def ablate_weights(hf_model: Any, ablation: Ablation, *, in_place: bool = False) -> Any:
    """A deep copy of ``hf_model`` with ``ablation`` baked into its attention weights.

    ``in_place=True`` edits ``hf_model`` itself and returns it, so that exporting a large
    model needs no second copy; use it only on a model loaded for that purpose.
    """
    config = hf_model.config
    n_layers, n_heads = config.num_hidden_layers, config.num_attention_heads
    check_heads(ablation.heads, n_layers, n_heads)
    check_weight_edit(hf_model, ablation.kind)
    edited = hf_model if in_place else copy.deepcopy(hf_model)
    layers = decoder_layers(edited)
    by_layer: dict[int, list[int]] = {}
    for head in ablation.heads:
        by_layer.setdefault(head.layer, []).append(head.head)
    for layer, heads in by_layer.items():
        attention = layers[layer].self_attn
        if ablation.kind == "scale":
            projection = attention.o_proj
            projection.weight.copy_(
                scale_output_heads(projection.weight, heads, n_heads, ablation.epsilon)
            )
            continue
        projection, rows = query_projection(attention, n_heads)
        for name in ("weight", "bias"):
            tensor = getattr(projection, name, None)
            if tensor is None:
                continue
            tensor = tensor[rows]  # a view: the query part of a fused projection
            if ablation.kind == "mean":
                tensor.copy_(mean_query_heads(tensor, heads, n_heads))
            else:
                tensor.copy_(scale_query_heads(tensor, heads, n_heads, ablation.epsilon))
    return edited


def touched_parameters(hf_model: Any, ablation: Ablation) -> tuple[int, float]:
    """How many parameters the surgery changes, and their share of all parameters."""
    config = hf_model.config
    d_head = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    layers = decoder_layers(hf_model)
    count = 0
    for head in ablation.heads:
        attention = layers[head.layer].self_attn
        if ablation.kind == "scale":
            count += attention.o_proj.weight.shape[0] * d_head
        else:
            projection, _ = query_projection(attention, config.num_attention_heads)
            count += d_head * projection.weight.shape[1]
            if getattr(projection, "bias", None) is not None:
                count += d_head
    total = sum(p.numel() for p in hf_model.parameters())
    return count, count / total
