"""The suffix fast path with a shared opening: the opening is found, and running it once per
ablation gives the same hidden states and scores as running every prompt in full."""

import importlib

import pytest
import torch
from conftest import HARMFUL

from safety_heads.method.ablation import Ablation, AblationMethod
from safety_heads.method.fast_path import (
    ScoreSettings,
    build_groups,
    shared_opening_length,
    suffix_hidden,
)
from safety_heads.method.heads import Head
from safety_heads.method.per_head_loop import last_hidden_reference, ships_reference
from safety_heads.method.ships import ships
from safety_heads.models.prompts import encode_prompts, format_prompt, tokenize_prompt

suffix_module = importlib.import_module("safety_heads.method.fast_path")

ALL = [Head(layer, head) for layer in range(4) for head in range(4)]
# Different lengths (left padding inside a group) behind a long common opening of their own.
LONG_OPENING = [
    "Answer carefully, in detail and step by step, leaving nothing out. " + query
    for query in [*HARMFUL, "Tell me how to hotwire a car", "hi"]
]
# Nothing in common from the first token on.
NO_OPENING = ["Write a poem about the sea", "Explain how to pick a lock", "hi there"]
ABLATIONS = [
    ("undifferentiated", "query"),
    ("undifferentiated", "pattern"),
    ("scale", "query"),
    ("mean", "query"),
]


def test_the_opening_of_chat_prompts_is_the_template_before_the_query(tokenizer):
    queries = ["Write a poem", "Explain how to pick a lock", "hi"]
    texts = [format_prompt(q, tokenizer=tokenizer) for q in queries]
    marker = "<|im_start|>user\n"
    template_opening = texts[0][: texts[0].index(marker) + len(marker)]
    shared = shared_opening_length(encode_prompts(tokenizer, texts))
    assert shared == len(tokenize_prompt(tokenizer, template_opening)) == 24
    shortest = min(len(tokenize_prompt(tokenizer, t)) for t in texts)
    assert shared > shortest / 2  # most of every prompt


def test_the_opening_leaves_every_prompt_a_token_of_its_own(tokenizer):
    def opening(texts: list[str]) -> int:
        return shared_opening_length(encode_prompts(tokenizer, texts))

    short, long = "one two three", "one two three four five six"
    n_short = len(tokenize_prompt(tokenizer, short))
    assert opening([short, long]) == n_short - 1  # left padding: aligned on each start
    assert opening([long, long]) == len(tokenize_prompt(tokenizer, long)) - 1
    assert opening([long]) == len(tokenize_prompt(tokenizer, long)) - 1
    assert opening(NO_OPENING) == 0
    assert opening(["one two three", "one two four"]) == 2


def test_groups_record_their_opening(tiny):
    texts = [tiny.model.format(p, "direct") for p in LONG_OPENING]
    none = torch.zeros(4, 4, dtype=torch.bool)
    (group,) = build_groups(tiny.model, texts, none, ScoreSettings())
    assert group.shared == shared_opening_length(group.batch) >= 12
    (group,) = build_groups(tiny.model, NO_OPENING, none, ScoreSettings())
    assert group.shared == 0


def _rows_and_masks(fixed: torch.Tensor, layer: int, n_prompts: int) -> tuple[torch.Tensor, ...]:
    """Every open head of ``layer`` on every prompt, head-major, on top of ``fixed``."""
    heads = [h for h in range(fixed.shape[1]) if not fixed[layer, h]]
    rows = torch.arange(n_prompts).repeat(len(heads))
    mask = fixed.expand(len(rows), -1, -1).clone()
    mask[torch.arange(len(rows)), layer, torch.tensor(heads).repeat_interleave(n_prompts)] = True
    return rows, mask, heads


