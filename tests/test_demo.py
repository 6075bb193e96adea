"""The demo's plumbing on tiny random models saved to folders: every stage writes its file,
the numbers in the files agree with each other, and a re-run resumes without recomputing."""

import importlib
import json

import pytest
from conftest import build_tiny

from safety_heads.cli import build_parser, main
from safety_heads.datasets import load_prompts
from safety_heads.demo import DEFAULT_BASE, DEFAULT_MODEL, DEMO_FILES, DemoConfig, run_demo
from safety_heads.figures.compare import compare_results, read_scores
from safety_heads.method.heads import parse_heads, top_heads


@pytest.fixture(scope="module")
def tiny_folders(tokenizer, tmp_path_factory):
    """Two tiny models (a 'refusing' one and its 'base') as save_pretrained folders."""
    folders = {}
    for name, n_kv in (("chat", 4), ("base", 2)):
        folder = tmp_path_factory.mktemp(f"tiny-{name}")
        pair = build_tiny(tokenizer, n_kv, name=name)
        pair.pristine.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        folders[name] = str(folder)
    return folders


def _config(folders, **changes) -> DemoConfig:
    settings = dict(
        model=folders["chat"],
        base=folders["base"],
        search_prompts=3,
        eval_prompts=3,
        steps=2,
        shortlist=4,
        max_new_tokens=4,
        batch_size=3,
        top_k=3,
    )
    return DemoConfig(**{**settings, **changes})


def test_demo_writes_every_stage_and_the_numbers_agree(tiny_folders, tmp_path):
    out = tmp_path / "demo"
    result = run_demo(out, _config(tiny_folders), progress=False)
    assert set(result.files) == set(DEMO_FILES)
    scan = read_scores(out / "generalized-ships.json")
    search = read_scores(out / "sahara.json")
    assert search.heads == list(result.heads) and len(result.heads) == 2
    shortlist = set(top_heads(scan.scores, 4))
    assert sorted(search.info["heads_considered"]) == sorted(str(h) for h in shortlist)
    assert search.heads[0] == top_heads(scan.scores, 1)[0]  # step 1 = the full search's pick
    curve = json.loads((out / "asr-curve.json").read_text())
    assert curve["order"] == [str(h) for h in result.heads]
    assert tuple(curve["asr"]) == result.asr and len(result.asr) == 3
    assert curve["settings"]["generation"]["max_new_tokens"] == 4
    assert curve["settings"]["prompts"]["n"] == 3  # the evaluation prompts, not the search ones
    base = json.loads((out / "asr-base.json").read_text())
    assert base["heads"] == [] and base["n"] == 3
    expected = compare_results(scan, read_scores(out / "generalized-ships-base.json"), top_k=3)
    assert result.spearman == pytest.approx(expected.spearman)
    assert result.jaccard == pytest.approx(expected.jaccard)
    attention = json.loads((out / "attention.json").read_text())
    assert attention["heads"] == [str(h) for h in result.heads]
    assert attention["prompt"] == load_prompts("jailbreakbench", limit=1)[0]
    note = json.loads((out / "ablated-model" / "safety-heads-export.json").read_text())
    assert parse_heads(note["heads"]) == result.heads and note["kind"] == "undifferentiated"
    page = result.report.read_text()
    assert page.count('class="plotly-graph-div"') >= 5
    for title in (
        "Generalized Ships of every head:",
        "Sahara:",
        "ASR vs number of ablated heads",
        "Comparison:",
        "Attention patterns:",
        "Exported ablated model:",
    ):
        assert title in page


def test_demo_rerun_resumes_without_recomputing(tiny_folders, tmp_path, monkeypatch):
    out = tmp_path / "demo"
    config = _config(tiny_folders, base=None)
    first = run_demo(out, config, progress=False)
    export_note = out / "ablated-model" / "safety-heads-export.json"
    stamp = export_note.stat().st_mtime_ns

    def refuse(*args, **kwargs):
        raise AssertionError("a finished stage was computed again")

    # by module object: the package's ``sahara`` function hides the module of that name
    monkeypatch.setattr(
        importlib.import_module("safety_heads.method.sahara"), "layer_hidden", refuse
    )
    monkeypatch.setattr(
        importlib.import_module("safety_heads.evaluation.generation"), "generate", refuse
    )
    monkeypatch.setattr(
        importlib.import_module("safety_heads.evaluation.export"), "export_ablated", refuse
    )
    again = run_demo(out, config, progress=False)
    assert again.heads == first.heads and again.asr == first.asr
    assert export_note.stat().st_mtime_ns == stamp
    assert again.spearman is None and not (out / "comparison.json").exists()
    assert "comparison" not in again.files


def test_demo_without_shortlist_runs_the_exhaustive_search(tiny_folders, tmp_path):
    out = tmp_path / "demo"
    result = run_demo(
        out, _config(tiny_folders, base=None, export=False, shortlist=None), progress=False
    )
    search = read_scores(out / "sahara.json")
    assert search.info["heads_considered"] is None and len(search.step_scores) == 2
    assert not (out / "generalized-ships.json").exists() and "scan" not in result.files


def test_demo_refuses_a_changed_run_into_the_same_folder(tiny_folders, tmp_path):
    out = tmp_path / "demo"
    run_demo(out, _config(tiny_folders, base=None, export=False, steps=1), progress=False)
    with pytest.raises(FileExistsError, match="other settings"):
        run_demo(
            out,
            _config(tiny_folders, base=None, export=False, steps=1, search_prompts=2),
            progress=False,
        )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"steps": 0}, "steps must be an int >= 1"),
        ({"kind": "zero"}, "kind='zero' is not one of"),
        ({"base": DEFAULT_MODEL}, "base is the model itself"),
        ({"shortlist": 2, "steps": 3}, "shortlist=2 is smaller than steps=3"),
    ],
)
def test_demo_config_checks_its_fields(change, message):
    with pytest.raises(ValueError, match=message):
        DemoConfig(**change)


def test_demo_command_defaults_and_plumbing(tiny_folders, tmp_path, capsys):
    parser, _ = build_parser()
    defaults = parser.parse_args(["demo"])
    assert (defaults.model, defaults.base) == (DEFAULT_MODEL, DEFAULT_BASE)
    config = DemoConfig()
    assert (
        defaults.search_prompts,
        defaults.eval_prompts,
        defaults.steps,
        defaults.shortlist,
        defaults.max_new_tokens,
    ) == (
        config.search_prompts,
        config.eval_prompts,
        config.steps,
        config.shortlist,
        config.max_new_tokens,
    )
    out = tmp_path / "cli-demo"
    assert (
        main(
            [
                "demo",
                "--out",
                str(out),
                "--model",
                tiny_folders["chat"],
                "--base",
                "none",
                "--search-prompts",
                "2",
                "--eval-prompts",
                "2",
                "--steps",
                "1",
                "--shortlist",
                "0",
                "--max-new-tokens",
                "2",
                "--no-export",
                "--quiet",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["heads"]) == 1 and len(printed["asr"]) == 2
    assert printed["spearman_vs_base"] is None
    assert printed["report"] == str(out / "report.html") and (out / "report.html").is_file()
    assert not (out / "ablated-model").exists()
