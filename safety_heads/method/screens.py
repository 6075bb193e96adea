"""Fast screens: every head scored in a constant number of forward passes.

Exact Ships runs one layer-suffix pass per head; a screen ranks all heads at once, so that
only its best few need the exact score. Two screens:

:func:`attribution_scores` (``screen="atp"``)
    Attribution patching (Nanda 2023; Kramar et al. 2024): a first-order estimate, from one
    forward and one backward pass, of how much ablating each head would change a metric
    that moves at the unablated model. Ships' KL has a zero gradient there, so the metric
    is the log-probability of the model's own first answer token (greedy, at the last
    prompt position): on a refusing model, the first token of its refusal. For
    Undifferentiated Attention the estimate is ``<dM/dA, U - A>`` summed over positions,
    with ``A`` the head's attention pattern and ``U`` the uniform pattern over the keys it
    sees; for Scaling Contribution ``<dM/dz, (epsilon - 1) z>`` with ``z`` the head's
    attention-weighted values. The pattern change is the exact one, not a gradient through
    the softmax: AtP*'s fix for saturated attention, where a linearised softmax predicts
    almost no change. AtP*'s second fix (dropping one layer's gradient at a time, against
    cancellation between paths) is not applied: it costs a backward pass per layer.
    A head's score is the predicted drop in that log-probability, averaged over prompts.
:func:`refusal_direction_scores` (``screen="direction"``)
    Each head's direct contribution, at the last prompt position, to the refusal direction:
    the difference between the mean final residual stream (before the final norm) on harmful
    and on harmless prompts, as in Arditi et al. (2024). A head's output at that position is
    its attention result ``z`` times its slice of the output projection; its score is the
    mean projection of that output on the unit direction over the harmful prompts, and its
    contrast the same less the mean over the harmless ones. Two forward passes, no ablation:
    it measures what a head writes toward refusal, not what removing it changes.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from safety_heads.checkpoint import Checkpoint
from safety_heads.errors import InputError
from safety_heads.method.ablation import AblationMethod
from safety_heads.method.heads import Head, ranked
from safety_heads.models.interface import HookedChatModel
from safety_heads.models.prompts import TokenBatch

__all__ = [
    "SCREENS",
    "AttributionScores",
    "DirectionScores",
    "attribution_scores",
    "refusal_direction_scores",
    "head_outputs",
    "check_screen",
    "apply_screen",
]

SCREENS = ("atp", "direction")


@dataclass(frozen=True)
class DirectionScores:
    """Per-head scores of :func:`refusal_direction_scores` (``[n_layers, n_heads]``)."""

    scores: Float[Tensor, "n_layers n_heads"]  # mean projection on harmful prompts
    contrast: Float[Tensor, "n_layers n_heads"]  # the same less the mean on harmless ones
    direction: Float[Tensor, " d_model"]  # the unit refusal direction
    norm: float  # the length of the difference of means before it was made a unit

    def top(self, k: int = 10, by: str = "scores") -> list[Head]:
        if by not in ("scores", "contrast"):
            raise InputError(f"by={by!r}: rank by 'scores' or 'contrast'.")
        return [Head(e["layer"], e["head"]) for e in ranked(getattr(self, by), k)]


@dataclass(frozen=True)
class AttributionScores:
    """Per-head, per-prompt estimates of :func:`attribution_scores`."""

    per_prompt: Float[Tensor, "prompts n_layers n_heads"]  # predicted drop of the metric
    method: AblationMethod

    @property
    def scores(self) -> Float[Tensor, "n_layers n_heads"]:
        """The predicted drop in the log-probability of the first answer token, averaged
        over prompts (positive: ablating the head makes that token less likely)."""
        return self.per_prompt.mean(dim=0)

    @property
    def magnitude(self) -> Float[Tensor, "n_layers n_heads"]:
        """The predicted change in either direction, averaged over prompts."""
        return self.per_prompt.abs().mean(dim=0)

    def top(self, k: int = 10, by: str = "scores") -> list[Head]:
        if by not in ("scores", "magnitude"):
            raise InputError(f"by={by!r}: rank by 'scores' or 'magnitude'.")
        return [Head(e["layer"], e["head"]) for e in ranked(getattr(self, by), k)]


@contextmanager
def _frozen(module: torch.nn.Module) -> Iterator[None]:
    """``module``'s parameters out of autograd (restored on exit): the backward pass then
    reaches only the activations, not every weight."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def _batch_attribution(
    model: HookedChatModel, batch: TokenBatch, method: AblationMethod
) -> Float[Tensor, "batch n_layers n_heads"]:
    """One forward and one backward pass: each head's predicted drop, per prompt."""
    node = "hook_pattern" if method.kind == "undifferentiated" else "hook_z"
    kept: dict[int, Tensor] = {}

    def start_graph(activation: Tensor, *, hook: Any) -> Tensor:
        return activation.detach().requires_grad_(True)

    def keep(activation: Tensor, *, hook: Any) -> Tensor:
        kept[int(hook.name.split(".")[1])] = activation
        return activation

    hooks = [("blocks.0.hook_resid_pre", start_graph)]
    hooks += [(f"blocks.{layer}.attn.{node}", keep) for layer in range(model.n_layers)]
    with torch.enable_grad(), _frozen(model.bridge), model.bridge.hooks(fwd_hooks=hooks):
        logits = model.bridge(
            batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
        )
        logprobs = logits[:, -1].float().log_softmax(dim=-1)  # [batch, d_vocab]
        answer = logprobs.detach().argmax(dim=-1, keepdim=True)
        metric = logprobs.gather(-1, answer).sum()  # rows are independent: one backward
        layers = list(range(model.n_layers))
        grads = torch.autograd.grad(metric, [kept[layer] for layer in layers])
    rows = []
    with torch.no_grad():
        for layer, grad in zip(layers, grads, strict=True):
            value = kept[layer].float()
            if method.kind == "undifferentiated":  # [batch, heads, q, k]
                visible = (value > 0).float()
                uniform = visible / visible.sum(dim=-1, keepdim=True).clamp_min(1.0)
                change = (grad.float() * (uniform - value)).sum(dim=(-2, -1))
            else:  # [batch, pos, heads, d_head]
                change = (grad.float() * (method.epsilon - 1.0) * value).sum(dim=(1, 3))
            rows.append(-change.cpu())  # the predicted drop
    return torch.stack(rows, dim=1)


