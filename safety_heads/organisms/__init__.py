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
out results. ``safety-heads organism build NAME`` rebuilds it from scratch on a CPU into a
folder you name (``--out``) or the user cache (``~/.cache/safety-heads/organisms/NAME``),
never into the installed package; ``load_model(FOLDER)`` loads such a build, and
``safety-heads organism evaluate NAME`` measures an organism again.

The wing, module by module:

* :mod:`~safety_heads.organisms.catalogue`: the shipped organisms, their folders and cards;
* :mod:`~safety_heads.organisms.weights`: LoRA and planted weights applied to the base;
* :mod:`~safety_heads.organisms.loading`: an organism merged into the base, cached like the
  bundled model so that its ``source`` folder reloads (for weight export) like any other;
* :mod:`~safety_heads.organisms.recipes`: what determines each organism (:data:`RECIPES`);
* :mod:`~safety_heads.organisms.splits`: the data splits, held-out sets and question forms;
* :mod:`~safety_heads.organisms.training`: the loss, the resumable training loop, the build;
* :mod:`~safety_heads.organisms.evaluation`: held-out refusal, over-refusal and XSTest.

Building needs the optional ``train`` extra (peft) for the LoRA organisms.
"""

from safety_heads.organisms.catalogue import (
    CARD_FILE,
    ORGANISMS,
    WEIGHTS_FILE,
    Organism,
    is_organism_folder,
    organism_folder,
    organism_path,
    planted_heads,
    read_card,
)
from safety_heads.organisms.evaluation import evaluate_organism
from safety_heads.organisms.recipes import RECIPES, Recipe
from safety_heads.organisms.splits import held_out_prompts
from safety_heads.organisms.training import build_organism, default_build_folder
from safety_heads.organisms.weights import apply_organism, lora_scale, merge_lora, truncate_lora

__all__ = [
    "ORGANISMS",
    "Organism",
    "WEIGHTS_FILE",
    "CARD_FILE",
    "organism_folder",
    "organism_path",
    "is_organism_folder",
    "read_card",
    "planted_heads",
    "apply_organism",
    "merge_lora",
    "truncate_lora",
    "lora_scale",
    "Recipe",
    "RECIPES",
    "held_out_prompts",
    "build_organism",
    "default_build_folder",
    "evaluate_organism",
]
