"""Rank statistics of head maps: known values, invariances, NaN handling, result maps.

The ``synthetic_*`` builders at the top make small Ships, Sahara and ASR-curve results with
known numbers; test_plots.py and test_report.py reuse them.
"""

import json
import math

import pytest
import torch

from safety_heads.evaluation.asr import AsrCurve, AsrResult, success_rate
from safety_heads.evaluation.generation import Response
from safety_heads.evaluation.judges import Verdict
from safety_heads.figures.compare import (
    MapComparison,
    average_ranks,
    compare_maps,
    compare_results,
    read_scores,
    score_map,
    spearman,
    topk_jaccard,
)
from safety_heads.method.ablation import Ablation
from safety_heads.method.heads import Head
from safety_heads.method.sahara import SaharaResult
from safety_heads.method.ships import ShipsResult

N_LAYERS, N_HEADS = 4, 3


def synthetic_ships(seed: int = 0, control: bool = True) -> ShipsResult:
    generator = torch.Generator().manual_seed(seed)
    per_prompt = torch.rand(5, N_LAYERS, N_HEADS, generator=generator, dtype=torch.float64)
    control_map = per_prompt[:3] * 0.5 if control else None
    info = {
        "model": "tiny-test",
        "template": "chat",
        "ablation": "undifferentiated",
        "epsilon": 1e-5,
        "via": "query",
        "prompts": [f"harmful {i}" for i in range(5)],
    }
    return ShipsResult(info, per_prompt, control_map, top_k=2)


def synthetic_sahara() -> SaharaResult:
    step1 = torch.arange(N_LAYERS * N_HEADS, dtype=torch.float64).reshape(N_LAYERS, N_HEADS)
    step2 = step1.flip(0).clone()
    step1_best = Head(3, 2)  # the largest value of step1
    step2[3, 2] = math.nan  # already chosen at step 2
    step2_best = Head(0, 2)  # step1 flipped: the largest remaining value is at (0, 2)
    info = {
        "model": "tiny-test",
        "template": "chat",
        "ablation": "undifferentiated",
        "epsilon": 1e-5,
        "via": "query",
        "prompts": ["p1", "p2", "p3"],
    }
    return SaharaResult(info, [step1_best, step2_best], [step1, step2])


def synthetic_curve(asr_counts=(0, 2, 3), n: int = 4, label: str = "") -> dict:
    """An ASR-curve result file's JSON, built with the package's own classes."""
    order = ("3.2", "0.2")
    points = []
    for heads_ablated, count in enumerate(asr_counts):
        responses = tuple(
            Response(
                f"prompt {i}{label}",
                f"answer <b>{i}</b> with {heads_ablated} heads",
                Verdict(
                    i < count,
                    "complied" if i < count else "refusal phrase",
                    None if i < count else True,
                ),
            )
            for i in range(n)
        )
        ablation = Ablation.of(order[:heads_ablated]) if heads_ablated else None
        rate = success_rate([r.attack_success for r in responses])
        points.append(AsrResult(ablation, rate, responses))
    curve = AsrCurve(Ablation.of(order), tuple(points))
    settings = {
        "model": "tiny-test",
        "prompts": {"n": n, "sha256": "0" * 64},
        "generation": {"max_new_tokens": 8},
        "judge": "keywords",
    }
    return {
        "kind": "asr-curve",
        "settings": settings,
        "complete": True,
        **curve.to_json(),
        "progress": {},
    }


# ----------------------------------------------------------------------------- ranks


def test_average_ranks_share_ties():
    ranks = average_ranks(torch.tensor([10.0, 20.0, 20.0, 5.0]))
    assert ranks.tolist() == [2.0, 3.5, 3.5, 1.0]


def test_spearman_identical_is_one_and_reversed_is_minus_one():
    scores = torch.randn(N_LAYERS, N_HEADS, dtype=torch.float64)
    assert spearman(scores, scores) == pytest.approx(1.0)
    assert spearman(scores, -scores) == pytest.approx(-1.0)


def test_spearman_known_value_with_ties():
    # ranks of b: 1, 2, 3.5, 5, 3.5 -> rho = 8 / sqrt(10 * 9.5)
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]], dtype=torch.float64)
    b = torch.tensor([[5.0, 6.0, 7.0, 8.0, 7.0]], dtype=torch.float64)
    assert spearman(a, b) == pytest.approx(8 / math.sqrt(95))


def test_spearman_depends_on_ranks_only():
    a = torch.randn(N_LAYERS, N_HEADS, dtype=torch.float64)
    b = torch.randn(N_LAYERS, N_HEADS, dtype=torch.float64)
    assert spearman(a.exp(), b**3) == pytest.approx(spearman(a, b))


def test_spearman_skips_heads_missing_in_either_map():
    a = torch.randn(N_LAYERS, N_HEADS, dtype=torch.float64)
    b = torch.randn(N_LAYERS, N_HEADS, dtype=torch.float64)
    a_gaps, b_gaps = a.clone(), b.clone()
    a_gaps[0, 0] = math.nan
    b_gaps[2, 1] = math.nan
    keep = torch.ones_like(a, dtype=torch.bool)
    keep[0, 0] = keep[2, 1] = False
    expected = spearman(a[keep].reshape(1, -1), b[keep].reshape(1, -1))
    assert spearman(a_gaps, b_gaps) == pytest.approx(expected)


