"""The GPU-scale benchmark, in its tiny CPU form: it runs end to end and the fast path it
times agrees with the reference loop it compares against (the figures it prints on a GPU
rest on that agreement)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_scale_tiny_agrees_with_the_reference_loop(bundled_folder):
    figures = _module("gpu_scale").run("tiny", "cpu", torch.float32, 3, 4, 6)
    assert figures["heads"] == 12 and figures["sampled_heads"] == 6
    assert figures["ships_max_difference"] < 1e-5
    assert figures["sahara_max_difference_degrees"] < 1e-3
    assert figures["ships_seconds"] > 0 and figures["sahara_step_seconds"] > 0
    assert figures["atp_screen_heads_scored"] == 12 and figures["atp_screen_seconds"] > 0
