import json

import pytest

from safety_heads.checkpoint import Checkpoint, CheckpointMismatch


def test_progress_survives_and_resumes(tmp_path):
    path = tmp_path / "run.json"
    first = Checkpoint(path, "ships", {"model": "m", "heads": (1, 2)})
    assert first.resume() == {}
    first.save("layer-0", [0.5, 0.25])
    saved = json.loads(path.read_text())
    assert saved["complete"] is False
    assert saved["progress"] == {"layer-0": [0.5, 0.25]}
    again = Checkpoint(path, "ships", {"model": "m", "heads": [1, 2]})
    assert again.resume() == {"layer-0": [0.5, 0.25]}


def test_finished_file_keeps_result_and_progress(tmp_path):
    path = tmp_path / "run.json"
    run = Checkpoint(path, "ships", {"model": "m"})
    run.save("a", 1)
    run.finish({"mean": [1.0]})
    saved = json.loads(path.read_text())
    assert saved["complete"] is True and saved["mean"] == [1.0]
    assert Checkpoint(path, "ships", {"model": "m"}).resume() == {"a": 1}


def test_other_settings_are_refused_by_name(tmp_path):
    path = tmp_path / "run.json"
    Checkpoint(path, "ships", {"model": "m", "epsilon": 1e-5, "limit": 8}).save("a", 1)
    with pytest.raises(CheckpointMismatch, match="differing: epsilon") as error:
        Checkpoint(path, "ships", {"model": "m", "epsilon": 1e-3, "limit": 8}).resume()
    assert "same arguments" in str(error.value)
    with pytest.raises(CheckpointMismatch, match="'sahara' run"):
        Checkpoint(path, "sahara", {"model": "m"}).resume()


def test_unreadable_file_is_not_overwritten(tmp_path):
    path = tmp_path / "run.json"
    path.write_text("not json")
    with pytest.raises(CheckpointMismatch, match="not a readable result file"):
        Checkpoint(path, "ships", {}).resume()
    assert path.read_text() == "not json"


def test_no_path_keeps_nothing_on_disk(tmp_path):
    run = Checkpoint(None, "ships", {})
    run.save("a", 1)
    assert run.finish({"x": 1})["x"] == 1
    assert list(tmp_path.iterdir()) == []
