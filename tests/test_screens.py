"""The refusal-direction screen: each head's output, as computed from ``z`` and its slice of
the output projection, sums with the projection's bias to the attention block's output;
the direction is the unit difference of means; scores are projections on it."""

from __future__ import annotations

import pytest
import torch
from conftest import HARMFUL

from safety_heads.method.screens import head_outputs, refusal_direction_scores

HARMLESS = ["Write a poem about the sea", "How do I bake bread?", "Tell me a joke"]


def test_head_outputs_sum_to_the_attention_output(tiny):
    model = tiny.model
    outputs, final = head_outputs(model, HARMFUL, batch_size=2)
    assert outputs.shape == (3, model.n_layers, model.n_heads, model.hf_model.config.hidden_size)
    batch = model.encode(HARMFUL)
    kept = {}

    def keeper(name):
        def keep(activation, *, hook):
            kept[name] = activation[:, -1].float()

        return keep

    names = [f"blocks.{layer}.attn.hook_out" for layer in range(model.n_layers)]
    names.append(f"blocks.{model.n_layers - 1}.hook_resid_post")
    hooks = [(name, keeper(name)) for name in names]
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=hooks):
        model.bridge(
            batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
        )
    for layer in range(model.n_layers):
        assert torch.allclose(
            outputs[:, layer].sum(1), kept[f"blocks.{layer}.attn.hook_out"], atol=1e-4
        )
    assert torch.allclose(final, kept[f"blocks.{model.n_layers - 1}.hook_resid_post"])


def test_scores_are_projections_on_the_unit_difference_of_means(tiny):
    model = tiny.model
    result = refusal_direction_scores(model, HARMFUL, HARMLESS, batch_size=2)
    bad, bad_final = head_outputs(model, HARMFUL)
    good, good_final = head_outputs(model, HARMLESS)
    difference = bad_final.mean(0) - good_final.mean(0)
    assert torch.allclose(result.direction, difference / difference.norm(), atol=1e-5)
    assert result.norm == pytest.approx(float(difference.norm()), rel=1e-4)
    assert torch.allclose(result.scores, (bad @ result.direction).mean(0), atol=1e-5)
    assert torch.allclose(
        result.contrast, result.scores - (good @ result.direction).mean(0), atol=1e-5
    )
    best = result.top(1)[0]
    assert result.scores[best.layer, best.head] == result.scores.max()
    with pytest.raises(ValueError, match="no refusal direction"):
        refusal_direction_scores(model, HARMFUL, HARMFUL)


def test_screen_then_confirm_scores_exactly_the_screens_best_heads(tiny, tmp_path):
    import safety_heads as sh
    from safety_heads.results import load_result

    model = tiny.model
    screened = sh.ships(
        model,
        HARMFUL,
        control=HARMLESS,
        screen="direction",
        keep=4,
        checkpoint=tmp_path / "s.json",
        progress=False,
    )
    best = refusal_direction_scores(model, HARMFUL, HARMLESS).top(4)
    direct = sh.ships(model, HARMFUL, control=HARMLESS, heads=best, progress=False)
    assert torch.equal(screened.per_prompt.nan_to_num(-1), direct.per_prompt.nan_to_num(-1))
    assert {(e["layer"], e["head"]) for e in screened.top()} == {(h.layer, h.head) for h in best}
    loaded = load_result(tmp_path / "s.json")
    assert loaded.info["screen"]["name"] == "direction" and loaded.info["screen"]["keep"] == 4
    assert len(loaded.info["screen"]["map"]) == model.n_layers
    search = sh.sahara(
        model, HARMFUL, steps=2, control=HARMLESS, screen="direction", keep=3, progress=False
    )
    assert sorted(search.info["heads_considered"]) == sorted(str(h) for h in best[:3])
    assert {str(h) for h in search.heads} <= {str(h) for h in best[:3]}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"screen": "direction", "keep": 4}, "pass control prompts"),
        ({"screen": "direction", "keep": 0, "control": HARMLESS}, "keep=0"),
        ({"screen": "gradient", "keep": 4, "control": HARMLESS}, "is not one of"),
        ({"screen": "direction", "keep": 4, "control": HARMLESS, "heads": ["1.1"]}, "not both"),
    ],
)
def test_bad_screens_are_refused(tiny, options, message):
    import safety_heads as sh

    with pytest.raises(ValueError, match=message):
        sh.ships(tiny.model, HARMFUL, progress=False, **options)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--keep", "3"], "--keep goes with --screen"),
        (["--screen", "direction"], "--screen needs --keep"),
        (["--screen", "direction", "--keep", "3"], "add --control"),
    ],
)
def test_the_screen_options_are_checked_before_the_model_loads(tmp_path, capsys, extra, message):
    from safety_heads.cli import main

    out = tmp_path / "s.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["ships", "--model", "no-such/model", "--limit", "2", "--out", str(out), *extra])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()
