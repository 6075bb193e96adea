"""Generalized Ships and the Sahara search: which few heads, ablated together, most disturb
the model's representation of a whole set of harmful queries.

Generalized Ships (Zhou et al., section 4). Stack the final-norm, last-position hidden
states of N prompts into an N x d matrix, for the vanilla model and for the model with
head h ablated; the score of h is the sum of the principal angles (degrees) between the
spans of the first ``rank`` left singular vectors of the two matrices
(:mod:`safety_heads.method.principal`). ``rank`` defaults to 1, the reference code's choice.

Sahara is a greedy search over such scores. Start with no heads; at step s score every
head not yet chosen with the s-1 chosen heads already ablated (always against the vanilla
model), and add the best one. ``steps`` is "typically not more than 5" in the paper.

Controls and contrast (beyond the paper): with a control prompt set, every map is also
computed on the controls, and ``contrast = score on prompts - score on controls``. With
``select="contrast"`` the search picks heads by that difference instead of the plain score,
which avoids heads that disturb every input alike.

Every step runs on layer suffixes with batched ablations (:mod:`safety_heads.method.fast_path`) and
can be checkpointed per (step, layer).
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from safety_heads.checkpoint import Checkpoint, write_json_atomic
from safety_heads.errors import InputError
from safety_heads.method.ablation import AblationMethod
from safety_heads.method.fast_path import ScoreSettings, build_groups, group_hidden, layer_hidden
from safety_heads.method.heads import (
    Head,
    HeadLike,
    candidate_mask,
    heads_in,
    map_from_json,
    map_to_json,
    ranked,
)
from safety_heads.method.principal import principal_angle_score
from safety_heads.method.screens import apply_screen, check_screen
from safety_heads.models.chat_model import model_identity
from safety_heads.models.interface import HookedChatModel

__all__ = ["sahara", "generalized_ships", "SaharaResult"]

SELECT_MODES = ("plain", "contrast")


@dataclass
class SaharaResult:
    """The heads Sahara chose, in order, with every step's full score map.

    ``step_scores[s]`` is the ``[n_layers, n_heads]`` map of step ``s`` (NaN for heads
    already chosen or not scored); ``control_step_scores`` the same on control prompts.
    A one-step result is a Generalized Ships map (``.scores``).
    """

    info: dict[str, Any]
    heads: list[Head]
    step_scores: list[Float[Tensor, "n_layers n_heads"]]
    control_step_scores: list[Float[Tensor, "n_layers n_heads"]] | None = None
    rank: int = 1
    select: str = "plain"

    @property
    def scores(self) -> Float[Tensor, "n_layers n_heads"]:
        """The first step's map: Generalized Ships of every head alone."""
        return self.step_scores[0]

    @property
    def contrast_step_scores(self) -> list[Tensor] | None:
        if self.control_step_scores is None:
            return None
        return [a - b for a, b in zip(self.step_scores, self.control_step_scores, strict=True)]

    def selection_maps(self) -> list[Tensor]:
        return self.contrast_step_scores if self.select == "contrast" else self.step_scores

    def chosen(self) -> list[dict[str, Any]]:
        """The chosen heads in order, each with its score at the step that chose it."""
        out = []
        for step, head in enumerate(self.heads):
            entry = {
                "layer": head.layer,
                "head": head.head,
                "score": float(self.step_scores[step][head.layer, head.head]),
            }
            if self.control_step_scores is not None:
                entry["control"] = float(self.control_step_scores[step][head.layer, head.head])
                entry["contrast"] = entry["score"] - entry["control"]
            out.append(entry)
        return out

    def to_dataframe(self):
        """One row per (step, scored head): step (1-based), layer, head, score,
        chosen, and control and contrast when present."""
        import pandas as pd

        rows = []
        for step, scores in enumerate(self.step_scores):
            control = None if self.control_step_scores is None else self.control_step_scores[step]
            for layer in range(scores.shape[0]):
                for head in range(scores.shape[1]):
                    value = float(scores[layer, head])
                    if value != value:  # NaN: not scored at this step
                        continue
                    row = {
                        "step": step + 1,
                        "layer": layer,
                        "head": head,
                        "score": value,
                        "chosen": step < len(self.heads) and self.heads[step] == Head(layer, head),
                    }
                    if control is not None:
                        row["control"] = float(control[layer, head])
                        row["contrast"] = value - row["control"]
                    rows.append(row)
        return pd.DataFrame(rows)

    def to_json(self) -> dict[str, Any]:
        n_layers, n_heads = self.step_scores[0].shape
        data = {
            **self.info,
            "n_layers": n_layers,
            "n_heads": n_heads,
            "rank": self.rank,
            "select": self.select,
            "heads": self.chosen(),
            "step_scores": [map_to_json(m) for m in self.step_scores],
            "top": ranked(self.step_scores[0]),
        }
        if self.control_step_scores is not None:
            data["control_step_scores"] = [map_to_json(m) for m in self.control_step_scores]
            data["contrast_step_scores"] = [map_to_json(m) for m in self.contrast_step_scores]
        return data

    def save(self, path: str | Path) -> None:
        write_json_atomic(Path(path), {"kind": "sahara", "complete": True, **self.to_json()})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SaharaResult":
        derived = {
            "n_layers",
            "n_heads",
            "rank",
            "select",
            "heads",
            "step_scores",
            "top",
            "control_step_scores",
            "contrast_step_scores",
            "kind",
            "complete",
            "settings",
            "progress",
        }
        control = data.get("control_step_scores")
        return cls(
            {k: v for k, v in data.items() if k not in derived},
            [Head(h["layer"], h["head"]) for h in data["heads"]],
            [map_from_json(m) for m in data["step_scores"]],
            None if control is None else [map_from_json(m) for m in control],
            int(data.get("rank", 1)),
            data.get("select", "plain"),
        )

    @classmethod
    def load(cls, path: str | Path) -> "SaharaResult":
        return cls.from_json(json.loads(Path(path).read_text()))


