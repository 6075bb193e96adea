"""The command line's error policy, table-driven: each bad input exits 2 with one line on
stderr that names the problem (no traceback), Ctrl-C exits 130 with a hint to resume, an
unexpected exception is shown as a bug, and no file the user had is changed, whatever the
command (the current folder is checksummed before and after every case)."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from safety_heads.cli import main

PACKAGE = Path(__file__).resolve().parent.parent / "safety_heads"


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def user_folder(tmp_path, monkeypatch, bundled_folder):
    """The current folder, holding the user's own files and the bad inputs of the table."""
    home = tmp_path / "work"
    home.mkdir()
    monkeypatch.chdir(home)
    monkeypatch.setenv("SAFETY_HEADS_CACHE", str(tmp_path / "cache"))
    (home / "notes.txt").write_text("my notes")
    (home / "prompts.csv").write_text("input\nWrite a poem\n")
    base = Path(bundled_folder)
    no_weights = home / "no-weights"
    no_weights.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(base / name, no_weights / name)
    (home / "bad-config").mkdir()
    (home / "bad-config" / "config.json").write_text("{not json")
    (home / "only-config").mkdir()
    shutil.copy(base / "config.json", home / "only-config" / "config.json")
    (home / "no-tokenizer").mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(base / name, home / "no-tokenizer" / name)
    from safety_heads.models.cache import bundled_gguf_path

    gguf = bundled_gguf_path().read_bytes()
    (home / "truncated.gguf").write_bytes(gguf[: len(gguf) // 3])
    (home / "not-a-result.json").write_text(json.dumps({"a": 1}))
    (home / "empty.csv").write_text("")
    for kind in ("ships", "sahara", "evaluate", "side-effects"):  # finished, but no data
        (home / f"bare-{kind}.json").write_text(
            json.dumps({"kind": kind, "complete": True, "settings": {}})
        )
    return home


CASES = {
    "folder without weights": (["info", "--model", "no-weights"], "no weights"),
    "invalid config.json": (["info", "--model", "bad-config"], "is not valid JSON"),
    "folder with only a config": (["info", "--model", "only-config"], "no weights"),
    "folder without tokenizer": (["info", "--model", "no-tokenizer"], "holds no tokenizer"),
    "truncated gguf": (["info", "--model", "truncated.gguf"], "truncated or corrupt"),
    "compare a non-result": (
        ["compare", "not-a-result.json", "not-a-result.json", "--out", "c.html"],
        "not a result of safety-heads",
    ),
    "report a non-result": (["report", "not-a-result.json", "--out", "r.html"], "no kind field"),
    "compare a ships result without per_prompt": (
        ["compare", "bare-ships.json", "bare-ships.json", "--out", "c.html"],
        "not a complete ships result (no field 'per_prompt')",
    ),
    "report a sahara result without heads": (
        ["report", "bare-sahara.json", "--out", "r.html"],
        "not a complete sahara result",
    ),
    "report an evaluate result without answers": (
        ["report", "bare-evaluate.json", "--out", "r.html"],
        "not a complete evaluate result",
    ),
    "report side effects without answers": (
        ["report", "bare-side-effects.json", "--out", "r.html"],
        "not a complete side-effects",
    ),
    "judge a result without answers": (
        ["judge", "bare-evaluate.json", "--out", "v.json"],
        "without a 'responses' list",
    ),
    "empty prompt file": (["evaluate", "--prompts", "empty.csv", "--out", "e.json"], "is empty"),
    "no heads to score": (["ships", "--heads", "", "--out", "s.json"], "--heads names no heads"),
    "contrast without control": (
        ["sahara", "--select", "contrast", "--out", "s.json"],
        "needs control prompts",
    ),
    "export over the current folder": (
        ["export", "--heads", "1.2", "--out", ".", "--overwrite"],
        "holds the current folder",
    ),
    "missing classifier template": (
        [
            "evaluate",
            "--classifier",
            "org/guard",
            "--classifier-template",
            "missing.txt",
            "--out",
            "e.json",
        ],
        "cannot read it",
    ),
    "dtype unknown": (["info", "--dtype", "float8"], "float8"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_changes_nothing(case, user_folder, capsys):
    argv, message = CASES[case]
    before = checksums(user_folder)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    error = capsys.readouterr().err
    lines = [line for line in error.splitlines() if line.startswith("safety-heads")]
    assert exit_info.value.code == 2, error
    assert "Traceback" not in error and len(lines) == 1, error
    assert lines[0].startswith(f"safety-heads {argv[0]}: error: ") and message in lines[0]
    assert checksums(user_folder) == before


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def _crash(*args, **kwargs):
    raise RuntimeError("an internal mistake")


def test_ctrl_c_exits_130_with_a_hint_to_resume(monkeypatch, capsys):
    monkeypatch.setattr("safety_heads.models.chat_model.load_model", _interrupt)
    with pytest.raises(SystemExit) as exit_info:
        main(["info"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 130
    assert error.count("\n") == 1 and "Traceback" not in error
    assert "interrupted" in error and "re-run the same command" in error


def test_an_unexpected_exception_is_reported_as_a_bug(monkeypatch, capsys):
    monkeypatch.setattr("safety_heads.models.chat_model.load_model", _crash)
    assert main(["info"]) == 1
    error = capsys.readouterr().err
    assert "Traceback" in error and "an internal mistake" in error
    assert "this is a bug in safety-heads" in error.splitlines()[-1]


def test_verbose_adds_the_traceback_to_an_error(user_folder, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--verbose", "info", "--model", "bad-config"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "Traceback" in error and error.rstrip().splitlines()[-1].startswith(
        "safety-heads info: error:"
    )


def test_warnings_are_one_line(tmp_path, capsys):
    from test_compare import synthetic_ships

    a, b = synthetic_ships(0), synthetic_ships(1)
    a.save(tmp_path / "a.json")
    b.save(tmp_path / "b.json")
    out = tmp_path / "c.html"
    assert (
        main(
            [
                "compare",
                str(tmp_path / "a.json"),
                str(tmp_path / "b.json"),
                "--out",
                str(out),
                "--top-k",
                "12",
            ]
        )
        == 0
    )
    error = capsys.readouterr().err
    assert "safety-heads compare: warning: top-12 overlap of maps with only 12 heads" in error
    assert "Traceback" not in error and "warnings.warn" not in error


def test_the_package_raises_only_its_own_errors_for_user_mistakes():
    """Every ``raise`` of a built-in error a user could cause (ValueError, FileExistsError,
    FileNotFoundError, RuntimeError) goes through the package's types, which the command
    line shows as one line; TypeError stays for a caller's programming mistakes."""
    builtin = {"ValueError", "FileExistsError", "FileNotFoundError", "RuntimeError", "OSError"}
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(call, ast.Name) and call.id in builtin:
                    found.append(f"{path.name}:{node.lineno} raises {call.id}")
    assert not found, found


def test_out_of_memory_is_one_line_with_what_to_lower(monkeypatch, capsys):
    import torch

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 83.00 GiB.\nMore.")

    monkeypatch.setattr("safety_heads.models.chat_model.load_model", out_of_memory)
    with pytest.raises(SystemExit) as exit_info:
        main(["info"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and error.count("\n") == 1 and "Traceback" not in error
    assert "out of memory" in error and "--max-batch-tokens" in error


def test_a_chat_template_that_refuses_a_system_prompt_says_what_to_do(tokenizer):
    import copy

    from safety_heads.errors import InputError
    from safety_heads.models.prompts import format_prompt

    strict = copy.deepcopy(tokenizer)
    strict.chat_template = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
        "supported') }}{% endif %}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}"
        "{% endfor %}<assistant>"
    )
    assert format_prompt("Hi", tokenizer=strict) == "<user>Hi<assistant>"
    with pytest.raises(InputError, match="System role not supported.*leave the system prompt"):
        format_prompt("Hi", tokenizer=strict, system="Be brief.")
