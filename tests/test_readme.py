"""The README's Python example runs as written and computes what it says."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parent.parent / "README.md"


def test_python_example_runs(bundled):
    text = README.read_text()
    (code,) = re.findall(r"## In Python\n\n```python\n(.*?)```", text, flags=re.S)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    ships = namespace["ships"]
    assert ships.shape == (8,)
    assert torch.all(ships >= -1e-6) and ships.max() > 0
    assert len(namespace["answers"]) == 8
    assert namespace["logits"].shape[:2] == namespace["batch"].input_ids.shape


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci
    assert "<!-- test-command -->" in README.read_text()
