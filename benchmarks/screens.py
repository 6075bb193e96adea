"""The fast screens against exact Ships, in one process, on the planted organism.

    python benchmarks/screens.py [--prompts 16] [--control 16] [--keep 27]

Runs exact Ships over every head (the fast path), then each screen (attribution patching,
``atp``; the refusal direction, ``direction``) alone and screen-then-confirm (the screen's
best ``--keep`` heads scored exactly), on held-out AdvBench prompts with held-out harmless
prompts as the direction screen's control; prints the times, the speed-ups,
the ranks of the planted heads (8.2, 15.6, 21.4) under each, whether the screen's shortlist
holds exact Ships' top 3, and the Spearman correlation of the screen's map with Ships'.
"""

import argparse
import json
import platform
import time

import torch

import safety_heads as sh
from safety_heads.figures.compare import spearman
from safety_heads.method.screens import attribution_scores, refusal_direction_scores
from safety_heads.organisms.splits import held_out_prompts

PLANTED = ((8, 2), (15, 6), (21, 4))


def rank_of(scores: torch.Tensor, head: tuple[int, int]) -> int:
    order = torch.argsort(scores.flatten().nan_to_num(-float("inf")), descending=True).tolist()
    return order.index(head[0] * scores.shape[1] + head[1]) + 1


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--control", type=int, default=16)
    parser.add_argument("--keep", type=int, default=27)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sets = held_out_prompts()
    harmful = sets["advbench_held_out"][: args.prompts]
    harmless = sets["harmless_held_out"][: args.control]
    model = sh.load_model("smollm2-planted")
    exact, exact_s = timed(lambda: sh.ships(model, harmful, progress=False))
    top3 = [(e["layer"], e["head"]) for e in exact.top(3)]
    figures = {
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "prompts": len(harmful),
        "control": len(harmless),
        "keep": args.keep,
        "exact_seconds": exact_s,
        "planted_rank_exact": [rank_of(exact.mean, h) for h in PLANTED],
        "exact_top3": [f"{layer}.{head}" for layer, head in top3],
    }
    print(f"exact Ships {exact_s:.1f} s; planted ranks {figures['planted_rank_exact']}")
    screens = {
        "atp": lambda: attribution_scores(model, harmful),
        "direction": lambda: refusal_direction_scores(model, harmful, harmless),
    }
    for name, run in screens.items():
        screen, screen_s = timed(run)
        control = harmless if name == "direction" else None
        _, confirmed_s = timed(
            lambda name=name, control=control: sh.ships(
                model, harmful, control=control, screen=name, keep=args.keep, progress=False
            )
        )
        shortlist = {(h.layer, h.head) for h in screen.top(args.keep)}
        found = {
            "seconds": screen_s,
            "speedup": exact_s / screen_s,
            "then_confirm_seconds": confirmed_s,
            "then_confirm_speedup": exact_s / confirmed_s,
            "planted_rank": [rank_of(screen.scores, h) for h in PLANTED],
            "top3": [str(h) for h in screen.top(3)],
            "exact_top3_in_shortlist": sum(h in shortlist for h in top3),
            "spearman_vs_exact": float(spearman(screen.scores, exact.mean)),
        }
        figures[name] = found
        print(
            f"{name}: {screen_s:.1f} s ({found['speedup']:.0f}x); then {args.keep} heads "
            f"exactly {confirmed_s:.1f} s ({found['then_confirm_speedup']:.1f}x); planted "
            f"ranks {found['planted_rank']}; exact Ships' top 3 {figures['exact_top3']}: "
            f"{found['exact_top3_in_shortlist']} in its top {args.keep}; Spearman "
            f"{found['spearman_vs_exact']:.2f}"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
