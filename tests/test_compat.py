"""The KV-cache shim: under the installed transformers (whatever its version), greedy
generation through the bridge equals Hugging Face's own ``generate`` on a left-padded batch,
with no ablation and under each ablation kind (weights edited on the Hugging Face side), and
the shim hands the bridge the cache whichever name transformers passes it under."""

from __future__ import annotations

import pytest
import torch
from conftest import HARMFUL

from safety_heads import Ablation, ablate_weights
from safety_heads.method.forward import _cut_at_eos, generate
from safety_heads.models.compat import patch_kv_cache_argument, transformers_version

HEADS = ["0.1", "2.3"]


def hf_greedy(hf_model, batch, tokenizer, new_tokens):
    with torch.no_grad():
        out = hf_model.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            max_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    rows = out[:, batch.input_ids.shape[1] :].tolist()
    return [_cut_at_eos(row, tokenizer.eos_token_id) for row in rows]


@pytest.mark.parametrize("kind", [None, "undifferentiated", "scale", "mean"])
def test_bridge_generation_equals_hugging_face(tiny, kind):
    batch = tiny.model.encode(HARMFUL, template="chat")
    assert (batch.attention_mask == 0).any(), "the batch must be left-padded"
    ablation = Ablation.of(HEADS, kind) if kind else None
    reference = ablate_weights(tiny.pristine, ablation) if ablation else tiny.pristine
    expected = hf_greedy(reference, batch, tiny.model.tokenizer, 12)
    assert list(generate(tiny.model, batch, ablation, max_new_tokens=12).tokens) == expected


class _RecordingCache:
    def __init__(self):
        self.calls = []

    def update(self, k, v, layer_idx):
        self.calls.append(layer_idx)
        return torch.cat([k, k]), torch.cat([v, v])


@pytest.mark.parametrize("name", ["cache", "past_key_values", "layer_past"])
def test_the_bridge_reads_the_cache_under_every_name(tiny, name):
    patch_kv_cache_argument()
    attention = tiny.model.bridge.blocks[1].attn
    k, v = torch.ones(1, 2, 3, 4), torch.zeros(1, 2, 3, 4)
    cache = _RecordingCache()
    new_k, new_v = attention._update_kv_cache(k, v, **{name: cache})
    assert cache.calls == [1] and new_k.shape[0] == 2 and new_v.shape[0] == 2
    assert attention._update_kv_cache(k, v) == (k, v)


def test_the_shim_is_applied_once_and_says_when_it_is_needed():
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    needed = patch_kv_cache_argument()
    first = AttentionBridge._update_kv_cache
    assert patch_kv_cache_argument() == needed and AttentionBridge._update_kv_cache is first
    assert needed == (transformers_version()[:2] >= (5, 24))
