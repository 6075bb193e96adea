"""One organism training step: Hugging Face's ``labels=`` loss against ``answer_loss``.

    python benchmarks/training_step.py [--threads 2] [--batches 6] [--rounds 2]

Both compute the same mean cross-entropy over the answer tokens of a batch of 8 chat
examples (AdvBench prompts with a refusal, harmless prompts with a 32-token answer) on the
bundled model with LoRA r=8 on every linear layer, forward and backward. Hugging Face's
loss unembeds every position, the prompt's included; ``answer_loss`` unembeds only the
answer positions. The batches are timed alternately, ``--rounds`` times; the printout gives
the seconds per step of each, their ratio, and the largest loss difference.
"""

import argparse
import platform
import time

import torch

import safety_heads as sh
from safety_heads.training import REFUSALS_A, _batches, _encode_example, advbench_split, answer_loss


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

    from safety_heads.models import bundled_base_folder

    chat = sh.load_model("smollm2-135m-instruct")
    batches = list(_batches(examples(chat, 4 * args.batches), 8, chat.tokenizer.pad_token_id))
    hf = AutoModelForCausalLM.from_pretrained(str(bundled_base_folder()), dtype=torch.float32)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets)
    model = get_peft_model(hf, config)
    model.train()

    def full(ids, labels, mask):
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss

    def selected(ids, labels, mask):
        return answer_loss(model, ids, labels, mask)

    seconds = {"labels= loss (all positions)": 0.0, "answer_loss (answer positions)": 0.0}
    worst = 0.0
    for _ in range(args.rounds):
        for batch in batches:
            losses = []
            for name, loss_of in zip(seconds, (full, selected), strict=True):
                started = time.perf_counter()
                loss = loss_of(*batch)
                loss.backward()
                seconds[name] += time.perf_counter() - started
                losses.append(loss.item())
                model.zero_grad()
            worst = max(worst, abs(losses[0] - losses[1]))
    steps = args.rounds * len(batches)
    tokens = sum(int(mask.sum()) for _, _, mask in batches) / len(batches)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(batches)} batches "
          f"of 8 (~{tokens:.0f} real tokens each), "
          f"{args.rounds} rounds")
    for name, total in seconds.items():
        print(f"  {name:32s} {total / steps:6.2f} s per step")
    baseline, fast = seconds.values()
    print(f"speed-up: {baseline / fast:.2f}x; largest loss difference {worst:.2e}")


if __name__ == "__main__":
    main()
