"""Ablations are what they claim to be: hook routes agree with each other and with weight
surgery on a pristine copy, batches agree with single prompts, hooks never outlive their
context, and generation under an ablation equals generation from the edited weights."""

from __future__ import annotations

import pytest
import torch
from conftest import HARMFUL, hf_logprobs

from safety_heads import Ablation, ablate_weights, ablated, touched_parameters
from safety_heads.method.forward import _cut_at_eos, generate, next_token_logprobs
from safety_heads.method.heads import Head

TOL = 1e-4


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


HEADS = ["1.2", "3.0", "3.3"]


@pytest.fixture(scope="module")
def batch(tiny):
    return tiny.model.encode(HARMFUL, template="chat")


def test_hooked_model_matches_pristine_copy(tiny, batch):
    assert max_diff(next_token_logprobs(tiny.model, batch), hf_logprobs(tiny.pristine, batch)) < TOL


@pytest.mark.parametrize("kind", ["undifferentiated", "scale", "mean"])
def test_ablation_changes_the_output(tiny, batch, kind):
    base = next_token_logprobs(tiny.model, batch)
    changed = next_token_logprobs(tiny.model, batch, Ablation.of(HEADS, kind))
    assert max_diff(base, changed) > 1e-2


def test_uniform_attention_query_equals_pattern_equals_surgery(tiny, batch):
    by_query = next_token_logprobs(tiny.model, batch, Ablation.of(HEADS, via="query"))
    by_pattern = next_token_logprobs(tiny.model, batch, Ablation.of(HEADS, via="pattern"))
    edited = ablate_weights(tiny.pristine, Ablation.of(HEADS))
    by_weights = hf_logprobs(edited, batch)
    assert max_diff(by_query, by_pattern) < TOL
    assert max_diff(by_query, by_weights) < TOL


def test_uniform_pattern_is_uniform_over_visible_keys(tiny, batch):
    seen = {}

    def keep(pattern, *, hook):
        seen["pattern"] = pattern.detach().clone()
        return pattern

    ablation = Ablation.of(["2.1"], via="pattern")
    with (
        ablated(tiny.model, ablation),
        tiny.model.bridge.hooks([("blocks.2.attn.hook_pattern", keep)]),
    ):
        tiny.model.bridge(batch.input_ids, attention_mask=batch.attention_mask)
    pattern = seen["pattern"][:, 1]  # [batch, q_pos, k_pos] of head 1
    mask = batch.attention_mask.bool()
    for row in range(len(batch)):
        last = pattern[row, -1]
        visible = mask[row]
        assert torch.allclose(last[visible], torch.full_like(last[visible], 1 / visible.sum()))
        assert torch.all(last[~visible] == 0)


@pytest.mark.parametrize("kind", ["scale", "mean"])
def test_hook_ablation_equals_weight_surgery(tiny, batch, kind):
    ablation = Ablation.of(HEADS, kind)
    hooked = next_token_logprobs(tiny.model, batch, ablation)
    assert max_diff(hooked, hf_logprobs(ablate_weights(tiny.pristine, ablation), batch)) < TOL


def test_surgery_leaves_the_original_untouched(tiny):
    before = {k: v.clone() for k, v in tiny.pristine.state_dict().items()}
    ablate_weights(tiny.pristine, Ablation.of(HEADS, "mean"))
    after = tiny.pristine.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_touched_parameters_counts_one_query_slice(tiny):
    count, share = touched_parameters(tiny.pristine, Ablation.of(["1.2"]))
    assert count == 16 * 64  # d_head x d_model
    assert share == pytest.approx(count / sum(p.numel() for p in tiny.pristine.parameters()))


@pytest.mark.parametrize("kind", ["undifferentiated", "scale"])
def test_left_padded_batch_equals_prompts_alone(tiny, batch, kind):
    ablation = Ablation.of(HEADS, kind)
    together = next_token_logprobs(tiny.model, batch, ablation)
    assert batch.attention_mask.min() == 0, "the batch should contain padding"
    for row, query in enumerate(HARMFUL):
        alone = next_token_logprobs(tiny.model, tiny.model.encode([query]), ablation)
        assert max_diff(together[row : row + 1], alone) < TOL


def _hook_count(model) -> int:
    return sum(len(point._forward_hooks) for point in model.bridge.hook_dict.values())