def _best(selection: Tensor) -> Head:
    flat = torch.nan_to_num(selection.flatten(), nan=-torch.inf)
    if torch.isinf(flat).all():
        raise InputError("No head is left to choose: every candidate head is already chosen.")
    index = int(torch.argmax(flat))
    return Head(index // selection.shape[1], index % selection.shape[1])


def sahara(
    model: HookedChatModel,
    prompts: Sequence[str],
    *,
    steps: int = 3,
    rank: int = 1,
    template: str = "chat",
    system: str | None = None,
    kind: str = "undifferentiated",
    epsilon: float = 1e-5,
    via: str = "query",
    heads: Sequence[HeadLike] | str | None = None,
    control: Sequence[str] | None = None,
    screen: str | None = None,
    keep: int | None = None,
    select: str = "plain",
    max_batch_tokens: int | None = None,
    max_group_prompts: int = 64,
    min_shared_tokens: int | None = 8,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> SaharaResult:
    """Greedy search for ``steps`` heads that, ablated together, most disturb the rank-``rank``
    subspace of the prompts' final hidden states (see the module docstring).

    ``heads`` restricts the candidates, or ``screen="atp"`` or ``"direction"`` with
    ``keep=K`` restricts them to a fast screen's best K (:mod:`safety_heads.method.screens`;
    ``direction`` needs ``control``; the screen's map is kept under ``info["screen"]``);
    ``control`` adds control maps; ``select`` is
    ``plain`` (the paper) or ``contrast`` (needs ``control``). ``checkpoint`` is an output
    JSON path written after every (step, layer); a re-run with the same arguments resumes.
    ``max_batch_tokens``, ``max_group_prompts`` and ``min_shared_tokens`` only change
    speed and memory (:class:`~safety_heads.method.fast_path.ScoreSettings`).
    """
    settings = ScoreSettings(
        AblationMethod(kind, epsilon, via), max_batch_tokens, max_group_prompts, min_shared_tokens
    )
    if select not in SELECT_MODES:
        raise InputError(f"select={select!r} is not one of {SELECT_MODES}.")
    if select == "contrast" and control is None:
        raise InputError(
            "select='contrast' ranks heads by harmful minus control scores, so "
            "it needs control prompts: pass control=[...] (CLI: --control "
            "harmless)."
        )
    prompts = list(prompts)
    if rank > len(prompts):
        raise InputError(f"rank={rank} needs at least {rank} prompts; got {len(prompts)}.")
    spec = check_screen(model, screen, keep, heads, control)
    candidates = candidate_mask(model, heads)
    n_candidates = spec["keep"] if spec else int(candidates.sum())
    if steps < 1 or steps > n_candidates:
        raise InputError(
            f"steps must be between 1 and the number of candidate heads "
            f"({n_candidates}); got {steps}."
        )
    sets = {"prompts": prompts} | ({"control": list(control)} if control is not None else {})
    info = {
        **model_identity(model),
        "template": template,
        "system": system,
        **settings.provenance(),
        "prompts": prompts,
        "heads_considered": None if heads is None else sorted(str(h) for h in heads_in(candidates)),
        "control_prompts": sets.get("control"),
    } | ({"screen": spec} if spec else {})
    run = Checkpoint(checkpoint, "sahara", {**info, "steps": steps, "rank": rank, "select": select})
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
        candidates = candidate_mask(model, chosen)
        info = info | {"heads_considered": sorted(chosen), "screen": screened}
    for texts in sets.values():
        model.check_context(texts, template, system)
    formatted = {
        name: [model.format(t, template, system) for t in texts] for name, texts in sets.items()
    }
    vanilla: dict[str, Tensor] = {}

    def vanilla_states(name: str) -> Tensor:
        if name not in vanilla:
            none = torch.zeros_like(candidates)
            vanilla[name] = group_hidden(build_groups(model, formatted[name], none, settings))
        return vanilla[name]

    chosen: list[Head] = []
    maps: dict[str, list[Tensor]] = {name: [] for name in sets}
    bar = tqdm(total=steps * model.n_layers, desc="Sahara (step x layer)", disable=not progress)
    for step in range(steps):
        fixed = torch.zeros_like(candidates)
        for head in chosen:
            fixed[head.layer, head.head] = True
        open_heads = candidates & ~fixed
        groups: dict[str, Any] = {}
        step_maps = {
            name: torch.full(candidates.shape, torch.nan, dtype=torch.float64) for name in sets
        }
        for layer in range(model.n_layers):
            bar.update(1)
            heads_here = open_heads[layer].nonzero().flatten().tolist()
            if not heads_here:
                continue
            key = f"step-{step}/layer-{layer}"
            if key not in done:
                unit = {}
                for name in sets:
                    if name not in groups:
                        groups[name] = build_groups(model, formatted[name], fixed, settings)
                    hidden = layer_hidden(model, groups[name], layer, heads_here, fixed, settings)
                    unit[name] = principal_angle_score(vanilla_states(name), hidden, rank).tolist()
                run.save(key, unit)
            for name in sets:
                step_maps[name][layer, heads_here] = torch.tensor(
                    done[key][name], dtype=torch.float64
                )
        for name in sets:
            maps[name].append(step_maps[name])
        partial = SaharaResult(info, chosen, maps["prompts"], maps.get("control"), rank, select)
        chosen.append(_best(partial.selection_maps()[step]))
    bar.close()
    result = SaharaResult(info, chosen, maps["prompts"], maps.get("control"), rank, select)
    run.finish(result.to_json())
    return result


def generalized_ships(
    model: HookedChatModel, prompts: Sequence[str], **options: Any
) -> SaharaResult:
    """Generalized Ships of every head alone: a one-step Sahara; the map is ``.scores``."""
    return sahara(model, prompts, steps=1, **options)
