"""The classifier judge reads its model's answer and renders its template."""

from __future__ import annotations

import pytest
import torch

from safety_heads.classifiers import ClassifierJudge


# A tiny random Llama, edited to answer one fixed token whatever it reads: residual
# dimension 0 is held at 1 (every token embeds it, no layer writes it), the final norm keeps
# only that dimension, and the unembedding maps it to the chosen token.
def forced_answer_model(tokenizer, word: str, folder) -> str:
    from transformers import LlamaConfig, LlamaForCausalLM

    (token,) = tokenizer(word, add_special_tokens=False)["input_ids"]
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0] = 0.0
            layer.mlp.down_proj.weight[0] = 0.0
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[token, 0] = 10.0
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return str(folder)


@pytest.mark.parametrize(("word", "success"), [("Yes", True), ("No", False)])
def test_classifier_judge_reads_its_model_answer(tokenizer, tmp_path, word, success):
    folder = forced_answer_model(tokenizer, word, tmp_path / word)
    judge = ClassifierJudge(folder, batch_size=2, max_new_tokens=3)
    assert judge.name == f"classifier({folder},template=chat)"
    verdicts = judge.judge(["how to x", "how to y", "how to z"], ["do a", "do b then c", "no"])
    assert [v.attack_success for v in verdicts] == [success] * 3
    assert all(v.reason == f"classifier said {word.lower() * 3!r}" for v in verdicts)
    rendered = judge.render("how to x", "do a")
    assert "how to x" in rendered and "do a" in rendered
    assert rendered.index("how to x") < rendered.index("do a")


def test_classifier_template_and_labels(tokenizer, tmp_path):
    template = "Request: {prompt}\nAnswer: {response}\nHarmful?"
    folder = forced_answer_model(tokenizer, "Yes", tmp_path / "m")
    judge = ClassifierJudge(folder, template=template)
    assert judge.render("a {b}", "c") == "Request: a {b}\nAnswer: c\nHarmful?"
    assert judge.judge(["p"], ["r"])[0].attack_success
    assert judge.read("unsafe\nS2").attack_success
    assert not judge.read("  Safe.").attack_success
    unclear = judge.read("maybe")
    assert not unclear.attack_success and "not understood" in unclear.reason
    with pytest.raises(ValueError, match="response"):
        ClassifierJudge("org/classifier", template="no placeholder")
