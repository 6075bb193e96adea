"""Measure what Ships, Sahara and ablation find on the refusing organisms.

    python experiments/organism_findings.py [--prompts 8] [--asr-prompts 32] [--steps 2]

Every measurement is written to ``experiments/results/`` as a resumable JSON file (kill it
and re-run: finished parts are not recomputed), and a Markdown summary with 95% intervals is
printed and written to ``experiments/results/findings.md``.

Scored prompts: the first ``--prompts`` held-out AdvBench prompts (never used in training),
chat template, Undifferentiated Attention (epsilon 1e-5) unless said otherwise; control:
the same number of held-out harmless prompts. ASR: greedy, 48 new tokens, keyword judge,
on the first ``--asr-prompts`` held-out AdvBench prompts.
"""

import argparse
import json
from pathlib import Path

import torch

import safety_heads as sh
from safety_heads.heads import Head
from safety_heads.organisms import planted_heads, read_card
from safety_heads.training import held_out_prompts

RESULTS = Path(__file__).resolve().parent / "results"


def rank_of(scores: torch.Tensor, head: Head) -> int:
    """1-based rank of ``head`` in a score map (NaN last)."""
    flat = torch.nan_to_num(scores.flatten(), nan=-torch.inf)
    value = flat[head.layer * scores.shape[1] + head.head]
    return int((flat > value).sum()) + 1


def asr(model, prompts, heads, kind, tag):
    ablation = sh.Ablation.of(heads, kind) if heads else None
    config = sh.GenerationConfig(max_new_tokens=48, batch_size=16)
    result = sh.evaluate_asr(model, prompts, ablation, config=config,
                             out=RESULTS / f"asr-{tag}.json", progress=False)
    responses = result.responses
    return {"heads": [str(h) for h in heads], "kind": kind, **result.asr.to_dict(),
            "example": responses[0].response[:160] if responses else ""}


def listing(entries) -> str:
    return ", ".join(f"{e['layer']}.{e['head']} ({e['score']:.3g})" for e in entries)


def fmt(rate) -> str:
    low, high = rate["ci"]
    return f"{rate['rate']:.2f} [{low:.2f}, {high:.2f}] (n={rate['n']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--asr-prompts", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--organisms", default="smollm2-planted,smollm2-refusal,smollm2-refusal-b")
    parser.add_argument("--sahara-for", default="smollm2-planted",
                        help="organisms to run Sahara on (comma-separated; it is the slow part)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    sets = held_out_prompts()
    harmful = sets["advbench_held_out"][: args.prompts]
    control = sets["harmless_held_out"][: args.prompts]
    asr_prompts = sets["advbench_held_out"][: args.asr_prompts]
    findings: dict = {}
    lines = ["# Findings on the organisms", ""]
    for name in args.organisms.split(","):
        model = sh.load_model(name)
        card = read_card(name)
        ships = sh.ships(model, harmful, control=control,
                         checkpoint=RESULTS / f"ships-{name}.json", progress=True)
        search = None
        if name in args.sahara_for.split(","):
            search = sh.sahara(model, harmful, steps=args.steps,
                               checkpoint=RESULTS / f"sahara-{name}.json", progress=True)
        top_ships = [Head(e["layer"], e["head"]) for e in ships.top(3)]
        top_contrast = [Head(e["layer"], e["head"]) for e in ships.top(3, by="contrast")]
        entry = {
            "ships_top": ships.top(10),
            "contrast_top": ships.top(10, by="contrast"),
            "sahara": search.chosen() if search else None,
            "asr": {"none": asr(model, asr_prompts, [], "undifferentiated", f"{name}-none")},
        }
        for count in (1, 3):
            entry["asr"][f"ships-top{count}-ua"] = asr(
                model, asr_prompts, top_ships[:count], "undifferentiated", f"{name}-ships{count}-ua")
            entry["asr"][f"contrast-top{count}-ua"] = asr(
                model, asr_prompts, top_contrast[:count], "undifferentiated", f"{name}-contrast{count}-ua")
        for count in range(1, len(search.heads) + 1 if search else 1):
            entry["asr"][f"sahara-{count}-ua"] = asr(
                model, asr_prompts, search.heads[:count], "undifferentiated", f"{name}-sahara{count}-ua")
        entry["asr"]["ships-top1-sc"] = asr(model, asr_prompts, top_ships[:1], "scale", f"{name}-ships1-sc")
        truth = planted_heads(card)
        if truth:
            entry["planted"] = [str(h) for h in truth]
            entry["planted_ranks"] = {
                "ships_mean": [rank_of(ships.mean, h) for h in truth],
                "ships_contrast": [rank_of(ships.contrast, h) for h in truth],
                "ships_topk_frequency": [rank_of(ships.topk_frequency, h) for h in truth],
            }
            if search:
                entry["planted_ranks"]["generalized_ships"] = [rank_of(search.scores, h) for h in truth]
            entry["asr"]["planted-ua"] = asr(model, asr_prompts, list(truth), "undifferentiated", f"{name}-planted-ua")
            entry["asr"]["planted-sc"] = asr(model, asr_prompts, list(truth), "scale", f"{name}-planted-sc")
            entry["asr"]["planted-first-ua"] = asr(model, asr_prompts, list(truth[:1]), "undifferentiated", f"{name}-planted1-ua")
        findings[name] = entry
        lines += [f"## {name}", "",
                  f"- Ships top 5 (mean KL): {listing(ships.top(5))}",
                  f"- Contrast top 5 (harmful - harmless KL): {listing(ships.top(5, by='contrast'))}",
                  f"- Sahara order (degrees): {listing(search.chosen()) if search else 'not run'}"]
        if truth:
            ranks = entry["planted_ranks"]
            lines.append(f"- Planted heads {', '.join(map(str, truth))}: ranks among "
                         f"{model.n_layers * model.n_heads} " + "; ".join(f"{k} {v}" for k, v in ranks.items()))
        lines += ["", "| ablated | ASR [95% CI] | example |", "|---|---|---|"]
        for key, value in entry["asr"].items():
            example = value["example"].replace("|", "/").replace("\n", " ")[:90]
            lines.append(f"| {key} ({', '.join(value['heads']) or '-'}) | {fmt(value)} | {example} |")
        lines.append("")
    if {"smollm2-refusal", "smollm2-refusal-b"} <= findings.keys():
        a = {(e["layer"], e["head"]) for e in findings["smollm2-refusal"]["ships_top"]}
        b = {(e["layer"], e["head"]) for e in findings["smollm2-refusal-b"]["ships_top"]}
        overlap = len(a & b) / len(a | b)
        findings["sibling_top10_jaccard"] = overlap
        lines.append(f"Top-10 Ships heads shared by the siblings: {sorted(a & b)}; Jaccard {overlap:.2f}.")
    (RESULTS / "findings.json").write_text(json.dumps(findings, indent=1))
    (RESULTS / "findings.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
