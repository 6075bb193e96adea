import pytest

from safety_heads.models.prompts import (
    QUERY_TEMPLATE,
    encode_prompts,
    format_prompt,
    resolve_chat_format,
)


def test_query_and_direct_templates():
    assert QUERY_TEMPLATE == "## Query: {query}\n## Answer:"
    assert format_prompt("Say hi", template="query") == "## Query: Say hi\n## Answer:"
    assert format_prompt("Say hi", template="direct") == "Say hi"


def test_builtin_chat_formats():
    assert format_prompt("Say hi", chat_format="llama-2") == "[INST] Say hi [/INST]"
    assert format_prompt("Say hi", chat_format="llama-2", system="Be safe.") == (
        "[INST] <<SYS>>\nBe safe.\n<</SYS>>\n\nSay hi [/INST]"
    )
    assert format_prompt("Say hi", chat_format="vicuna") == "USER: Say hi ASSISTANT:"
    assert format_prompt("Say hi", chat_format="vicuna", system="Be safe.") == (
        "Be safe. USER: Say hi ASSISTANT:"
    )


def test_tokenizer_chat_template_is_used(tokenizer):
    text = format_prompt("Say hi", tokenizer=tokenizer)
    assert text.endswith("<|im_start|>user\nSay hi<|im_end|>\n<|im_start|>assistant\n")
    with_system = format_prompt("Say hi", tokenizer=tokenizer, system="Be safe.")
    assert "<|im_start|>system\nBe safe.<|im_end|>" in with_system


def test_unknown_template_lists_the_choices():
    with pytest.raises(ValueError, match="'chat', 'query', 'direct'"):
        format_prompt("x", template="plain")


def test_chat_format_resolution(tokenizer, bos_tokenizer):
    assert resolve_chat_format(tokenizer, "auto", "whatever") == "tokenizer"
    assert resolve_chat_format(bos_tokenizer, "auto", "lmsys/vicuna-7b-v1.5") == "vicuna"
    assert resolve_chat_format(bos_tokenizer, "auto", "meta-llama/Llama-2-7b-chat-hf") == "llama-2"
    with pytest.raises(ValueError, match="no chat template"):
        resolve_chat_format(bos_tokenizer, "auto", "some/model")
    with pytest.raises(ValueError, match="no chat template"):
        resolve_chat_format(bos_tokenizer, "tokenizer", "some/model")


def test_exactly_one_bos_when_the_tokenizer_uses_one(bos_tokenizer):
    bos = bos_tokenizer.bos_token_id
    texts = ["## Query: a\n## Answer:", bos_tokenizer.bos_token + "[INST] a [/INST]"]
    batch = encode_prompts(bos_tokenizer, texts)
    for row, mask in zip(batch.input_ids, batch.attention_mask, strict=True):
        real = row[mask.bool()].tolist()
        assert real[0] == bos
        assert real.count(bos) == 1


def test_no_bos_added_when_the_tokenizer_adds_none(tokenizer):
    batch = encode_prompts(tokenizer, ["## Query: a\n## Answer:"])
    assert tokenizer.bos_token_id not in batch.input_ids[0].tolist()
    chat = encode_prompts(tokenizer, [format_prompt("a", tokenizer=tokenizer)])
    assert chat.input_ids[0].tolist().count(tokenizer.bos_token_id) == 3  # one per turn


def test_left_padding_mask_and_positions(tokenizer):
    batch = encode_prompts(tokenizer, ["short", "a much longer prompt than the first"])
    short_len = len(tokenizer("short", add_special_tokens=False)["input_ids"])
    width = batch.input_ids.shape[1]
    assert batch.attention_mask[0].tolist() == [0] * (width - short_len) + [1] * short_len
    assert batch.attention_mask[1].all()
    assert batch.position_ids[0, -short_len:].tolist() == list(range(short_len))
    assert batch.position_ids[1].tolist() == list(range(width))


def test_select_drops_shared_padding(tokenizer):
    batch = encode_prompts(tokenizer, ["short", "a much longer prompt than the first"])
    alone = batch.select([0])
    assert alone.attention_mask.all()
    assert alone.input_ids.tolist() == encode_prompts(tokenizer, ["short"]).input_ids.tolist()


def test_empty_input_is_refused(tokenizer):
    with pytest.raises(ValueError, match="no prompts"):
        encode_prompts(tokenizer, [])
    with pytest.raises(TypeError, match="list"):
        encode_prompts(tokenizer, "one string")
