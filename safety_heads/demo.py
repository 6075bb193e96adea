"""The main job, end to end, on the bundled models: ``safety-heads demo``.

1. **Generalized Ships of every head** on a few harmful prompts (the *search* prompts) with
   the refusing model (default ``smollm2-planted``, a refusing fine-tune of the bundled
   SmolLM2-135M-Instruct): how far ablating each head alone (Undifferentiated Attention)
   rotates the prompts' main hidden-state direction.
2. **Sahara**: the greedy search for ``steps`` heads that, ablated together, disturb it most.
   By default the search runs among the ``shortlist`` best heads of step 1 (27 of 270);
   its first pick is then exactly the full search's, and later steps skip heads that were
   far behind alone, which can change the later picks (on ``smollm2-planted`` a 20-head pool
   changed the second; README). ``shortlist=None`` (CLI ``--shortlist 0``) is the paper's
   exhaustive greedy search, at ``steps`` times the cost of step 1.
3. **ASR curve** on other prompts of the same set (the *evaluation* prompts): answers
   generated with the first 0, 1, ..., ``steps`` chosen heads ablated, judged by the
   default content judge (only coherent compliance counts) and, beside it, the paper's
   keyword judge, each with 95% Clopper-Pearson intervals and the count of each label.
4. **Chat vs base**: the same step-1 map on the unaligned base (default
   ``smollm2-135m-instruct``) against the refusing model's (Spearman, top-k Jaccard), and
   the base's ASR without ablation.
5. **Attention**: the chosen heads' patterns on the first search prompt, as is and ablated.
6. **Export**: the refusing model with the chosen heads ablated in its weights, as a plain
   Hugging Face folder.
7. **Report**: one self-contained HTML page of all the above.

Everything lands in one folder (``demo-out/`` by default) under fixed names
(:data:`DEMO_FILES`). Each stage writes its result as it goes and a re-run resumes: finished
stages are read back, not recomputed (the report is always rebuilt).

Cost. Scoring every head costs about one forward pass per head and prompt over the layers
after the head; on 2 busy CPU cores, 270 heads x 8 prompts took ~5 minutes in the
project's benchmark; generating the 5 x 32 answers takes under 3 minutes. With the
defaults (8 search prompts, a 27-head shortlist, 3 steps, 32 evaluation prompts generated 32
at a time, 48 new tokens) the whole demo took 10 min 37 s on 2 idle CPU cores from an empty
cache (7 min 10 s for the refusing model, 3 min 16 s for the base); the paper's scale is
``--search-prompts 100 --shortlist 0 --max-new-tokens 128``.

Prompts default to JailbreakBench: the refusing organisms were trained on part of
AdvBench, and a demo should show heads found on prompts the model was not trained on.
"""

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from tqdm.auto import tqdm

from safety_heads.errors import InputError
from safety_heads.method.ablation import Ablation, AblationKind
from safety_heads.method.heads import Head
from safety_heads.models.interface import HookedChatModel

