"""What judging adds to an evaluation: time to generate answers against time to judge them
with the default content judge (text rules, and one teacher-forced pass of the unablated
model over the answers the rules leave open), with it and the reader probe (``--judge
reader``: one more pass, of the bundled 135M reader, over the answers the rules call
compliance) and with the paper's keyword judge.

The worst case for the content judge is a model that rarely refuses (every answer needs
the coherence pass): the unaligned base model on JailbreakBench. A refusing organism
under ablation is the usual case. Each is timed in this one process::

    python benchmarks/judge_cost.py [--prompts 32] [--max-new-tokens 48]
"""

import argparse
import time

import torch

import safety_heads as sh
from safety_heads.organisms.splits import held_out_prompts

CASES = (
    ("base model, no ablation (worst case)", "smollm2-135m-instruct", "jailbreakbench", ()),
    (
        "smollm2-refusal, top 5 Ships heads UA",
        "smollm2-refusal",
        "advbench_held_out",
        ("18.8", "7.2", "18.7", "12.8", "8.8"),
    ),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    sets = held_out_prompts()
    config = sh.GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.prompts} prompts, {args.max_new_tokens} new tokens, batch {args.batch_size}"
    )
    from safety_heads.evaluation.reader import default_probe, reader_model

    start = time.perf_counter()
    reader_model(default_probe().reader)  # loaded once per process
    print(f"loading the reader model once: {time.perf_counter() - start:.2f} s")
    for title, name, dataset, heads in CASES:
        model = sh.load_model(name)
        prompts = sets[dataset][: args.prompts]
        ablation = sh.Ablation(heads) if heads else None
        start = time.perf_counter()
        answers = sh.generate_responses(model, prompts, ablation, config, progress=False)
        generate = time.perf_counter() - start
        start = time.perf_counter()
        verdicts = sh.ContentJudge(model=model, batch_size=args.batch_size).judge(prompts, answers)
        content = time.perf_counter() - start
        start = time.perf_counter()
        judge = sh.ContentJudge(model=model, batch_size=args.batch_size, reader=True)
        judge.judge(prompts, answers)
        reader = time.perf_counter() - start
        start = time.perf_counter()
        sh.KeywordJudge().judge(prompts, answers)
        keyword = time.perf_counter() - start
        start = time.perf_counter()
        sh.ContentJudge(model=model, batch_size=args.batch_size).mean_logprobs(prompts, answers)
        every = time.perf_counter() - start
        opened = sum(
            v.label in ("echo", "evasive", "compliance") or "incoherent" in v.reason
            for v in verdicts
        )
        print(f"\n{title}: {opened}/{len(prompts)} answers needed the coherence pass")
        print(f"  generate            {generate:7.2f} s")
        print(f"  content judge       {content:7.2f} s  = {content / generate:.1%} of generation")
        passed = sum(v.label == "compliance" for v in verdicts)
        print(
            f"  content + reader    {reader:7.2f} s  = {reader / generate:.1%} of generation "
            f"({passed} answers read by the reader)"
        )
        print(f"  keyword judge       {keyword:7.3f} s  = {keyword / generate:.2%} of generation")
        print(f"  coherence, all rows {every:7.2f} s  = {every / generate:.1%} of generation")


if __name__ == "__main__":
    main()