@pytest.mark.parametrize("kind, via", ABLATIONS)
def test_shared_opening_equals_full_passes(tiny, kind, via):
    """Every layer, with earlier and later heads already ablated (a Sahara step), left-padded
    prompts of different lengths: against the plain suffix and the one-pass reference."""
    model = tiny.model
    fixed = torch.zeros(4, 4, dtype=torch.bool)
    fixed[0, 1] = fixed[2, 3] = True
    fixed_heads = [Head(0, 1), Head(2, 3)]
    texts = [model.format(p, "direct") for p in LONG_OPENING]
    (group,) = build_groups(model, texts, fixed, ScoreSettings(AblationMethod(kind, via=via)))
    assert group.shared >= 12 and group.batch.attention_mask.sum(-1).unique().numel() > 1
    prompts = [LONG_OPENING[i] for i in group.index.tolist()]
    for layer in range(4):
        rows, mask, heads = _rows_and_masks(fixed, layer, len(prompts))
        plain = suffix_hidden(model, group, layer, rows, mask, AblationMethod(kind, 1e-5, via))
        shared = suffix_hidden(
            model, group, layer, rows, mask, AblationMethod(kind, 1e-5, via), group.shared
        )
        assert torch.allclose(shared, plain, atol=1e-5, rtol=0)
        for slot, head in enumerate(heads):
            ablation = Ablation((*fixed_heads, Head(layer, head)), kind, 1e-5, via)
            slow = last_hidden_reference(model, prompts, ablation, template="direct")
            fast = shared[slot * len(prompts) : (slot + 1) * len(prompts)].double()
            assert torch.allclose(fast, slow, atol=1e-5, rtol=0)
            vanilla = last_hidden_reference(model, prompts, None, template="direct")
            assert (slow - vanilla).abs().max() > 1e-2  # the ablation matters


def test_a_shorter_opening_than_shared_is_exact_too(tiny):
    model = tiny.model
    none = torch.zeros(4, 4, dtype=torch.bool)
    texts = [model.format(p, "direct") for p in LONG_OPENING]
    (group,) = build_groups(model, texts, none, ScoreSettings())
    rows, mask, _ = _rows_and_masks(none, 1, len(texts))
    method = AblationMethod("undifferentiated", 1e-5, "query")
    plain = suffix_hidden(model, group, 1, rows, mask, method)
    for opening in (1, group.shared // 2):
        shared = suffix_hidden(model, group, 1, rows, mask, method, opening=opening)
        assert torch.allclose(shared, plain, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="opening"):
        suffix_hidden(model, group, 1, rows, mask, method, opening=group.shared + 1)


def _count_shared_passes(monkeypatch) -> dict[str, int]:
    count = {"n": 0}
    original = suffix_module._shared_opening_hidden

    def counted(*args, **kwargs):
        count["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(suffix_module, "_shared_opening_hidden", counted)
    return count


@pytest.mark.parametrize("template", ["direct", "chat"])
def test_ships_with_a_shared_opening_equals_the_reference(tiny, monkeypatch, template):
    count = _count_shared_passes(monkeypatch)
    fast = ships(tiny.model, LONG_OPENING, template=template, max_batch_tokens=400, progress=False)
    assert count["n"] > 0  # the opening really was shared
    slow = ships_reference(tiny.model, LONG_OPENING, ALL, template=template)
    assert torch.allclose(fast.per_prompt.reshape(len(LONG_OPENING), -1), slow, atol=1e-5, rtol=0)
    assert slow.max() > 1e-2
    unshared = ships(
        tiny.model,
        LONG_OPENING,
        template=template,
        max_batch_tokens=400,
        min_shared_tokens=None,
        progress=False,
    )
    assert torch.allclose(fast.per_prompt, unshared.per_prompt, atol=1e-6, rtol=0)


def test_prompts_without_a_common_opening_take_the_plain_path(tiny, monkeypatch):
    count = _count_shared_passes(monkeypatch)
    fast = ships(tiny.model, NO_OPENING, template="direct", progress=False)
    assert count["n"] == 0
    slow = ships_reference(tiny.model, NO_OPENING, ALL, template="direct")
    assert torch.allclose(fast.per_prompt.reshape(len(NO_OPENING), -1), slow, atol=1e-5, rtol=0)


def test_min_shared_tokens(tiny, monkeypatch):
    settings = ScoreSettings(min_shared_tokens=10)
    assert settings.shared_opening(9) == 0 and settings.shared_opening(10) == 10
    assert ScoreSettings(min_shared_tokens=None).shared_opening(50) == 0
    with pytest.raises(ValueError, match="min_shared_tokens"):
        ScoreSettings(min_shared_tokens=0)
    count = _count_shared_passes(monkeypatch)
    one_head = dict(template="direct", heads="1.0", progress=False)
    ships(tiny.model, LONG_OPENING, min_shared_tokens=None, **one_head)
    assert count["n"] == 0
    ships(tiny.model, LONG_OPENING, min_shared_tokens=1000, **one_head)
    assert count["n"] == 0
    ships(tiny.model, LONG_OPENING, **one_head)
    assert count["n"] > 0
