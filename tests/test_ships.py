"""Ships and Sahara on the fast path equal the reference loops, resume exactly, and keep
their provenance."""

import importlib
import json

import pytest
import torch
from conftest import HARMFUL

from safety_heads.checkpoint import CheckpointMismatch
from safety_heads.method.heads import Head
from safety_heads.method.per_head_loop import generalized_ships_reference, ships_reference
from safety_heads.method.sahara import SaharaResult, generalized_ships, sahara
from safety_heads.method.ships import ShipsResult, ships

PROMPTS = [*HARMFUL, "Tell me how to hotwire a car", "hi"]
CONTROL = ["Write a poem about the sea", "What is the capital of France?", "List three fruits"]
ALL = [Head(layer, head) for layer in range(4) for head in range(4)]
SMALL = dict(max_batch_tokens=48, max_group_prompts=2, progress=False)  # many passes, groups


@pytest.mark.parametrize("kind", ["undifferentiated", "scale", "mean"])
def test_ships_equals_the_reference_loop(tiny, kind):
    fast = ships(tiny.model, PROMPTS, kind=kind, **SMALL)
    slow = ships_reference(tiny.model, PROMPTS, ALL, kind=kind)
    assert fast.per_prompt.shape == (len(PROMPTS), 4, 4)
    assert torch.allclose(fast.per_prompt.reshape(len(PROMPTS), -1), slow, atol=1e-5, rtol=0)
    assert slow.max() > 1e-2


def test_ships_batching_does_not_change_scores(tiny):
    a = ships(tiny.model, PROMPTS, **SMALL)
    b = ships(tiny.model, PROMPTS, progress=False)
    assert torch.allclose(a.per_prompt, b.per_prompt, atol=1e-6, rtol=0)


def test_ships_on_a_subset(tiny):
    subset = ships(tiny.model, PROMPTS, heads="1.2,3.0", **SMALL)
    full = ships(tiny.model, PROMPTS, **SMALL)
    scored = ~subset.per_prompt[0].isnan()
    assert scored.sum() == 2 and scored[1, 2] and scored[3, 0]
    assert torch.allclose(subset.per_prompt[:, scored], full.per_prompt[:, scored])
    assert [(e["layer"], e["head"]) for e in subset.top()] in ([(1, 2), (3, 0)], [(3, 0), (1, 2)])


def test_ships_aggregates(tiny):
    result = ships(tiny.model, PROMPTS, top_k=3, control=CONTROL, **SMALL)
    assert torch.allclose(result.mean, result.per_prompt.mean(0))
    frequency = result.topk_frequency
    assert frequency.sum().item() == pytest.approx(3.0)  # each prompt names 3 heads
    best = result.per_prompt[0].flatten().argmax()
    assert frequency.flatten()[best] >= 1 / len(PROMPTS)
    assert torch.allclose(result.contrast, result.mean - result.control_per_prompt.mean(0))
    frame = result.to_dataframe()
    assert list(frame.columns[:4]) == ["layer", "head", "score", "topk_frequency"]
    assert frame["score"].is_monotonic_decreasing
    assert {"control", "contrast"} <= set(frame.columns)


def test_each_prompts_own_top_heads(tiny):
    result = ships(tiny.model, PROMPTS, kind="scale", epsilon=1e-3, **SMALL)
    own = result.prompt_heads(3)
    for row, heads in enumerate(own):
        scores = result.per_prompt[row]
        values = [scores[h.layer, h.head].item() for h in heads]
        assert values == sorted(values, reverse=True)
        others = [
            scores[layer, h].item()
            for layer in range(4)
            for h in range(4)
            if Head(layer, h) not in heads
        ]
        assert min(values) >= max(others)
    ablations = result.prompt_ablations(2)
    assert ablations.heads == tuple(tuple(row[:2]) for row in own)
    assert (ablations.kind, ablations.epsilon) == ("scale", 1e-3)
    assert result.prompts == PROMPTS
    subset = ships(tiny.model, PROMPTS, heads="1.2,3.0", **SMALL)
    with pytest.raises(ValueError, match="only 2 heads were scored"):
        subset.prompt_heads(3)
    assert {h for row in subset.prompt_heads(2) for h in row} == {Head(1, 2), Head(3, 0)}


