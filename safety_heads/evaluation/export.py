"""Export: write the ablated model as a plain Hugging Face checkpoint.

The hooked model cannot be saved (the bridge has rewired its layers), and hooks do not
travel. :func:`export_ablated` therefore loads a fresh, un-hooked copy of the model from
``ChatModel.source`` (the folder or hub id its weights came from), bakes the ablation into
that copy's weights in place (:func:`safety_heads.method.surgery.ablate_weights`; no second copy
of a 7B model is held), and writes

* the model (``config.json``, ``model.safetensors``) and its tokenizer, loadable with
  ``transformers.AutoModelForCausalLM.from_pretrained(folder)``;
* ``safety-heads-export.json``: source, heads, ablation kind, epsilon, and the parameters
  touched (count and share of the model);
* ``README.md``: the same in words.

The edits (exact weight-space twins of the hooks):

================  =================================================================
kind              edit
================  =================================================================
undifferentiated  the head's rows of ``q_proj`` (and its q bias slice) x ``epsilon``
scale             the head's columns of ``o_proj`` x ``epsilon``
mean              the head's rows of ``q_proj`` (and bias) := their mean over the heads
================  =================================================================

``via="pattern"`` (an exactly uniform pattern, the ``epsilon -> 0`` limit) has no exact
weight twin; it is exported as the query scaling by ``epsilon``, which agrees with it to
float tolerance. The folder is written under a temporary name and renamed into place, so a
crash never leaves a half-written checkpoint under the requested name.
"""

import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from safety_heads.errors import InputError, OutputExistsError
from safety_heads.method.ablation import Ablation
from safety_heads.method.heads import Head, check_heads
from safety_heads.method.surgery import ablate_weights, check_weight_edit, touched_parameters
from safety_heads.models.interface import HookedChatModel

__all__ = [
    "ExportReport",
    "export_ablated",
    "load_ablated_hf",
    "check_export_target",
    "EXPORT_NOTE",
]

logger = logging.getLogger(__name__)

EXPORT_NOTE = "safety-heads-export.json"

_EDITS = {
    "undifferentiated": "q_proj rows (and q bias) of each head multiplied by epsilon",
    "scale": "o_proj columns of each head multiplied by epsilon",
    "mean": "q_proj rows (and q bias) of each head replaced by their mean over the layer's heads",
}


def _version() -> str:
    try:
        return metadata.version("safety-heads")
    except metadata.PackageNotFoundError:
        return "unknown"