def test_spearman_of_a_constant_map_is_nan():
    a = torch.ones(N_LAYERS, N_HEADS, dtype=torch.float64)
    assert math.isnan(spearman(a, torch.randn(N_LAYERS, N_HEADS, dtype=torch.float64)))


# ----------------------------------------------------------------------------- top-k overlap


def test_topk_jaccard_of_known_sets():
    a = torch.tensor([[9.0, 8.0, 7.0, 1.0, 0.0]])  # top 3: heads 0, 1, 2
    b = torch.tensor([[0.0, 8.0, 9.0, 7.0, 1.0]])  # top 3: heads 1, 2, 3
    assert topk_jaccard(a, b, 3) == pytest.approx(2 / 4)
    assert topk_jaccard(a, a, 3) == 1.0
    assert topk_jaccard(a, -a, 2) == 0.0  # {0, 1} vs {3, 4}


def test_topk_jaccard_ignores_heads_not_scored_in_both():
    a = torch.tensor([[9.0, 8.0, 7.0, 1.0]])
    b = torch.tensor([[math.nan, 8.0, 7.0, 9.0]])
    # head 0 is unscored in b, so it is left out of a's top 2 as well: {1, 2} vs {3, 1}
    assert topk_jaccard(a, b, 2) == pytest.approx(1 / 3)


@pytest.mark.parametrize("k", [0, -1, True])
def test_topk_jaccard_rejects_bad_k(k):
    a = torch.rand(2, 2)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        topk_jaccard(a, a, k)


def test_map_comparison_numbers_shared_heads_and_json_round_trip():
    a = torch.tensor([[9.0, 8.0, 7.0], [1.0, 0.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 8.0, 9.0], [7.0, 1.0, 2.0]], dtype=torch.float64)
    comparison = compare_maps(a, b, labels=("chat", "base"), top_k=3)
    assert comparison.top("a") == [Head(0, 0), Head(0, 1), Head(0, 2)]
    assert comparison.top("b") == [Head(0, 2), Head(0, 1), Head(1, 0)]
    assert comparison.shared == [Head(0, 1), Head(0, 2)]
    assert comparison.jaccard == pytest.approx(2 / 4)
    assert torch.equal(comparison.difference, a - b)
    data = json.loads(json.dumps(comparison.to_json()))
    again = MapComparison.from_json(data)
    assert torch.equal(again.a, a) and torch.equal(again.b, b)
    assert (again.label_a, again.label_b, again.top_k) == ("chat", "base", 3)
    assert data["shared"] == ["0.1", "0.2"]


def test_map_comparison_refuses_equal_labels():
    a = torch.rand(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="different labels"):
        compare_maps(a, a, labels=("x", "x"))


# ----------------------------------------------------------------------------- result maps


def test_score_map_reads_ships_maps():
    result = synthetic_ships()
    assert torch.equal(score_map(result), result.mean)
    assert torch.equal(score_map(result, "frequency"), result.topk_frequency)
    assert torch.equal(score_map(result, "contrast"), result.contrast)
    with pytest.raises(ValueError, match="control prompts"):
        score_map(synthetic_ships(control=False), "contrast")
    with pytest.raises(ValueError, match="has the maps"):
        score_map(result, "median")


def test_score_map_reads_sahara_steps():
    result = synthetic_sahara()
    assert torch.equal(score_map(result), result.step_scores[0])
    assert torch.allclose(score_map(result, "step-2"), result.step_scores[1], equal_nan=True)
    for bad in ("step-3", "step-0", "steps-1", "contrast-1"):
        with pytest.raises(ValueError):
            score_map(result, bad)


def test_read_scores_and_compare_results(tmp_path):
    ships_result, sahara_result = synthetic_ships(), synthetic_sahara()
    ships_result.save(tmp_path / "ships.json")
    sahara_result.save(tmp_path / "sahara.json")
    loaded = read_scores(tmp_path / "ships.json")
    assert isinstance(loaded, ShipsResult)
    assert torch.allclose(loaded.mean, ships_result.mean)
    comparison = compare_results(
        loaded, read_scores(tmp_path / "sahara.json"), labels=("ships", "sahara"), top_k=2
    )
    assert comparison.spearman == pytest.approx(spearman(ships_result.mean, sahara_result.scores))
    assert comparison.info["sahara"]["map"] == "step-1"


def test_read_scores_refuses_checkpoints_and_other_files(tmp_path):
    unfinished = tmp_path / "ships.json"
    unfinished.write_text(json.dumps({"kind": "ships", "complete": False, "progress": {}}))
    with pytest.raises(ValueError, match="unfinished"):
        read_scores(unfinished)
    other = tmp_path / "asr.json"
    other.write_text(json.dumps(synthetic_curve()))
    with pytest.raises(ValueError, match="not a Ships or Sahara result"):
        read_scores(other)