def attribution_scores(
    model: HookedChatModel,
    prompts: Sequence[str],
    method: AblationMethod | None = None,
    *,
    template: str = "chat",
    system: str | None = None,
    batch_size: int = 8,
) -> AttributionScores:
    """Score every head by attribution patching (module docstring): the first-order
    predicted drop in the log-probability of the model's own first answer token when the
    head is ablated by ``method`` (default: Undifferentiated Attention). One forward and
    one backward pass per batch of prompts."""
    method = method or AblationMethod()
    if method.kind not in ("undifferentiated", "scale"):
        raise InputError(
            f"The atp screen estimates Undifferentiated Attention and Scaling Contribution, "
            f"not kind={method.kind!r}; use kind='undifferentiated' or 'scale', or the "
            "direction screen."
        )
    prompts = list(prompts)
    if not prompts:
        raise InputError("attribution_scores needs at least one prompt.")
    model.check_context(prompts, template, system)
    parts = [
        _batch_attribution(
            model, model.encode(prompts[start : start + batch_size], template, system), method
        )
        for start in range(0, len(prompts), batch_size)
    ]
    return AttributionScores(torch.cat(parts).double(), method)


@torch.no_grad()
def head_outputs(
    model: HookedChatModel,
    prompts: Sequence[str],
    template: str = "chat",
    batch_size: int = 16,
    system: str | None = None,
) -> tuple[Float[Tensor, "prompts n_layers n_heads d_model"], Float[Tensor, "prompts d_model"]]:
    """Each head's output at the last prompt position (its ``z`` times its output-projection
    slice, float32) and the final residual stream there, before the final norm."""
    weights = [
        layer.self_attn.o_proj.weight.float()  # [d_model, n_heads * d_head]
        for layer in model.hf_model.get_decoder().layers
    ]
    outputs, finals = [], []
    last = model.n_layers - 1
    for start in range(0, len(prompts), batch_size):
        batch = model.encode(list(prompts[start : start + batch_size]), template, system)
        z: dict[int, Tensor] = {}
        final: list[Tensor] = []

        def keep_z(activation: Tensor, *, hook, z=z) -> None:
            z[int(hook.name.split(".")[1])] = activation[:, -1].float()  # [batch, heads, d_head]

        def keep_final(activation: Tensor, *, hook, final=final) -> None:
            final.append(activation[:, -1].float())

        hooks = [(f"blocks.{layer}.attn.hook_z", keep_z) for layer in range(model.n_layers)]
        hooks.append((f"blocks.{last}.hook_resid_post", keep_final))
        with model.bridge.hooks(fwd_hooks=hooks):
            model.bridge(
                batch.input_ids,
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids,
            )
        per_layer = []
        for layer in range(model.n_layers):
            rows, heads, d_head = z[layer].shape
            w = weights[layer].to(z[layer].device).T.reshape(heads, d_head, -1)
            per_layer.append(torch.einsum("bhd,hdm->bhm", z[layer], w))  # [batch, heads, d_model]
        outputs.append(torch.stack(per_layer, dim=1).cpu())
        finals.append(final[0].cpu())
    return torch.cat(outputs), torch.cat(finals)


