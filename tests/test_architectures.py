"""Every supported architecture, as a tiny random model built from its config (no download):
the bridge reproduces Hugging Face's log-probabilities, Undifferentiated Attention by query
scaling equals the exact uniform pattern, Scaling Contribution equals its weight edit, an
ablation with no exact weight edit is refused, and the Ships fast path equals the
one-pass-per-head reference loop."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import HARMFUL, hf_logprobs

import safety_heads as sh
from safety_heads import Ablation, ChatModel, ablate_weights
from safety_heads.method.ablation import query_norm
from safety_heads.method.forward import next_token_logprobs
from safety_heads.method.heads import Head
from safety_heads.method.per_head_loop import ships_reference

TOL = 1e-4
COMMON = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=256,
    initializer_range=0.15,
    tie_word_embeddings=False,
)


def _config(family: str, tokenizer):
    import transformers

    ids = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    extra = {
        "Mistral": {"sliding_window": None},
        "Qwen2": {},
        "Qwen3": {},
        "Gemma2": {
            "final_logit_softcapping": 30.0,
            "attn_logit_softcapping": 50.0,
            "query_pre_attn_scalar": 16,
            "sliding_window": 4096,
        },
        "Gemma3Text": {"query_pre_attn_scalar": 16, "sliding_window": 4096},
        "Phi3": {"head_dim": None, "num_key_value_heads": 4},
        "Olmo2": {},
    }[family]
    config_class = getattr(transformers, f"{family}Config")
    model_class = getattr(transformers, f"{family.removesuffix('Text')}ForCausalLM")
    settings = {**COMMON, **ids, **extra}
    settings = {k: v for k, v in settings.items() if v is not None or k == "sliding_window"}
    config = config_class(**settings, attn_implementation="eager")
    config.architectures = [model_class.__name__]  # as a checkpoint's config names it
    return model_class, config


FAMILIES = ["Mistral", "Qwen2", "Qwen3", "Gemma2", "Gemma3Text", "Phi3", "Olmo2"]


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tokenizer):
    model_class, config = _config(request.param, tokenizer)
    torch.manual_seed(11)
    hf = model_class(config).eval()
    pristine = copy.deepcopy(hf)
    model = ChatModel.from_hf(hf, tokenizer, name=f"tiny-{request.param.lower()}")
    return request.param, model, pristine


@pytest.fixture(scope="module")
def batch(family):
    return family[1].encode(HARMFUL, template="chat")


def test_the_bridge_reproduces_hugging_face(family, batch):
    _, model, pristine = family
    assert (next_token_logprobs(model, batch) - hf_logprobs(pristine, batch)).abs().max() < TOL


def test_uniform_attention_by_query_equals_the_exact_pattern(family, batch):
    _, model, _ = family
    base = next_token_logprobs(model, batch)
    by_query = next_token_logprobs(model, batch, Ablation.of(["1.2"], via="query"))
    by_pattern = next_token_logprobs(model, batch, Ablation.of(["1.2"], via="pattern"))
    assert (by_query - by_pattern).abs().max() < TOL
    assert (by_query - base).abs().max() > 100 * TOL  # the ablation does something


@pytest.mark.parametrize("kind", ["scale", "undifferentiated", "mean"])
def test_weight_edits_equal_hooks_or_are_refused(family, batch, kind):
    _, model, pristine = family
    ablation = Ablation.of(["1.2", "2.0"], kind)
    norm = query_norm(pristine)
    if kind == "undifferentiated" and norm or kind == "mean" and norm == "across_heads":
        with pytest.raises(ValueError, match="no exact weight edit"):
            ablate_weights(pristine, ablation)
        return
    hooked = next_token_logprobs(model, batch, ablation)
    assert (hooked - hf_logprobs(ablate_weights(pristine, ablation), batch)).abs().max() < TOL


@pytest.mark.parametrize("kind", ["undifferentiated", "scale"])
def test_the_fast_path_equals_the_reference_loop(family, kind):
    _, model, _ = family
    prompts = HARMFUL[:2]
    heads = [Head(layer, head) for layer in range(model.n_layers) for head in (0, 3)]
    fast = sh.ships(model, prompts, template="chat", kind=kind, progress=False).per_prompt
    slow = ships_reference(model, prompts, heads, template="chat", kind=kind)
    chosen = fast[:, [h.layer for h in heads], [h.head for h in heads]]
    assert (chosen - slow).abs().max() < TOL


def test_an_untested_architecture_loads_with_a_warning(tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=4)
    config.architectures = ["GPT2LMHeadModel"]
    with pytest.warns(RuntimeWarning, match="a GPT2LMHeadModel, an architecture"):
        ChatModel.from_hf(GPT2LMHeadModel(config).eval(), tokenizer, name="tiny-gpt2")


def test_tested_architectures_load_without_a_warning(family):
    import warnings

    name, _, pristine = family
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        sh.models.chat_model.warn_if_untested(pristine, name)
