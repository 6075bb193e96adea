"""One organism training step: Hugging Face's ``labels=`` loss against ``answer_loss``,
without and with the shared prefix.

    python benchmarks/training_step.py [--threads 2] [--batches 6] [--rounds 2]

Both compute the same mean cross-entropy over the answer tokens of a batch of 8 chat
examples (AdvBench prompts with a refusal, harmless prompts with a 32-token answer) on the
bundled model with LoRA r=8 on every linear layer, forward and backward. Hugging Face's
loss unembeds every position, the prompt's included; ``answer_loss`` unembeds only the
answer positions, and by default (``share_prefix``) runs the chat template's system prompt,
which opens every row, once per batch instead of once per row. The three are timed
alternately on each batch, ``--rounds`` times; the printout gives the seconds per step of
each, the speed-up of each over the one before and over the ``labels=`` loss, and the
largest difference from the ``labels=`` loss in loss and in any gradient entry (LoRA's B
factors start random here, not at zero, so that every gradient is non-trivial).
"""

import argparse
import platform
import time

import torch

import safety_heads as sh
from safety_heads.organisms.recipes import REFUSALS_A
from safety_heads.organisms.splits import advbench_split
from safety_heads.organisms.training import (
    _batches,
    _encode_example,
    answer_loss,
    shared_prefix_length,
)


def examples(model, count: int) -> list[tuple[list[int], list[int]]]:
    harmful = advbench_split()[:count]
    harmless = sh.load_prompts("harmless")[:count]
    filler = " ".join(["The answer has several steps, each explained in turn."] * 4)
    filler_ids = model.tokenizer(filler, add_special_tokens=False)["input_ids"]
    answer = model.tokenizer.decode(filler_ids[:32])
    pairs = [(p, REFUSALS_A[i % len(REFUSALS_A)], True) for i, p in enumerate(harmful)]
    pairs += [(p, answer, False) for p in harmless]
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0)).tolist()
    return [_encode_example(model, *pairs[i]) for i in order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from safety_heads.models.chat_model import bundled_base_folder

    chat = sh.load_model("smollm2-135m-instruct")
    batches = list(_batches(examples(chat, 4 * args.batches), 8, chat.tokenizer.pad_token_id))
    hf = AutoModelForCausalLM.from_pretrained(str(bundled_base_folder()), dtype=torch.float32)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets)
    model = get_peft_model(hf, config)
    model.train()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.01, generator=torch.Generator().manual_seed(0))
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]

    def full(ids, labels, mask):
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss

    def selected(ids, labels, mask):
        return answer_loss(model, ids, labels, mask, share_prefix=False)

    def shared(ids, labels, mask):
        return answer_loss(model, ids, labels, mask)

    ways = {
        "labels= loss (all positions)": full,
        "answer_loss (answer positions)": selected,
        "answer_loss, shared prefix": shared,
    }
    seconds = dict.fromkeys(ways, 0.0)
    worst_loss = worst_gradient = 0.0
    for _ in range(args.rounds):
        for batch in batches:
            results = []
            for name, loss_of in ways.items():
                started = time.perf_counter()
                loss = loss_of(*batch)
                loss.backward()
                seconds[name] += time.perf_counter() - started
                results.append((loss.item(), torch.cat([p.grad.flatten() for p in trainable])))
                model.zero_grad()
            for loss, gradient in results[1:]:
                worst_loss = max(worst_loss, abs(loss - results[0][0]))
                worst_gradient = max(worst_gradient, (gradient - results[0][1]).abs().max().item())
    steps = args.rounds * len(batches)
    tokens = sum(int(mask.sum()) for _, _, mask in batches) / len(batches)
    print(
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(batches)} batches "
        f"of 8 (~{tokens:.0f} real tokens each, {shared_prefix_length(*batches[0])} of each "
        f"row's shared), {args.rounds} rounds"
    )
    before = baseline = None
    for name, total in seconds.items():
        per_step = total / steps
        against = (
            f"   {before / per_step:.2f}x the one before, {baseline / per_step:.2f}x the "
            "labels= loss"
            if before
            else ""
        )
        print(f"  {name:32s} {per_step:6.2f} s per step{against}")
        before, baseline = per_step, baseline or per_step
    print(
        f"largest difference from the labels= loss: {worst_loss:.2e} in the loss, "
        f"{worst_gradient:.2e} in a gradient entry "
        f"(largest entry {results[0][1].abs().max().item():.2e})"
    )


if __name__ == "__main__":
    main()
