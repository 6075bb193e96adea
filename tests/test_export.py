"""The exported checkpoint is the hooked model: a plain AutoModelForCausalLM loaded from it
gives the hooked log-probs and greedy generations, and the note counts what was changed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from conftest import HARMFUL, hf_logprobs
from transformers import AutoModelForCausalLM, AutoTokenizer

from safety_heads import Ablation, load_model, touched_parameters
from safety_heads.evaluation.export import EXPORT_NOTE, export_ablated, load_ablated_hf
from safety_heads.method.forward import _cut_at_eos, generate, next_token_logprobs

HEADS = "1.2,3.0,3.3"
TOL = 1e-4


def saved_tiny(pristine, tokenizer, folder: Path):
    """A ChatModel loaded from a save_pretrained folder of a tiny model (so it has a source)."""
    pristine.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return load_model(str(folder))


@pytest.fixture(scope="module")
def source_model(tiny, tokenizer, tmp_path_factory):
    return saved_tiny(tiny.pristine, tokenizer, tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def batch(source_model):
    return source_model.encode(HARMFUL)


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("kind", ["undifferentiated", "scale", "mean"])
def test_exported_checkpoint_is_the_hooked_model(source_model, batch, tmp_path, kind):
    ablation = Ablation.of(HEADS, kind)
    export_ablated(source_model, ablation, tmp_path / "out")
    exported = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out")).eval()

    hooked = next_token_logprobs(source_model, batch, ablation)
    assert (hf_logprobs(exported, batch) - hooked).abs().max().item() <= TOL
    unablated = next_token_logprobs(source_model, batch)
    assert (hooked - unablated).abs().max().item() > 1e-2, "the ablation must change the output"

    eos = source_model.tokenizer.eos_token_id
    with torch.no_grad():
        out = exported.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            max_new_tokens=10,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=source_model.tokenizer.pad_token_id,
        )
    expected = [_cut_at_eos(row, eos) for row in out[:, batch.input_ids.shape[1] :].tolist()]
    assert list(generate(source_model, batch, ablation, max_new_tokens=10).tokens) == expected


def test_note_and_tokenizer_are_written(source_model, tiny, tmp_path):
    ablation = Ablation.of(HEADS)
    report = export_ablated(source_model, ablation, tmp_path / "out")
    folder = tmp_path / "out"
    assert {"config.json", "model.safetensors", "tokenizer.json", EXPORT_NOTE, "README.md"} <= {
        p.name for p in folder.iterdir()
    }
    note = json.loads((folder / EXPORT_NOTE).read_text())
    total = sum(p.numel() for p in tiny.pristine.parameters())
    assert note["parameters_touched"] == 3 * 16 * 64 == report.parameters_touched
    assert note["parameters_total"] == total
    assert note["fraction_touched"] == pytest.approx(3 * 16 * 64 / total)
    assert (note["heads"], note["kind"], note["epsilon"]) == (
        ["1.2", "3.0", "3.3"],
        "undifferentiated",
        1e-5,
    )
    assert (report.parameters_touched, report.fraction_touched) == touched_parameters(
        tiny.pristine, ablation
    )
    card = (folder / "README.md").read_text()
    assert "1.2, 3.0, 3.3" in card and f"{3 * 16 * 64:,} of {total:,}" in card
    umask = os.umask(0)
    os.umask(umask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask, "the folder keeps the usual mode"
    reloaded = AutoTokenizer.from_pretrained(str(folder))
    text = "Write a poem"
    assert reloaded(text)["input_ids"] == source_model.tokenizer(text)["input_ids"]
    assert reloaded.chat_template == source_model.tokenizer.chat_template


def test_export_touches_neither_the_source_nor_the_hooked_model(source_model, batch, tmp_path):
    source = Path(source_model.source)
    before_files = folder_digest(source)
    before = next_token_logprobs(source_model, batch)
    export_ablated(source_model, Ablation.of(HEADS, "mean"), tmp_path / "out")
    assert folder_digest(source) == before_files
    assert torch.equal(next_token_logprobs(source_model, batch), before)


def test_existing_folders_are_kept_unless_overwrite(source_model, tmp_path):
    target = tmp_path / "out"
    export_ablated(source_model, Ablation.of("1.2"), target)
    with pytest.raises(FileExistsError, match="overwrite"):
        export_ablated(source_model, Ablation.of("1.2", "scale"), target)
    assert json.loads((target / EXPORT_NOTE).read_text())["kind"] == "undifferentiated"
    export_ablated(source_model, Ablation.of("1.2", "scale"), target, overwrite=True)
    assert json.loads((target / EXPORT_NOTE).read_text())["kind"] == "scale"
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no temporary folder is left"


def test_a_folder_of_other_files_is_never_replaced(source_model, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="not an export"):
            export_ablated(source_model, Ablation.of("1.2"), target, overwrite=overwrite)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "mine"
    (tmp_path / "file").write_text("mine")
    with pytest.raises(FileExistsError, match="is a file"):
        export_ablated(source_model, Ablation.of("1.2"), tmp_path / "file", overwrite=True)
    assert (tmp_path / "file").read_text() == "mine"


@pytest.mark.parametrize("spelling", [".", "", "..", "sub/.."])
def test_the_current_folder_is_never_an_export_target(
    source_model, tmp_path, monkeypatch, spelling
):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    target = spelling if spelling != "" else str(work)
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="holds the current folder"):
            export_ablated(source_model, Ablation.of("1.2"), target, overwrite=overwrite)
    assert (work / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt", "sub"]


def test_bad_exports_are_refused(source_model, tiny, tmp_path):
    with pytest.raises(ValueError, match="no heads"):
        export_ablated(source_model, Ablation.of([]), tmp_path / "a")
    with pytest.raises(ValueError, match="out of range"):
        export_ablated(source_model, Ablation.of("4.0"), tmp_path / "b")
    with pytest.raises(ValueError, match="save_pretrained"):
        export_ablated(tiny.model, Ablation.of("1.2"), tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


def test_load_ablated_hf_without_heads_is_the_plain_model(source_model, batch):
    plain = load_ablated_hf(source_model, None)
    assert (hf_logprobs(plain, batch) - next_token_logprobs(source_model, batch)).abs().max() <= TOL