def test_hooks_are_removed_after_the_context(tiny, batch):
    base = next_token_logprobs(tiny.model, batch)
    with ablated(tiny.model, Ablation.of(HEADS)):
        assert _hook_count(tiny.model) > 0
    assert _hook_count(tiny.model) == 0
    assert torch.equal(next_token_logprobs(tiny.model, batch), base)


def test_hooks_are_removed_after_an_exception(tiny, batch):
    base = next_token_logprobs(tiny.model, batch)
    with pytest.raises(RuntimeError, match="boom"):
        with ablated(tiny.model, Ablation.of(HEADS, "scale")):
            raise RuntimeError("boom")
    assert _hook_count(tiny.model) == 0
    assert torch.equal(next_token_logprobs(tiny.model, batch), base)


def test_ablation_never_compounds(tiny, batch):
    ablation = Ablation.of(HEADS, "scale", epsilon=0.5)
    first = next_token_logprobs(tiny.model, batch, ablation)
    second = next_token_logprobs(tiny.model, batch, ablation)
    assert torch.equal(first, second)


def test_ablating_a_layer_leaves_earlier_layers_alone(tiny, batch):
    def residual(ablation):
        with ablated(tiny.model, ablation):
            _, cache = tiny.model.bridge.run_with_cache(
                batch.input_ids,
                attention_mask=batch.attention_mask,
                names_filter=lambda n: n.endswith("hook_resid_pre"),
            )
        return cache

    base, ablated_cache = residual(None), residual(Ablation.of(["2.1"]))
    assert torch.equal(base["blocks.2.hook_resid_pre"], ablated_cache["blocks.2.hook_resid_pre"])
    assert not torch.equal(
        base["blocks.3.hook_resid_pre"], ablated_cache["blocks.3.hook_resid_pre"]
    )


@pytest.mark.parametrize("kind", ["undifferentiated", "scale", "mean"])
def test_greedy_generation_under_ablation_equals_edited_weights(tiny, batch, kind):
    ablation = Ablation.of(HEADS, kind)
    hooked = generate(tiny.model, batch, ablation, max_new_tokens=8)
    edited = ablate_weights(tiny.pristine, ablation)
    with torch.no_grad():
        out = edited.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            max_new_tokens=8,
            do_sample=False,
            pad_token_id=tiny.model.tokenizer.pad_token_id,
            eos_token_id=tiny.model.tokenizer.eos_token_id,
        )
    eos = tiny.model.tokenizer.eos_token_id
    expected = [_cut_at_eos(row, eos) for row in out[:, batch.input_ids.shape[1] :].tolist()]
    assert list(hooked.tokens) == expected
    unablated = generate(tiny.model, batch, None, max_new_tokens=8)
    assert hooked.tokens != unablated.tokens


def test_batched_generation_equals_one_by_one(tiny, batch):
    ablation = Ablation.of(HEADS)
    together = generate(tiny.model, batch, ablation, max_new_tokens=6)
    for row, query in enumerate(HARMFUL):
        alone = generate(tiny.model, tiny.model.encode([query]), ablation, max_new_tokens=6)
        assert alone.tokens[0] == together.tokens[row]


def test_seeded_sampling_is_reproducible(tiny, batch):
    first = generate(tiny.model, batch, None, max_new_tokens=6, do_sample=True, top_k=5, seed=3)
    again = generate(tiny.model, batch, None, max_new_tokens=6, do_sample=True, top_k=5, seed=3)
    assert first == again


def test_out_of_range_heads_are_refused(tiny):
    with pytest.raises(ValueError, match="out of range"):
        with ablated(tiny.model, Ablation.of(["4.0"])):
            pass
    with pytest.raises(ValueError, match="heads 0..3"):
        with ablated(tiny.model, Ablation.of([Head(0, 4)])):
            pass


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": -1e-5}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
        ({"epsilon": float("inf")}, "epsilon"),
        ({"kind": "zero"}, "undifferentiated"),
        ({"via": "keys"}, "via"),
    ],
)
def test_bad_ablation_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Ablation.of(["1.1"], **kwargs)


def test_duplicate_heads_are_refused():
    with pytest.raises(ValueError, match="more than once"):
        Ablation.of("1.1, L1H1")