def load_ablated_hf(model: HookedChatModel, ablation: Ablation | None) -> Any:
    """A fresh, un-hooked Hugging Face copy of ``model`` with ``ablation`` in its weights.

    ``model`` is a ChatModel (``source``, ``dtype`` are read); the copy is loaded on the CPU
    in the model's dtype and edited in place. ``None`` or no heads: the plain copy.
    """
    if model.source is None:
        raise InputError(
            f"Model {model.name!r} has no source folder or hub id (it was built in memory), so "
            "no un-hooked copy can be loaded to edit: save it with save_pretrained and load it "
            "with load_model(folder), or use surgery.ablate_weights on a pristine HF model."
        )
    from transformers import AutoModelForCausalLM

    hf_model = AutoModelForCausalLM.from_pretrained(model.source, dtype=model.dtype)
    hf_model.eval()
    if ablation is not None and ablation.heads:
        ablate_weights(hf_model, ablation, in_place=True)
    return hf_model


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_ablated` wrote, and how much of the model it changed."""

    path: Path
    model: str
    source: str
    ablation: Ablation
    parameters_touched: int
    parameters_total: int
    dtype: str
    chat_format: str

    @property
    def heads(self) -> tuple[Head, ...]:
        return self.ablation.heads

    @property
    def fraction_touched(self) -> float:
        return self.parameters_touched / self.parameters_total

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ExportReport":
        """An ExportReport from an export's ``safety-heads-export.json``."""
        options = {"epsilon": data["epsilon"]} if data.get("epsilon") is not None else {}
        ablation = Ablation.of(data["heads"], data["kind"], via=data.get("via", "query"), **options)
        return cls(
            Path(data["path"]),
            data["model"],
            data["source"],
            ablation,
            int(data["parameters_touched"]),
            int(data["parameters_total"]),
            data.get("dtype", ""),
            data.get("chat_format", ""),  # not written by the first versions
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "model": self.model,
            "source": self.source,
            "heads": [str(h) for h in self.ablation.heads],
            "kind": self.ablation.kind,
            "epsilon": None if self.ablation.kind == "mean" else self.ablation.epsilon,
            "via": self.ablation.via,
            "edit": _EDITS[self.ablation.kind],
            "parameters_touched": self.parameters_touched,
            "parameters_total": self.parameters_total,
            "fraction_touched": self.fraction_touched,
            "dtype": self.dtype,
            "chat_format": self.chat_format,
            "safety_heads_version": _version(),
        }


def _model_card(report: ExportReport) -> str:
    ablation = report.ablation
    epsilon = "" if ablation.kind == "mean" else f" (epsilon = {ablation.epsilon:g})"
    heads = ", ".join(str(h) for h in ablation.heads)
    return (
        f"# {report.model} with {len(ablation.heads)} attention head(s) ablated\n\n"
        f"Written by safety-heads {_version()} from `{report.source}`.\n\n"
        f"- Ablation: {ablation.kind}{epsilon} of heads {heads} (layer.head, 0-based query "
        "heads).\n"
        f"- Edit: {_EDITS[ablation.kind]}.\n"
        f"- Parameters changed: {report.parameters_touched:,} of {report.parameters_total:,} "
        f"({100 * report.fraction_touched:.4f}%).\n"
        f"- Prompt format of the original: {report.chat_format}.\n\n"
        "Load it with `transformers.AutoModelForCausalLM.from_pretrained(<this folder>)`.\n\n"
        "This is a research artefact: heads that the original model uses to refuse harmful "
        "requests were knocked out on purpose, so it may comply with requests the original "
        "refuses. Do not deploy it.\n"
    )


def check_export_target(out: Path, overwrite: bool) -> Path:
    """``out`` resolved, once it is safe to write an export there: absent, an empty folder,
    or, with ``overwrite``, a previous export of this tool (it holds ``EXPORT_NOTE``).

    Raises OutputExistsError (a FileExistsError) otherwise; never a folder that holds the
    current directory or files this tool did not write, with or without ``overwrite``.
    """
    out = Path(out).expanduser().resolve()
    here = Path.cwd().resolve()
    if out == here or out in here.parents:
        raise OutputExistsError(
            f"--out {out} holds the current folder; an export replaces its whole folder, so "
            "choose a new folder, e.g. --out ablated-model."
        )
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return out
    if not out.is_dir():
        raise OutputExistsError(
            f"--out {out} is a file; an export is a folder: choose another path."
        )
    if not (out / EXPORT_NOTE).is_file():
        raise OutputExistsError(
            f"{out} already holds files that are not an export of safety-heads; choose "
            "another --out folder (overwrite only replaces an earlier export)."
        )
    if not overwrite:
        raise OutputExistsError(
            f"{out} already holds an export; choose another --out folder, or pass "
            "overwrite=True (CLI: --overwrite) to replace it."
        )
    return out


def export_ablated(
    model: HookedChatModel,
    ablation: Ablation,
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> ExportReport:
    """Write ``model`` (a ChatModel) with ``ablation`` baked into its weights to ``out``.

    See the module docstring for what is written. Returns the :class:`ExportReport` (also
    saved as ``safety-heads-export.json`` in the folder).
    """
    if not ablation.heads:
        raise InputError("The ablation names no heads, so there is nothing to bake in; pass heads.")
    check_heads(ablation.heads, model.n_layers, model.n_heads)
    check_weight_edit(model.hf_model, ablation.kind)  # before the slow reload
    out = check_export_target(Path(out), overwrite)
    hf_model = load_ablated_hf(model, ablation)
    touched, _ = touched_parameters(hf_model, ablation)
    report = ExportReport(
        path=out,
        model=model.name,
        source=str(model.source),
        ablation=ablation,
        parameters_touched=touched,
        parameters_total=sum(p.numel() for p in hf_model.parameters()),
        dtype=str(model.dtype).removeprefix("torch."),
        chat_format=model.chat_format,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    # A sibling folder made with mkdir (not mkdtemp, whose 0700 mode would survive the rename).
    work = out.parent / f".{out.name}.{secrets.token_hex(6)}.partial"
    work.mkdir()
    try:
        hf_model.save_pretrained(str(work))
        model.tokenizer.save_pretrained(str(work))
        (work / EXPORT_NOTE).write_text(json.dumps(report.to_json(), indent=1) + "\n")
        (work / "README.md").write_text(_model_card(report))
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        os.replace(work, out)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    logger.info(
        "Exported %s to %s (%d parameters changed, %.4f%%).",
        ablation.describe(),
        out,
        touched,
        100 * report.fraction_touched,
    )
    return report