def test_ships_json_round_trip_and_contract(tiny, tmp_path):
    path = tmp_path / "ships.json"
    result = ships(tiny.model, PROMPTS, control=CONTROL, checkpoint=path, **SMALL)
    data = json.loads(path.read_text())
    for key in [
        "model",
        "template",
        "ablation",
        "epsilon",
        "prompts",
        "n_layers",
        "n_heads",
        "per_prompt",
        "mean",
        "top",
        "control_per_prompt",
        "contrast",
        "contrast_top",
    ]:
        assert key in data, key
    assert data["prompts"] == PROMPTS and data["complete"] is True
    assert len(data["per_prompt"]) == len(PROMPTS)
    assert data["top"][0]["score"] == max(e["score"] for e in data["top"])
    loaded = ShipsResult.load(path)
    assert torch.allclose(loaded.per_prompt, result.per_prompt)
    assert loaded.top() == result.top()


class Killed(Exception):
    pass


def _kill_after(monkeypatch, module, name, calls):
    original = getattr(module, name)
    count = {"n": 0}

    def wrapper(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise Killed()
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return count


def test_ships_resumes_after_a_kill(tiny, tmp_path, monkeypatch):
    ships_module = importlib.import_module("safety_heads.method.ships")

    path = tmp_path / "ships.json"
    uninterrupted = ships(tiny.model, PROMPTS, **SMALL)
    with monkeypatch.context() as patch:
        _kill_after(patch, ships_module, "_ships_layer", 2)
        with pytest.raises(Killed):
            ships(tiny.model, PROMPTS, checkpoint=path, **SMALL)
    saved = json.loads(path.read_text())
    assert saved["complete"] is False and sorted(saved["progress"]) == ["layer-0", "layer-1"]
    count = _kill_after(monkeypatch, ships_module, "_ships_layer", 100)
    resumed = ships(tiny.model, PROMPTS, checkpoint=path, **SMALL)
    assert count["n"] == 2  # only layers 2 and 3 were computed again
    assert torch.equal(resumed.per_prompt, uninterrupted.per_prompt)


def test_other_arguments_into_the_same_file_are_refused(tiny, tmp_path):
    path = tmp_path / "ships.json"
    ships(tiny.model, PROMPTS[:2], heads="1.1", checkpoint=path, **SMALL)
    with pytest.raises(CheckpointMismatch, match="epsilon"):
        ships(tiny.model, PROMPTS[:2], heads="1.1", epsilon=1e-3, checkpoint=path, **SMALL)
    with pytest.raises(CheckpointMismatch, match="prompts"):
        ships(tiny.model, PROMPTS[:3], heads="1.1", checkpoint=path, **SMALL)


def test_a_rebuilt_model_of_the_same_name_does_not_resume_old_results(tiny, tmp_path, monkeypatch):
    # Organisms carry the digest of their shipped weights; after a rebuild the old file
    # must be refused, not silently resumed.
    path = tmp_path / "ships.json"
    monkeypatch.setitem(tiny.model.info, "weights_sha256", "a" * 64)
    ships(tiny.model, PROMPTS[:2], heads="1.1", checkpoint=path, **SMALL)
    assert json.loads(path.read_text())["settings"]["model_weights"] == "a" * 16
    monkeypatch.setitem(tiny.model.info, "weights_sha256", "b" * 64)
    with pytest.raises(CheckpointMismatch, match="model_weights"):
        ships(tiny.model, PROMPTS[:2], heads="1.1", checkpoint=path, **SMALL)


@pytest.mark.parametrize("rank", [1, 2])
def test_generalized_ships_equals_the_reference_loop(tiny, rank):
    fast = generalized_ships(tiny.model, PROMPTS, rank=rank, **SMALL)
    slow = generalized_ships_reference(tiny.model, PROMPTS, ALL, rank=rank)
    assert torch.allclose(fast.scores.flatten(), slow, atol=1e-3, rtol=0)
    assert slow.max() > 1.0


def test_sahara_step_with_heads_already_ablated_equals_the_reference(tiny):
    result = sahara(tiny.model, PROMPTS, steps=3, rank=2, kind="scale", **SMALL)
    assert len(result.heads) == 3 and len(set(result.heads)) == 3
    for step in (1, 2):
        fixed = result.heads[:step]
        others = [h for h in ALL if h not in fixed]
        slow = generalized_ships_reference(
            tiny.model, PROMPTS, others, fixed=fixed, rank=2, kind="scale"
        )
        fast = torch.stack([result.step_scores[step][h.layer, h.head] for h in others])
        assert torch.allclose(fast, slow, atol=1e-3, rtol=0)
        assert all(result.step_scores[step][h.layer, h.head].isnan() for h in fixed)
        assert result.heads[step] == others[int(slow.argmax())]


def test_sahara_resumes_after_a_kill(tiny, tmp_path, monkeypatch):
    sahara_module = importlib.import_module("safety_heads.method.sahara")

    path = tmp_path / "sahara.json"
    uninterrupted = sahara(tiny.model, PROMPTS, steps=2, control=CONTROL, **SMALL)
    with monkeypatch.context() as patch:
        _kill_after(patch, sahara_module, "layer_hidden", 11)  # inside step 2
        with pytest.raises(Killed):
            sahara(tiny.model, PROMPTS, steps=2, control=CONTROL, checkpoint=path, **SMALL)
    assert json.loads(path.read_text())["complete"] is False
    resumed = sahara(tiny.model, PROMPTS, steps=2, control=CONTROL, checkpoint=path, **SMALL)
    assert resumed.heads == uninterrupted.heads
    for a, b in zip(
        resumed.step_scores + resumed.control_step_scores,
        uninterrupted.step_scores + uninterrupted.control_step_scores,
        strict=True,
    ):
        assert torch.equal(a.nan_to_num(-1), b.nan_to_num(-1))
    loaded = SaharaResult.load(path)
    assert loaded.heads == resumed.heads and loaded.chosen() == resumed.chosen()


def test_sahara_contrast_selection(tiny):
    result = sahara(tiny.model, PROMPTS, steps=1, control=CONTROL, select="contrast", **SMALL)
    contrast = result.contrast_step_scores[0]
    best = divmod(int(contrast.flatten().nan_to_num(-1e9).argmax()), 4)
    assert result.heads == [Head(*best)]
    with pytest.raises(ValueError, match="needs control"):
        sahara(tiny.model, PROMPTS, steps=1, select="contrast", **SMALL)


def test_bad_scoring_arguments(tiny):
    with pytest.raises(ValueError, match="out of range"):
        ships(tiny.model, PROMPTS, heads="9.0", **SMALL)
    with pytest.raises(ValueError, match="rank=9"):
        sahara(tiny.model, PROMPTS, rank=9, **SMALL)
    with pytest.raises(ValueError, match="steps"):
        sahara(tiny.model, PROMPTS, steps=0, **SMALL)
    with pytest.raises(ValueError, match="kind"):
        ships(tiny.model, PROMPTS, kind="zero", **SMALL)


def test_bundled_model_matches_the_reference(bundled):
    heads = [Head(8, 2), Head(18, 8), Head(29, 0)]
    prompts = PROMPTS[:3]
    fast = ships(bundled, prompts, heads=heads, max_batch_tokens=64, progress=False)
    slow = ships_reference(bundled, prompts, heads)
    picked = torch.stack([fast.per_prompt[:, h.layer, h.head] for h in heads], dim=1)
    assert torch.allclose(picked, slow, atol=1e-4, rtol=0)
    general = generalized_ships(bundled, prompts, heads=heads, rank=2, progress=False)
    slow_angles = generalized_ships_reference(bundled, prompts, heads, rank=2)
    fast_angles = torch.stack([general.scores[h.layer, h.head] for h in heads])
    assert torch.allclose(fast_angles, slow_angles, atol=1e-3, rtol=0)
