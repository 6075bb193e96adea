"""Activation patching per head: the layer-suffix path equals one full pass per (head,
prompt); patching a head with its own output changes nothing; the patched positions are
the closing tokens every prompt ends with."""

from __future__ import annotations

import pytest
import torch
from conftest import HARMFUL

from safety_heads.method.heads import Head
from safety_heads.method.patching import common_ending, patching_scores
from safety_heads.method.per_head_loop import patching_reference

HARMLESS = ["Write a poem about the sea", "How do I bake bread for a family of four?"]


def test_suffix_path_equals_one_pass_per_head(tiny):
    model = tiny.model
    heads = [Head(layer, head) for layer in range(model.n_layers) for head in range(model.n_heads)]
    fast = patching_scores(model, HARMFUL, HARMLESS, max_batch_tokens=64)  # several passes
    slow = patching_reference(model, HARMFUL, HARMLESS, heads)
    flat = fast.per_prompt.reshape(len(HARMFUL), -1)
    assert torch.allclose(flat, slow, atol=1e-5, rtol=1e-4)
    assert fast.scores.max() > 1e-3  # the patches do change something


def test_patching_a_head_with_its_own_output_changes_nothing(tiny):
    same = patching_scores(tiny.model, HARMFUL, HARMFUL)
    assert same.per_prompt.abs().max() < 1e-6


def test_patched_positions_are_the_common_closing_tokens(tiny):
    model = tiny.model
    batch = model.encode(HARMFUL + HARMLESS)
    n = common_ending(batch)
    closing = model.format("x").split("x")[-1]  # the template after the request
    expected = len(model.tokenizer(closing, add_special_tokens=False)["input_ids"])
    assert 1 <= n and abs(n - expected) <= 1  # a token may merge across the boundary
    assert (batch.input_ids[:, -n:] == batch.input_ids[:1, -n:]).all()
    assert patching_scores(model, HARMFUL, HARMLESS).positions == n


def test_prompts_without_a_shared_ending_are_refused(tiny):
    with pytest.raises(ValueError, match="share no closing tokens"):
        patching_scores(tiny.model, ["a b c d"], ["e f g h"], template="direct")
    with pytest.raises(ValueError, match="harmful and harmless"):
        patching_scores(tiny.model, HARMFUL, [])
