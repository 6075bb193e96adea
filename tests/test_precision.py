"""Numerics the method depends on: the output layer in float32 for half-precision models,
Ships in bfloat16 against the same weights in float32, and soft-capped logits (Gemma-2)
unembedded as the model itself caps them."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import HARMFUL

import safety_heads as sh
from safety_heads import ChatModel
from safety_heads.method.forward import next_token_logprobs, unembed_float32

PROMPTS = [*HARMFUL, "Write a poem about the sea", "How do I bake bread?", "Tell me a joke"]


@pytest.fixture(scope="module")
def bf16(tiny, tokenizer):
    hf = copy.deepcopy(tiny.pristine).to(torch.bfloat16)
    return ChatModel.from_hf(hf, tokenizer, name="tiny-bf16")


def test_the_output_layer_runs_in_float32_for_a_bf16_model(bf16):
    hidden = torch.randn(3, bf16.hf_model.config.hidden_size).to(torch.bfloat16)
    weight = bf16.hf_model.get_output_embeddings().weight
    logits = unembed_float32(bf16, hidden)
    assert weight.dtype == torch.bfloat16 and logits.dtype == torch.float32
    assert torch.equal(logits, hidden.float() @ weight.float().T)
    rounded = bf16.hf_model.lm_head(hidden)  # what the model's own output layer gives
    assert rounded.dtype == torch.bfloat16 and not torch.equal(rounded.float(), logits)


def test_bf16_ships_stays_close_to_float32_ships(tiny, bf16):
    exact = sh.ships(tiny.model, PROMPTS, template="chat", progress=False).per_prompt
    half = sh.ships(bf16, PROMPTS, template="chat", progress=False).per_prompt
    relative = (half - exact).abs() / exact.abs().clamp_min(1e-3)
    # bf16 keeps about 3 significant digits in every layer: the scores agree to a few %.
    assert relative.median() < 0.05, relative.median()
    top = exact.mean(0).flatten().argsort(descending=True)[:3]
    assert set(top.tolist()) == set(half.mean(0).flatten().argsort(descending=True)[:3].tolist())


def test_soft_capped_logits_are_capped_as_the_model_caps_them(tokenizer):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        final_logit_softcapping=3.0,
        attn_logit_softcapping=50.0,
        initializer_range=0.5,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        attn_implementation="eager",
    )
    torch.manual_seed(7)
    hf = Gemma2ForCausalLM(config).eval()
    pristine = copy.deepcopy(hf)
    model = ChatModel.from_hf(hf, tokenizer, name="tiny-gemma2")
    batch = model.encode(PROMPTS[:3], template="chat")
    with torch.no_grad():
        logits = pristine(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
        ).logits[:, -1]
    assert logits.abs().max() <= 3.0  # the cap binds: uncapped logits would be larger
    expected = logits.float().log_softmax(-1)
    assert (next_token_logprobs(model, batch) - expected).abs().max() < 1e-4


def test_rows_per_pass_follow_free_memory_and_never_change_scores(tiny, monkeypatch):
    import safety_heads.method.fast_path as scoring

    assert scoring.batch_budget(tiny.model, 50) == scoring.CPU_BATCH_TOKENS  # RAM is ample
    monkeypatch.setattr(scoring, "free_memory", lambda device: 1 << 20)  # 1 MiB free
    tight = scoring.batch_budget(tiny.model, 50)
    assert 50 <= tight < scoring.CPU_BATCH_TOKENS
    auto = sh.ships(tiny.model, PROMPTS, template="chat", progress=False).per_prompt
    fixed = sh.ships(
        tiny.model, PROMPTS, template="chat", max_batch_tokens=100_000, progress=False
    ).per_prompt
    assert torch.allclose(auto, fixed, atol=1e-6)