def refusal_direction_scores(
    model: HookedChatModel,
    harmful: Sequence[str],
    harmless: Sequence[str],
    *,
    template: str = "chat",
    system: str | None = None,
    batch_size: int = 16,
) -> DirectionScores:
    """Score every head by its direct contribution to the refusal direction (module
    docstring). Two passes over the prompts; no ablation."""
    harmful, harmless = list(harmful), list(harmless)
    if not harmful or not harmless:
        raise InputError("refusal_direction_scores needs harmful and harmless prompts, both.")
    model.check_context(harmful + harmless, template, system)
    bad, bad_final = head_outputs(model, harmful, template, batch_size, system)
    good, good_final = head_outputs(model, harmless, template, batch_size, system)
    difference = bad_final.double().mean(0) - good_final.double().mean(0)
    norm = float(difference.norm())
    if norm == 0.0:
        raise InputError(
            "The harmful and harmless prompts end in the same mean residual stream, so there "
            "is no refusal direction; give prompts that differ."
        )
    direction = (difference / norm).float()
    on_bad = (bad @ direction).mean(0)  # [n_layers, n_heads]
    on_good = (good @ direction).mean(0)
    return DirectionScores(on_bad, on_bad - on_good, direction, norm)


def check_screen(
    model: HookedChatModel,
    screen: str | None,
    keep: int | None,
    heads: Any,
    control: Sequence[str] | None,
) -> dict[str, Any] | None:
    """A screen request checked before any work: ``{"name", "keep"}`` (``keep`` capped at
    the model's head count), or None without a screen."""
    if screen is None:
        return None
    if heads is not None:
        raise InputError("Give heads or a screen to choose them, not both.")
    if screen not in SCREENS:
        raise InputError(f"screen={screen!r} is not one of {SCREENS}.")
    if keep is None or keep < 1:
        raise InputError(
            f"keep={keep!r}: say how many of the screen's best heads to score exactly "
            "(e.g. keep=27, a tenth of the bundled model's 270)."
        )
    if screen == "direction" and control is None:
        raise InputError(
            "The direction screen contrasts harmful with harmless prompts: pass control "
            "prompts (control=..., CLI --control harmless), or use screen='atp'."
        )
    return {"name": screen, "keep": min(keep, model.n_layers * model.n_heads)}


def apply_screen(
    run: Checkpoint,
    spec: dict[str, Any] | None,
    model: HookedChatModel,
    prompts: Sequence[str],
    control: Sequence[str] | None,
    *,
    method: AblationMethod | None = None,
    template: str = "chat",
    system: str | None = None,
) -> tuple[list[str] | None, dict[str, Any] | None]:
    """Screen, then confirm: the heads to score exactly (the screen's ``keep`` best) and
    what the result records of the screen (``spec`` and its map); None, None without one.

    The screen's outcome is saved in ``run`` as its first unit of work, so a resumed run
    scores the heads the interrupted one chose, even where the screen's floating-point
    result is not reproducible bit for bit (some GPU kernels). ``atp`` estimates the
    ablation ``method`` of the exact scores; ``direction`` contrasts with ``control``.
    """
    from safety_heads.method.heads import map_to_json

    if spec is None:
        return None, None
    if "screen" not in run.progress:
        if spec["name"] == "atp":
            found = attribution_scores(model, prompts, method, template=template, system=system)
        else:
            found = refusal_direction_scores(
                model, prompts, control, template=template, system=system
            )
        chosen = [str(head) for head in found.top(spec["keep"])]
        run.save("screen", {"heads": chosen, "map": map_to_json(found.scores)})
    saved = run.progress["screen"]
    return list(saved["heads"]), {**spec, "map": saved["map"]}
