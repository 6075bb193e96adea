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


@pytest.mark.parametrize("screen", ["direction", "atp"])
def test_screen_then_confirm_scores_exactly_the_screens_best_heads(tiny, tmp_path, screen):
    import safety_heads as sh
    from safety_heads.method.screens import attribution_scores
    from safety_heads.results import load_result

    model = tiny.model
    screened = sh.ships(
        model,
        HARMFUL,
        control=HARMLESS,
        screen=screen,
        keep=4,
        checkpoint=tmp_path / "s.json",
        progress=False,
    )
    if screen == "direction":
        found = refusal_direction_scores(model, HARMFUL, HARMLESS)
    else:
        found = attribution_scores(model, HARMFUL)
    best = found.top(4)
    direct = sh.ships(model, HARMFUL, control=HARMLESS, heads=best, progress=False)
    assert torch.equal(screened.per_prompt.nan_to_num(-1), direct.per_prompt.nan_to_num(-1))
    assert {(e["layer"], e["head"]) for e in screened.top()} == {(h.layer, h.head) for h in best}
    loaded = load_result(tmp_path / "s.json")
    assert loaded.info["screen"]["name"] == screen and loaded.info["screen"]["keep"] == 4
    assert len(loaded.info["screen"]["map"]) == model.n_layers
    from safety_heads.figures.plots import screen_heatmap
    from safety_heads.figures.report import build_report

    drawn = screen_heatmap(loaded)
    assert torch.allclose(torch.tensor(drawn.data[0].z, dtype=torch.float64), found.scores.double())
    assert f"Screen {screen}" in build_report([tmp_path / "s.json"])
    with pytest.raises(ValueError, match="not screened"):
        screen_heatmap(direct)
    search = sh.sahara(
        model, HARMFUL, steps=2, control=HARMLESS, screen=screen, keep=3, progress=False
    )
    assert sorted(search.info["heads_considered"]) == sorted(str(h) for h in best[:3])
    assert {str(h) for h in search.heads} <= {str(h) for h in best[:3]}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"screen": "direction", "keep": 4}, "pass control prompts"),
        ({"screen": "atp", "keep": 4, "kind": "mean"}, "not kind='mean'"),
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


def _first_token_logprob(model, batch, hooks):
    """The log-probability of each prompt's greedy first answer token of the unhooked model,
    with ``hooks`` on."""
    run = {"attention_mask": batch.attention_mask, "position_ids": batch.position_ids}
    with torch.no_grad():
        base = model.bridge(batch.input_ids, **run)[:, -1].float().log_softmax(-1)
        answer = base.argmax(-1, keepdim=True)
        with model.bridge.hooks(fwd_hooks=hooks):
            changed = model.bridge(batch.input_ids, **run)[:, -1].float().log_softmax(-1)
    return (base.gather(-1, answer) - changed.gather(-1, answer)).squeeze(-1)  # the drop


def _head_hook(head, change):
    def hook(activation, *, hook):
        activation = activation.clone()
        change(activation, head)
        return activation

    return hook


@pytest.mark.parametrize("kind", ["scale", "undifferentiated"])
def test_attribution_is_the_first_order_change_of_a_small_ablation(tiny, kind):
    """Shrink each head's ablation to a step t = 1e-3 towards it (z scaled by 1 - t; the
    pattern moved t of the way to uniform): the true drop of the first answer token's
    log-probability, divided by t, is the attribution estimate (up to O(t))."""
    from safety_heads.method.ablation import AblationMethod
    from safety_heads.method.screens import attribution_scores

    model, step = tiny.model, 1e-3
    batch = model.encode(HARMFUL)
    if kind == "scale":
        estimate = attribution_scores(model, HARMFUL, AblationMethod("scale", 1.0 - step))
        scale = 1.0
        node = "hook_z"

        def change(value, head):
            value[:, :, head] *= 1.0 - step

    else:
        estimate = attribution_scores(model, HARMFUL, AblationMethod("undifferentiated"))
        scale = step
        node = "hook_pattern"

        def change(value, head):
            pattern = value[:, head]
            visible = (pattern > 0).to(pattern.dtype)
            uniform = visible / visible.sum(-1, keepdim=True)
            value[:, head] = pattern + step * (uniform - pattern)

    worst = largest = 0.0
    for layer in range(model.n_layers):
        for head in range(model.n_heads):
            hook = (f"blocks.{layer}.attn.{node}", _head_hook(head, change))
            drop = _first_token_logprob(model, batch, [hook]).double()
            predicted = estimate.per_prompt[:, layer, head] * scale
            assert torch.allclose(drop, predicted, rtol=5e-2, atol=2e-5), (layer, head)
            worst = max(worst, float((drop - predicted).abs().max()))
            largest = max(largest, float(predicted.abs().max()))
    assert largest > 50 * worst  # the estimates are not all within the tolerance of 0


def test_attribution_batched_equals_one_by_one(tiny):
    from safety_heads.method.screens import attribution_scores

    flags = [p.requires_grad for p in tiny.model.bridge.parameters()]
    together = attribution_scores(tiny.model, HARMFUL + HARMLESS, batch_size=6)
    alone = attribution_scores(tiny.model, HARMFUL + HARMLESS, batch_size=1)
    assert torch.allclose(together.per_prompt, alone.per_prompt, atol=1e-5)
    assert together.scores.abs().max() > 1e-3
    assert [p.requires_grad for p in tiny.model.bridge.parameters()] == flags  # restored


def test_a_resumed_screened_run_scores_the_heads_the_first_one_chose(tiny, tmp_path, monkeypatch):
    """The screen's choice is the run's first saved unit: a resumed run reads it back and
    never screens again (a screen need not be bit-for-bit reproducible on every device)."""
    import json

    import safety_heads as sh
    import safety_heads.method.screens as screens

    path = tmp_path / "ships.json"
    first = sh.ships(tiny.model, HARMFUL, screen="atp", keep=5, checkpoint=path, progress=False)
    saved = json.loads(path.read_text())
    assert saved["settings"]["screen"] == {"name": "atp", "keep": 5}  # no map in the settings
    partial = {
        "kind": "ships",
        "settings": saved["settings"],
        "complete": False,
        "progress": {"screen": saved["progress"]["screen"]},  # killed after screening
    }
    path.write_text(json.dumps(partial))

    def no_screening(*args, **kwargs):
        raise AssertionError("the screen ran again")

    monkeypatch.setattr(screens, "attribution_scores", no_screening)
    again = sh.ships(tiny.model, HARMFUL, screen="atp", keep=5, checkpoint=path, progress=False)
    assert again.to_json() == first.to_json()
