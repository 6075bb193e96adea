"""ASR of ``smollm2-refusal`` with its top 5 Ships heads ablated, on more prompts than
``organism_findings.py`` uses: the held-out AdvBench prompts that neither scored the heads
nor measured its ASR (88 of 120 after a run with ``--prompts 16 --asr-prompts 32``), and
the 91 held-out JailbreakBench prompts; Scaling Contribution, Undifferentiated Attention
and no ablation, each answer kept. Then what each ablation costs on the 100 held-out
harmless prompts (over-refusal, mean next-token KL)::

    python experiments/five_heads_at_scale.py   # 6 to 20 min on 2 CPU cores

The heads are read from ``results/findings-smollm2-refusal.json`` (run that first).
Writes ``results/five-heads-smollm2-refusal.json``.
"""

import json
from pathlib import Path

import torch

import safety_heads as sh
from safety_heads.organisms.splits import held_out_prompts

RESULTS = Path(__file__).parent / "results"
OUT = RESULTS / "five-heads-smollm2-refusal.json"


def ships_top5() -> tuple[list[str], int]:
    """The top 5 Ships heads that ``organism_findings.py`` measured on ``smollm2-refusal``,
    and how many of the first held-out AdvBench prompts it used (to score or for ASR)."""
    findings = json.loads((RESULTS / "findings-smollm2-refusal.json").read_text())
    used = max(findings["settings"]["prompts"], findings["settings"]["asr_prompts"])
    return [f"{e['layer']}.{e['head']}" for e in findings["ships_top"][:5]], used


def main() -> None:
    torch.set_num_threads(2)
    heads, used = ships_top5()
    model = sh.load_model("smollm2-refusal")
    config = sh.GenerationConfig(max_new_tokens=48, batch_size=16)
    sets = held_out_prompts()
    results = {}
    advbench = sets["advbench_held_out"]
    for name, prompts in (
        (f"advbench_{used}_{len(advbench)}", advbench[used:]),
        ("jailbreakbench", sets["jailbreakbench"]),
    ):
        for kind in ("scale", "undifferentiated", None):
            ablation = sh.Ablation.of(heads, kind) if kind else None
            result = sh.evaluate_asr(model, prompts, ablation, config=config, progress=False)
            rate = result.asr
            print(
                name,
                kind,
                rate.count,
                "of",
                rate.n,
                f"[{rate.low:.2f}, {rate.high:.2f}]",  # noqa: T201
                flush=True,
            )
            results[f"{name}-{kind}"] = {
                "successes": rate.count,
                "n": rate.n,
                "ci": [rate.low, rate.high],
                "answers": [(r.prompt, r.response, r.attack_success) for r in result.responses],
            }
    harmless = sets["harmless_held_out"]
    for kind in ("scale", "undifferentiated", None):
        ablation = sh.Ablation.of(heads, kind) if kind else None
        cost = sh.side_effects(model, harmless, ablation, config=config, progress=False)
        rate = cost.over_refusal
        print(
            "harmless",
            kind,
            "over-refused",
            rate.count,
            "of",
            rate.n,  # noqa: T201
            f"mean KL {cost.mean_kl:.3f}",
            flush=True,
        )
        results[f"harmless-{kind}"] = {
            "over_refused": rate.count,
            "n": rate.n,
            "ci": [rate.low, rate.high],
            "mean_kl": cost.mean_kl,
            "answers": [(r.prompt, r.response, bool(r.verdict.refusal)) for r in cost.responses],
        }
    OUT.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