__all__ = ["DemoConfig", "DemoResult", "run_demo", "DEFAULT_MODEL", "DEFAULT_BASE", "DEMO_FILES"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-planted"
"""The refusing model the demo dissects: a safety fine-tune of the bundled base."""
DEFAULT_BASE = "smollm2-135m-instruct"
"""Its unaligned base, for the chat-vs-base comparison."""

DEMO_FILES = {
    "scan": "generalized-ships.json",
    "sahara": "sahara.json",
    "asr_curve": "asr-curve.json",
    "scan_base": "generalized-ships-base.json",
    "asr_base": "asr-base.json",
    "comparison": "comparison.json",
    "attention": "attention.json",
    "export": "ablated-model",
    "report": "report.html",
}
"""What the demo writes into its output folder, by stage."""


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs on and how big it is.

    The first ``search_prompts`` prompts of ``prompts`` are scored and searched on; the next
    ``eval_prompts`` measure the ASR. ``shortlist=None`` searches among all heads.
    ``batch_size`` answers are generated at a time (left-padded batches give the same greedy
    answers as one prompt at a time; on 2 CPU cores one batch of 32 took 37 s where four
    of 8 took 80 s).
    ``base=None`` skips the comparison; ``export=False`` the weight export.
    """

    model: str = DEFAULT_MODEL
    base: str | None = DEFAULT_BASE
    prompts: str = "jailbreakbench"
    search_prompts: int = 8
    eval_prompts: int = 32
    steps: int = 3
    shortlist: int | None = 27
    max_new_tokens: int = 48
    kind: str = "undifferentiated"  # an AblationKind, checked on construction
    template: str = "chat"
    batch_size: int = 32
    top_k: int = 10
    export: bool = True

    def __post_init__(self) -> None:
        for name in (
            "search_prompts",
            "eval_prompts",
            "steps",
            "max_new_tokens",
            "batch_size",
            "top_k",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"DemoConfig.{name} must be an int >= 1, got {value!r}.")
        if self.shortlist is not None and self.shortlist < self.steps:
            raise InputError(
                f"DemoConfig.shortlist={self.shortlist} is smaller than steps={self.steps}: the "
                "search needs at least one candidate head per step (None: every head)."
            )
        if self.kind not in get_args(AblationKind):
            raise InputError(
                f"DemoConfig.kind={self.kind!r} is not one of {get_args(AblationKind)}."
            )
        if self.base is not None and self.base == self.model:
            raise InputError(
                f"DemoConfig.base is the model itself ({self.model!r}); name its base model, "
                "or pass base=None to skip the comparison."
            )


@dataclass(frozen=True)
class DemoResult:
    """What the demo found and wrote: the chosen ``heads`` in order, the ASR with 0..k heads
    ablated (the content judge's, and the keyword judge's on the same answers), the
    chat-vs-base rank statistics (None without a base) and every file."""

    out: Path
    heads: tuple[Head, ...]
    asr: tuple[float, ...]
    keyword_asr: tuple[float, ...]
    spearman: float | None
    jaccard: float | None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def report(self) -> Path:
        return self.files["report"]


def _export_done(folder: Path, model: HookedChatModel, ablation: Ablation) -> bool:
    """Whether ``folder`` already holds this export (same source, heads, kind, epsilon)."""
    from safety_heads.evaluation.export import EXPORT_NOTE

    note = folder / EXPORT_NOTE
    if not note.is_file():
        return False
    data = json.loads(note.read_text())
    return (
        data.get("source") == str(model.source)
        and data.get("heads") == [str(h) for h in ablation.heads]
        and data.get("kind") == ablation.kind
        and (ablation.kind == "mean" or data.get("epsilon") == ablation.epsilon)
    )


def _split_prompts(config: DemoConfig) -> tuple[list[str], list[str]]:
    from safety_heads.datasets import load_prompts

    wanted = config.search_prompts + config.eval_prompts
    prompts = load_prompts(config.prompts, limit=wanted)
    if len(prompts) < wanted:
        raise InputError(
            f"{config.prompts!r} has {len(prompts)} prompts, fewer than the {wanted} asked for "
            f"({config.search_prompts} search + {config.eval_prompts} evaluation); lower "
            "--search-prompts or --eval-prompts."
        )
    return prompts[: config.search_prompts], prompts[config.search_prompts :]


def _intro(config: DemoConfig) -> str:
    pool = (
        "every head" if config.shortlist is None else f"the {config.shortlist} best heads of step 1"
    )
    text = (
        f"{config.model}: Generalized Ships of every head and a {config.steps}-step Sahara "
        f"search among {pool} ({config.kind} ablation) on {config.search_prompts} "
        f"{config.prompts} prompts; ASR on the next {config.eval_prompts} prompts, answers "
        f"of up to {config.max_new_tokens} tokens judged by the content judge and, beside "
        "it, the paper's keyword judge"
    )
    return text + (f"; compared with its base {config.base}." if config.base else ".")


def run_demo(
    out: str | os.PathLike[str] = "demo-out",
    config: DemoConfig | None = None,
    *,
    progress: bool = True,
) -> DemoResult:
    """Run the demo into ``out`` (see the module docstring); re-running resumes."""
    from safety_heads.checkpoint import write_json_atomic
    from safety_heads.evaluation.asr import asr_curve, evaluate_asr
    from safety_heads.evaluation.export import export_ablated
    from safety_heads.evaluation.generation import GenerationConfig
    from safety_heads.figures.attention import attention_patterns
    from safety_heads.figures.compare import compare_results
    from safety_heads.figures.plots import result_heatmap
    from safety_heads.figures.report import (
        Section,
        read_item,
        report_html,
        sections_for,
        write_report,
    )
    from safety_heads.method.heads import top_heads
    from safety_heads.method.sahara import generalized_ships, sahara
    from safety_heads.models.chat_model import load_model

    config = config or DemoConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / filename for name, filename in DEMO_FILES.items()}
    search_prompts, eval_prompts = _split_prompts(config)
    scoring = {"template": config.template, "kind": config.kind, "progress": progress}
    generation = GenerationConfig(
        max_new_tokens=config.max_new_tokens, batch_size=config.batch_size, template=config.template
    )
    bar = tqdm(
        total=7 if config.base is not None else 5, desc="demo", unit="stage", disable=not progress
    )

    def stage(text: str) -> None:
        bar.set_postfix_str(text)
        logger.info("demo: %s", text)

    stage(f"Generalized Ships of every head of {config.model}")
    model = load_model(config.model)
    if config.shortlist is None:
        search = sahara(
            model, search_prompts, steps=config.steps, checkpoint=files["sahara"], **scoring
        )
        scan = search  # its step 1 is every head's Generalized Ships
        files.pop("scan")
        bar.update()
    else:
        scan = generalized_ships(model, search_prompts, checkpoint=files["scan"], **scoring)
        bar.update()
        stage(f"Sahara among the {config.shortlist} best heads")
        shortlist = top_heads(scan.scores, config.shortlist)
        search = sahara(
            model,
            search_prompts,
            steps=config.steps,
            heads=shortlist,
            checkpoint=files["sahara"],
            **scoring,
        )
    ablation = Ablation(tuple(search.heads), config.kind)
    bar.update()

    stage(f"ASR with 0..{config.steps} heads ablated")
    curve = asr_curve(
        model, eval_prompts, ablation, config=generation, out=files["asr_curve"], progress=progress
    )
    bar.update()

    stage("attention patterns and export")
    patterns = attention_patterns(model, search_prompts[0], search.heads, template=config.template)
    write_json_atomic(files["attention"], patterns.to_json())
    if config.export:
        if not _export_done(files["export"], model, ablation):
            export_ablated(model, ablation, files["export"], overwrite=True)
    else:
        files.pop("export")
    bar.update()
    del model

    spearman = jaccard = None
    items = [
        read_item(files["sahara"], f"{config.model}, search"),
        read_item(files["asr_curve"], f"{config.model}, {config.kind}"),
    ]
    if config.base is not None:
        stage(f"Generalized Ships of every head of the base {config.base}")
        base = load_model(config.base)
        base_scan = generalized_ships(
            base, search_prompts, checkpoint=files["scan_base"], **scoring
        )
        bar.update()
        stage(f"ASR of the base {config.base}")
        evaluate_asr(
            base, eval_prompts, None, config=generation, out=files["asr_base"], progress=progress
        )
        del base
        bar.update()
        comparison = compare_results(
            scan, base_scan, labels=(config.model, config.base), top_k=config.top_k
        )
        write_json_atomic(files["comparison"], comparison.to_json())
        spearman, jaccard = comparison.spearman, comparison.jaccard
        items += [
            read_item(files["asr_base"], f"{config.base}, no ablation"),
            read_item(files["comparison"], "chat vs base"),
        ]
    else:
        for name in ("scan_base", "asr_base", "comparison"):
            files.pop(name)
    items.append(read_item(files["attention"], "chosen heads"))
    if config.export:
        items.append(read_item(files["export"], config.model))

    stage("report")
    overview = Section(
        f"Generalized Ships of every head: {config.model}",
        (
            result_heatmap(
                scan,
                "step-1",
                marked=search.heads,
                title=f"{config.model}: every head alone; Sahara's picks numbered",
            ),
        ),
        "<p>Principal angle (degrees) between the search prompts' main hidden-state "
        "direction with and without each head (Undifferentiated Attention); the heads the "
        "search chose are numbered in order.</p>",
        scan.to_json(),
    )
    page = report_html(
        [overview, *sections_for(items)],
        intro=_intro(config),
        title=f"safety-heads demo: {config.model}",
    )
    write_report(page, files["report"])
    bar.update()
    bar.close()
    asr = tuple(point.asr.value for point in curve.points)
    keyword_asr = tuple(point.keyword_asr.value for point in curve.points)
    return DemoResult(out, tuple(search.heads), asr, keyword_asr, spearman, jaccard, files)
