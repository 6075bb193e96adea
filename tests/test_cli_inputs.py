"""Bad arguments are refused with a one-line error and exit code 2 before any model loads:
output paths that cannot be written or hold something else, and cheap settings."""

from __future__ import annotations

import json

import pytest

from safety_heads.cli import main

COMMANDS = {
    "evaluate": ["evaluate", "--prompts", "advbench", "--limit", "2"],
    "ships": ["ships", "--prompts", "advbench", "--limit", "2"],
    "sahara": ["sahara", "--prompts", "advbench", "--limit", "2"],
}


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr("safety_heads.models.chat_model.load_model", refuse)


def refused(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    return error


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_output_paths_are_checked_first(command, tmp_path, capsys):
    base = COMMANDS[command]
    (tmp_path / "a-file").write_text("mine")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "other.json").write_text(json.dumps({"kind": "attention", "settings": {}}))
    cases = {
        str(tmp_path / "missing" / "out.json"): "does not exist",
        str(tmp_path / "a-file" / "out.json"): "is a file, not a folder",
        str(tmp_path / "list.json"): "not a",
        str(tmp_path / "other.json"): "'attention' file",
        str(tmp_path): "is a folder",
    }
    for out, message in cases.items():
        assert message in refused(capsys, [*base, "--out", out])
    assert (tmp_path / "a-file").read_text() == "mine"
    assert (tmp_path / "list.json").read_text() == "[1, 2]"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ships", "--top-k", "0"], "--top-k must be >= 1"),
        (["sahara", "--steps", "0"], "--steps must be >= 1"),
        (["ships", "--epsilon", "-1"], "epsilon must be"),
        (["sahara", "--limit", "0"], "limit must be a positive"),
        (["ships", "--control", "no-such-file.txt"], "No prompt set"),
        (["evaluate", "--limit", "0"], "limit must be a positive"),
    ],
)
def test_cheap_settings_are_checked_first(argv, message, tmp_path, capsys):
    command, *rest = argv
    base = [command, "--prompts", "advbench", "--out", str(tmp_path / "out.json")]
    assert message in refused(capsys, [*base, *rest])
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "bogus"], "not a device torch knows"),
        (["--threads", "-1"], "--threads must be >= 1"),
        (["--threads", "0"], "--threads must be >= 1"),
    ],
)
def test_device_and_thread_arguments(extra, message, capsys):
    assert message in refused(capsys, ["info", *extra])


def test_cuda_without_cuda_is_refused(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "has no CUDA device" in refused(capsys, ["info", "--device", "cuda"])
