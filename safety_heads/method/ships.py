"""Ships: how much ablating one head shifts the model's answer to one harmful query.

For a query q and a head h (Zhou et al., section 3.2)::

    Ships(q, h) = KL( p(. | q; model) || p(. | q; model with h ablated) )

where p is the next-token distribution at the last prompt position, i.e. the first token of
the answer. It is computed from float32 log-probabilities whatever the model's dtype. The
heads with the highest scores for a query are that query's safety heads; over a dataset we
report the mean score and how often each head is among a query's ``top_k``.

Controls and contrast (beyond the paper). A head whose ablation breaks the model on every
input (it turns all answers into gibberish) scores high on harmful queries too, without
being a safety head. Given a control set (by default the bundled harmless instructions),
the result also holds the control scores and

    contrast(h) = mean Ships on harmful prompts - mean Ships on control prompts,

which demotes heads that matter for everything. The difference (not a ratio) is used
because it keeps the scale of the scores and is stable when both means are tiny.

The computation follows :mod:`safety_heads.method.fast_path`: the residual stream is cached
once per prompt group and each layer's ablations run only the layers from that one on, many
heads and prompts to a pass. :func:`safety_heads.method.per_head_loop.ships_reference` is
the one-pass-per-head loop it is tested against.
"""

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from safety_heads.checkpoint import Checkpoint
from safety_heads.errors import InputError
from safety_heads.method.ablation import AblationMethod, PromptAblations
from safety_heads.method.fast_path import (
    ScoreSettings,
    build_groups,
    group_hidden,
    kl_rows,
    layer_hidden,
    unembed_logprobs,
)
from safety_heads.method.heads import (
    Head,
    HeadLike,
    candidate_mask,
    heads_in,
    map_from_json,
    map_to_json,
    ranked,
)
from safety_heads.method.screens import apply_screen, check_screen
from safety_heads.models.chat_model import model_identity
from safety_heads.models.interface import HookedChatModel

__all__ = ["ships", "ShipsResult"]

logger = logging.getLogger(__name__)


