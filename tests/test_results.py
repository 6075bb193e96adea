"""One way to load every result: files written by the current version load back with
``load_result`` as the object that wrote them, equal to it; unfinished and foreign files
are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import HARMFUL

import safety_heads as sh
from safety_heads.benchmark import MethodsBenchmark, benchmark_methods
from safety_heads.evaluation.asr import AsrCurve, AsrResult
from safety_heads.evaluation.export import ExportReport
from safety_heads.evaluation.generation import GenerationConfig
from safety_heads.evaluation.side_effects import SideEffects
from safety_heads.figures.attention import AttentionPatterns, attention_patterns
from safety_heads.figures.compare import MapComparison, compare_results
from safety_heads.method.ablation import Ablation
from safety_heads.method.sahara import SaharaResult
from safety_heads.method.ships import ShipsResult
from safety_heads.results import RESULT_KINDS, load_result

SHORT = GenerationConfig(max_new_tokens=4, batch_size=4)


def _saved(path: Path, kind: str, data: dict) -> Path:
    path.write_text(json.dumps({"kind": kind, **data}))
    return path


def test_every_kind_loads_back_as_what_wrote_it(tiny, tmp_path):
    model = tiny.model
    ablation = Ablation.of(["1.2", "3.0"], "scale")
    ships = sh.ships(model, HARMFUL[:2], template="chat", progress=False)
    ships.save(tmp_path / "ships.json")
    sahara = sh.sahara(model, HARMFUL[:2], steps=1, template="chat", progress=False)
    sahara.save(tmp_path / "sahara.json")
    asr = sh.evaluate_asr(model, HARMFUL, ablation, config=SHORT, out=tmp_path / "asr.json")
    curve = sh.asr_curve(model, HARMFUL[:2], ablation, config=SHORT, out=tmp_path / "curve.json")
    side = sh.side_effects(model, HARMFUL[:2], ablation, config=SHORT, out=tmp_path / "side.json")
    comparison = compare_results(ships, sahara, labels=("ships", "sahara"), top_k=3)
    _saved(tmp_path / "cmp.json", "comparison", comparison.to_json())
    patterns = attention_patterns(model, HARMFUL[0], ["1.2"], ablation=None)
    _saved(tmp_path / "attention.json", "attention", patterns.to_json())
    export = ExportReport(tmp_path, "tiny", "/models/tiny", ablation, 64, 10**5, "float32", "auto")
    (tmp_path / "safety-heads-export.json").write_text(json.dumps(export.to_json()))
    sets = {
        "harmful": HARMFUL[:2],
        "harmless": HARMFUL[2:],
        "asr": HARMFUL[:1],
        "safe": HARMFUL[:1],
    }
    figures = benchmark_methods(model, "tiny", sets, SHORT, tmp_path / "work")
    methods = MethodsBenchmark({"tiny": figures}, {"device": "cpu"})
    _saved(tmp_path / "methods.json", "methods-benchmark", methods.to_json())
    written = {
        "ships.json": (ShipsResult, ships),
        "sahara.json": (SaharaResult, sahara),
        "asr.json": (AsrResult, asr),
        "curve.json": (AsrCurve, curve),
        "side.json": (SideEffects, side),
        "cmp.json": (MapComparison, comparison),
        "attention.json": (AttentionPatterns, patterns),
        ".": (ExportReport, export),  # an export folder
        "methods.json": (MethodsBenchmark, methods),
    }
    assert len(written) == len(RESULT_KINDS)
    for name, (cls, original) in written.items():
        loaded = load_result(tmp_path / name)
        assert type(loaded) is cls, name
        assert loaded.to_json() == original.to_json(), name


def test_unfinished_and_foreign_files_are_refused(tmp_path):
    unfinished = _saved(tmp_path / "u.json", "ships", {"complete": False, "settings": {}})
    with pytest.raises(ValueError, match="unfinished ships run"):
        load_result(unfinished)
    (tmp_path / "n.json").write_text(json.dumps({"results": []}))
    with pytest.raises(ValueError, match="no kind field"):
        load_result(tmp_path / "n.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON list, not a result object"):
        load_result(tmp_path / "list.json")
    damaged = _saved(tmp_path / "d.json", "evaluate", {"complete": True})
    with pytest.raises(ValueError, match="not a complete evaluate result"):
        load_result(damaged)
