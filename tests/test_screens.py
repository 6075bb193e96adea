"""The refusal-direction screen: each head's output, as computed from ``z`` and its slice of
the output projection, sums with the projection's bias to the attention block's output;
the direction is the unit difference of means; scores are projections on it."""

from __future__ import annotations

import pytest
import torch
from conftest import HARMFUL

from safety_heads.screens import head_outputs, refusal_direction_scores

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