@dataclass
class ShipsResult:
    """Ships scores of every scored head on every prompt (NaN where a head was not scored).

    ``per_prompt`` is ``[n_prompts, n_layers, n_heads]``; ``control_per_prompt`` the same
    on the control prompts, when a control set was given. ``info`` holds the settings that
    produced the scores (model, template, ablation, epsilon, prompts ...).
    """

    info: dict[str, Any]
    per_prompt: Float[Tensor, "prompts n_layers n_heads"]
    control_per_prompt: Float[Tensor, "control n_layers n_heads"] | None = None
    top_k: int = 10
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> Float[Tensor, "n_layers n_heads"]:
        return self.per_prompt.mean(dim=0)

    @property
    def control_mean(self) -> Float[Tensor, "n_layers n_heads"] | None:
        return None if self.control_per_prompt is None else self.control_per_prompt.mean(dim=0)

    @property
    def contrast(self) -> Float[Tensor, "n_layers n_heads"] | None:
        """Mean Ships on the prompts minus mean Ships on the control prompts."""
        control = self.control_mean
        return None if control is None else self.mean - control

    @property
    def topk_frequency(self) -> Float[Tensor, "n_layers n_heads"]:
        """Share of prompts for which the head is among that prompt's ``top_k`` heads."""
        n_prompts, n_layers, n_heads = self.per_prompt.shape
        flat = torch.nan_to_num(self.per_prompt.reshape(n_prompts, -1), nan=-torch.inf)
        k = min(self.top_k, flat.shape[1])
        counts = torch.zeros(flat.shape[1], dtype=torch.float64)
        counts.scatter_add_(
            0, flat.topk(k, dim=1).indices.flatten(), torch.ones(n_prompts * k, dtype=torch.float64)
        )
        frequency = (counts / n_prompts).reshape(n_layers, n_heads)
        return frequency.masked_fill(self.per_prompt[0].isnan(), torch.nan)

    def top(self, n: int | None = None, by: str = "mean") -> list[dict[str, Any]]:
        """Heads ranked by ``mean`` (default), ``contrast``, ``control`` or ``frequency``."""
        maps = {
            "mean": self.mean,
            "contrast": self.contrast,
            "control": self.control_mean,
            "frequency": self.topk_frequency,
        }
        if by not in maps or maps[by] is None:
            allowed = [k for k, v in maps.items() if v is not None]
            raise InputError(f"Cannot rank by {by!r}; this result has {allowed}.")
        return ranked(maps[by], n)

    def prompt_heads(self, k: int) -> list[list[Head]]:
        """Each prompt's own ``k`` highest-scoring heads, best first (the paper's per-query
        safety heads)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be an int >= 1, got {k!r}.")
        n_prompts, _, n_heads = self.per_prompt.shape
        flat = torch.nan_to_num(self.per_prompt.reshape(n_prompts, -1).double(), nan=-torch.inf)
        scored = int(torch.isfinite(flat[0]).sum())
        if k > scored:
            raise InputError(f"k={k} but only {scored} heads were scored.")
        # A stable sort breaks ties by head index, like ``ranked``.
        order = torch.argsort(flat, dim=1, descending=True, stable=True)[:, :k]
        return [[Head(i // n_heads, i % n_heads) for i in row] for row in order.tolist()]

    def prompt_ablations(
        self, k: int, kind: str | None = None, epsilon: float | None = None
    ) -> PromptAblations:
        """Ablate each prompt's own top ``k`` heads when answering it (for
        :func:`~safety_heads.evaluation.asr.evaluate_asr` on ``self.prompts``, in order).
        ``kind`` and ``epsilon`` default to the ones the scores were computed with."""
        return PromptAblations(
            tuple(tuple(row) for row in self.prompt_heads(k)),
            kind or self.info.get("ablation", "undifferentiated"),
            epsilon if epsilon is not None else self.info.get("epsilon", 1e-5),
            self.info.get("via", "query"),
        )

    @property
    def prompts(self) -> list[str]:
        """The scored prompts (bare queries), in the order of ``per_prompt``."""
        return list(self.info.get("prompts", []))

    def to_dataframe(self):
        """One row per scored head: layer, head, score (mean), topk_frequency, and
        control and contrast when present; sorted by score."""
        import pandas as pd

        n_layers, n_heads = self.mean.shape
        columns: dict[str, Any] = {
            "layer": [layer for layer in range(n_layers) for _ in range(n_heads)],
            "head": [h for _ in range(n_layers) for h in range(n_heads)],
            "score": self.mean.flatten().tolist(),
            "topk_frequency": self.topk_frequency.flatten().tolist(),
        }
        if self.control_per_prompt is not None:
            columns["control"] = self.control_mean.flatten().tolist()
            columns["contrast"] = self.contrast.flatten().tolist()
        frame = pd.DataFrame(columns).dropna(subset=["score"])
        return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)

    def to_json(self) -> dict[str, Any]:
        n_prompts, n_layers, n_heads = self.per_prompt.shape
        data = {
            **self.info,
            "n_layers": n_layers,
            "n_heads": n_heads,
            "top_k": self.top_k,
            "per_prompt": map_to_json(self.per_prompt),
            "mean": map_to_json(self.mean),
            "topk_frequency": map_to_json(self.topk_frequency),
            "top": self.top(),
        }
        if self.control_per_prompt is not None:
            data["control_per_prompt"] = map_to_json(self.control_per_prompt)
            data["control_mean"] = map_to_json(self.control_mean)
            data["contrast"] = map_to_json(self.contrast)
            data["contrast_top"] = self.top(by="contrast")
        return data

    def save(self, path: str | Path) -> None:
        from safety_heads.checkpoint import write_json_atomic

        write_json_atomic(Path(path), {"kind": "ships", "complete": True, **self.to_json()})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ShipsResult":
        derived = {
            "n_layers",
            "n_heads",
            "top_k",
            "per_prompt",
            "mean",
            "topk_frequency",
            "top",
            "control_per_prompt",
            "control_mean",
            "contrast",
            "contrast_top",
            "kind",
            "complete",
            "settings",
            "progress",
        }
        info = {k: v for k, v in data.items() if k not in derived}
        return cls(
            info,
            map_from_json(data["per_prompt"]),
            map_from_json(data.get("control_per_prompt")),
            int(data.get("top_k", 10)),
        )

    @classmethod
    def load(cls, path: str | Path) -> "ShipsResult":
        return cls.from_json(json.loads(Path(path).read_text()))


def _ships_layer(model, groups, base_logprobs, layer, heads, fixed, settings) -> Tensor:
    """Ships of ``heads`` (of ``layer``) on every prompt: ``[len(heads), n_prompts]``."""
    hidden = layer_hidden(model, groups, layer, heads, fixed, settings)
    scores = torch.empty(len(heads), hidden.shape[1], dtype=torch.float64)
    for slot in range(len(heads)):
        ablated = unembed_logprobs(model, hidden[slot])
        scores[slot] = kl_rows(base_logprobs, ablated).double().cpu()
    return scores


def ships(
    model: HookedChatModel,
    prompts: Sequence[str],
    *,
    template: str = "chat",
    system: str | None = None,
    kind: str = "undifferentiated",
    epsilon: float = 1e-5,
    via: str = "query",
    heads: Sequence[HeadLike] | str | None = None,
    control: Sequence[str] | None = None,
    screen: str | None = None,
    keep: int | None = None,
    top_k: int = 10,
    max_batch_tokens: int | None = None,
    max_group_prompts: int = 64,
    min_shared_tokens: int | None = 8,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> ShipsResult:
    """Ships of every head (or of ``heads``) on every prompt.

    ``control`` adds the same scores on control prompts and the contrastive ranking.
    ``screen="atp"`` or ``"direction"`` (needs ``control``) with ``keep=K`` ranks every head
    with a fast screen (:mod:`safety_heads.method.screens`; ``atp`` estimates this run's
    ablation kind) and scores only its best K exactly; the result keeps the screen's map
    under ``info["screen"]``, and ``top`` lists the exactly scored heads.
    ``checkpoint`` is an output JSON path: progress is written there after every layer,
    a re-run with the same arguments resumes, and the finished result is written there.
    ``max_batch_tokens``, ``max_group_prompts`` and ``min_shared_tokens`` only change
    speed and memory (:class:`~safety_heads.method.fast_path.ScoreSettings`).
    """
    settings = ScoreSettings(
        AblationMethod(kind, epsilon, via), max_batch_tokens, max_group_prompts, min_shared_tokens
    )
    if top_k < 1:
        raise InputError(f"top_k must be >= 1, got {top_k}.")
    prompts = list(prompts)
    spec = check_screen(model, screen, keep, heads, control)
    given = None if heads is None else [str(h) for h in heads_in(candidate_mask(model, heads))]
    info = {
        **model_identity(model),
        "template": template,
        "system": system,
        **settings.provenance(),
        "prompts": prompts,
        "heads": given,
        "control_prompts": None if control is None else list(control),
    } | ({"screen": spec} if spec else {})
    run = Checkpoint(checkpoint, "ships", {**info, "top_k": top_k})
    done = run.resume()
    chosen, screened = apply_screen(
        run,
        spec,
        model,
        prompts,
        control,
        method=settings.method,
        template=template,
        system=system,
    )
    if screened:
        heads = chosen
    candidates = candidate_mask(model, heads)
    if screened:
        info = info | {"heads": [str(h) for h in heads_in(candidates)], "screen": screened}
    fixed = torch.zeros(model.n_layers, model.n_heads, dtype=torch.bool)
    sets = {"prompts": prompts} | ({"control": list(control)} if control is not None else {})
    maps = {
        name: torch.full(
            (len(texts), model.n_layers, model.n_heads), torch.nan, dtype=torch.float64
        )
        for name, texts in sets.items()
    }
    layers = [layer for layer in range(model.n_layers) if bool(candidates[layer].any())]
    todo = [layer for layer in layers if f"layer-{layer}" not in done]
    for texts in sets.values():
        model.check_context(texts, template, system)
    prepared = {}
    if todo:
        for name, texts in sets.items():
            formatted = [model.format(t, template, system) for t in texts]
            groups = build_groups(model, formatted, fixed, settings)
            prepared[name] = (groups, unembed_logprobs(model, group_hidden(groups)))
    for layer in tqdm(layers, desc="Ships (layers)", disable=not progress, unit="layer"):
        heads_here = candidates[layer].nonzero().flatten().tolist()
        key = f"layer-{layer}"
        if key not in done:
            unit = {}
            for name, (groups, base) in prepared.items():
                unit[name] = _ships_layer(
                    model, groups, base, layer, heads_here, fixed, settings
                ).T.tolist()
            run.save(key, unit)
        for name in sets:
            maps[name][:, layer, heads_here] = torch.tensor(done[key][name], dtype=torch.float64)
    result = ShipsResult(info, maps["prompts"], maps.get("control"), top_k)
    run.finish(result.to_json())
    return result
