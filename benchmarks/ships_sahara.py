"""Ships and Sahara: the fast path against the reference-style loop, in one process.

    python benchmarks/ships_sahara.py [--threads 2] [--naive-sample 54]

(a) Ships over all heads of the bundled model for 8 AdvBench prompts;
(b) one Sahara step (Generalized Ships of every head, rank 1) over 32 AdvBench prompts.

Each is timed by the reference loop (one full forward pass per head and prompt, like the
paper's code) and by the fast path (cached residuals, layer suffixes, batched ablations,
the chat template's shared opening computed once per ablation), the numbers of both are
compared, and the speed-up is printed. ``--unshared`` also times the fast path with the
shared opening switched off (``min_shared_tokens=None``), to show what that step adds.
The reference loop's cost per head is the same for every head (a full pass per prompt),
so with ``--naive-sample N`` it is timed on N heads spread over all layers and scaled to
all heads (its time x
(heads + 1) / (N + 1): one base pass and one pass per head for each prompt); the printout
says so. ``--naive-sample 0`` times it on every head.

Efficiency = the fast path's useful FLOP rate (FLOPs on real, unpadded tokens per second)
divided by the FLOP rate of one large batched forward pass of the same model on the same
machine (the practical ceiling). FLOPs are counted with ``torch.utils.flop_counter`` in
separate, untimed runs: the fast path's work is one base pass plus, per head, passes whose
size does not depend on which head of a layer is ablated, so it is counted on one head per
layer and scaled (total = base + n_heads x (one-head-per-layer run - base)).
"""

import argparse
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import safety_heads as sh
from safety_heads.method.heads import Head
from safety_heads.method.per_head_loop import generalized_ships_reference, ships_reference
from safety_heads.method.sahara import generalized_ships
from safety_heads.method.ships import ships


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def counted_flops(function) -> int:
    with FlopCounterMode(display=False) as counter:
        function()
    return counter.get_total_flops()


def fast_path_flops(model, prompts, template, scorer) -> float:
    """FLOPs of ``scorer`` over all heads, counted on one head per layer and scaled."""
    from safety_heads.method.fast_path import (
        ScoreSettings,
        build_groups,
        group_hidden,
        unembed_logprobs,
    )

    texts = [model.format(p, template) for p in prompts]
    none = torch.zeros(model.n_layers, model.n_heads, dtype=torch.bool)
    base = counted_flops(
        lambda: unembed_logprobs(
            model, group_hidden(build_groups(model, texts, none, ScoreSettings()))
        )
    )
    one_per_layer = [Head(layer, 0) for layer in range(model.n_layers)]
    subset = counted_flops(
        lambda: scorer(model, prompts, template=template, heads=one_per_layer, progress=False)
    )
    return base + model.n_heads * (subset - base)


def sample_heads(model, count: int) -> list[Head]:
    heads = [Head(layer, h) for layer in range(model.n_layers) for h in range(model.n_heads)]
    if count <= 0 or count >= len(heads):
        return heads
    step = len(heads) / count
    return [heads[int(i * step)] for i in range(count)]


def real_token_share(model, prompts, template) -> float:
    """Share of real (unpadded) tokens in the fast path's length-sorted groups."""
    from safety_heads.method.fast_path import prompt_groups

    texts = [model.format(p, template) for p in prompts]
    real = total = 0
    for _, batch in prompt_groups(model.tokenizer, texts, 64):
        real += int(batch.attention_mask.sum())
        total += batch.attention_mask.numel()
    return real / total


def ceiling_rate(model, template, repeats: int = 3) -> float:
    """FLOP/s of one large batched forward pass (64 prompts, all positions' logits), the
    best of ``repeats`` timings (one timing is at the mercy of other load on the machine)."""
    batch = model.encode(sh.load_prompts("harmless", limit=64), template=template)

    def run():
        with torch.no_grad():
            model.bridge(batch.input_ids, attention_mask=batch.attention_mask)

    run()  # warm-up
    seconds = min(timed(run)[1] for _ in range(repeats))
    return counted_flops(run) / seconds


def measure(title, model, prompts, args, sampled, naive_run, fast_run, pick, ceiling, unit):
    """Time the reference loop (on ``sampled`` heads, scaled) and the fast path; print both,
    the largest difference between their numbers, the speed-up and the efficiency."""
    n_total = model.n_layers * model.n_heads
    # Both reference loops make one base pass and one pass per head for every prompt.
    scale = (n_total + 1) / (len(sampled) + 1)
    label = "all" if len(sampled) == n_total else f"{len(sampled)} sampled"
    naive, naive_s = timed(lambda: naive_run(model, prompts, sampled, template=args.template))
    fast, fast_s = timed(lambda: fast_run(model, prompts, template=args.template, progress=False))
    gap = (pick(fast, sampled) - naive).abs().max().item()
    if args.unshared:
        plain, plain_s = timed(
            lambda: fast_run(
                model, prompts, template=args.template, min_shared_tokens=None, progress=False
            )
        )
        plain_gap = (pick(plain, sampled) - naive).abs().max().item()
        print(
            f"{title}: fast path without the shared opening {plain_s:.1f} s, speed-up "
            f"{naive_s * scale / plain_s:.1f}x, max |difference| {plain_gap:.2e} {unit}; "
            f"sharing the opening makes it {plain_s / fast_s:.2f}x faster",
            flush=True,
        )
    flops = fast_path_flops(model, prompts, args.template, fast_run)
    useful = flops * real_token_share(model, prompts, args.template) / fast_s
    print(
        f"{title}, {n_total} heads x {len(prompts)} prompts: reference loop "
        f"{naive_s * scale:.1f} s ({label} heads timed, {naive_s:.1f} s), fast path "
        f"{fast_s:.1f} s; speed-up {naive_s * scale / fast_s:.1f}x; max |difference| "
        f"{gap:.2e} {unit}; efficiency {useful / ceiling:.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--naive-sample", type=int, default=18, help="heads timed in the reference loop (0 = all)"
    )
    parser.add_argument("--template", default="chat")
    parser.add_argument("--ships-prompts", type=int, default=8)
    parser.add_argument("--sahara-prompts", type=int, default=32)
    parser.add_argument("--only", choices=["a", "b"], default=None, help="run one part only")
    parser.add_argument(
        "--unshared", action="store_true", help="also time the fast path without the shared opening"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = sh.load_model("smollm2-135m-instruct")
    print(
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"device {model.device}",
        flush=True,
    )
    ceiling = ceiling_rate(model, args.template)
    print(f"ceiling: one batched forward pass runs at {ceiling / 1e9:.2f} GFLOP/s", flush=True)
    sampled = sample_heads(model, args.naive_sample)
    parts = {
        "a": (
            "(a) Ships",
            args.ships_prompts,
            ships_reference,
            ships,
            lambda fast, heads: torch.stack(
                [fast.per_prompt[:, h.layer, h.head] for h in heads], 1
            ),
            "(KL)",
        ),
        "b": (
            "(b) one Sahara step",
            args.sahara_prompts,
            generalized_ships_reference,
            generalized_ships,
            lambda fast, heads: torch.stack([fast.scores[h.layer, h.head] for h in heads]),
            "degrees",
        ),
    }
    for key, (title, count, naive_run, fast_run, pick, unit) in parts.items():
        if args.only in (None, key):
            prompts = sh.load_prompts("advbench", limit=count)
            measure(title, model, prompts, args, sampled, naive_run, fast_run, pick, ceiling, unit)


if __name__ == "__main__":
    main()
