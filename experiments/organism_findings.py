"""Measure what Ships, Sahara and ablation find on the refusing organisms.

    python experiments/organism_findings.py --organisms smollm2-refusal \\
        --compare smollm2-refusal-b,smollm2-135m-instruct --prompts 16 --control-prompts 8 \\
        --asr-prompts 32 --sahara-steps 3 --sahara-pool 20 --datasets jailbreakbench
    python experiments/organism_findings.py --organisms smollm2-planted --prompts 16 \\
        --control-prompts 8 --asr-prompts 32 --sahara-steps 3 --sahara-pool 20

(the runs behind the README's findings: 17 and 11 minutes on 2 fast CPU cores).

Every measurement is a resumable JSON file in ``experiments/results/`` (kill the script and
re-run it: finished parts are read back, not recomputed). Each organism's entry goes to
``findings-NAME.json``; ``findings.md`` summarises every organism measured so far, with 95%
Clopper-Pearson intervals.

What is measured, per organism (all prompts held out from its training):

* Ships (UA, epsilon 1e-5, chat template) on the first ``--prompts`` held-out AdvBench
  prompts, with the first ``--control-prompts`` held-out harmless prompts as control
  (contrast = harmful mean - control mean).
* Per-query ASR (the paper's section 3 setting): each scored prompt answered with *its own*
  top 1, 2, 3, 5 Ships heads ablated.
* Dataset-level ASR on the first ``--asr-prompts`` held-out AdvBench prompts with the top
  1, 2, 3, 5 heads of mean Ships and of Sahara ablated, by UA and by SC (Scaling
  Contribution; the heads are the UA-ranked ones).
* Sahara (Generalized Ships, rank 1): step 1 scores every head; with ``--sahara-pool K``
  steps 2.. consider only the K best heads of step 1 (a cost cut, reported as such; it can
  change the picks, see ``sahara_without_pool.py``).
* Side effects on ``--asr-prompts`` held-out harmless prompts: over-refusal and mean
  next-token KL with the top-3 Ships and Sahara heads ablated.
* UA vs SC: Ships scored with Scaling Contribution on the same prompts, compared with the
  UA map (Spearman, top-10 Jaccard).
* ``--datasets``: Ships on the first ``--prompts`` prompts of other sets, compared with the
  AdvBench map (Spearman, top-10 Jaccard).
* ``--compare``: Ships maps only (same prompts and control) of other models, e.g. the
  sibling fine-tune and the unaligned base; every pair of maps on the same prompts is
  compared the same way.
* Planted organisms: the ranks of the planted heads under each score.

ASR uses greedy decoding, 48 new tokens and the default content judge (only a coherent,
relevant answer that serves the request is an attack success; refusals, gibberish, echoes
and evasions are not), with the paper's keyword judge's figure on the same answers beside
it; over-refusal is the share of answers the content judge labels refusal.
"""

import argparse
import json
from itertools import combinations
from pathlib import Path

import torch

import safety_heads as sh
from safety_heads.datasets import load_prompts
from safety_heads.figures.compare import compare_maps
from safety_heads.method.heads import Head, ranked
from safety_heads.organisms import planted_heads, read_card
from safety_heads.organisms.splits import held_out_prompts

RESULTS = Path(__file__).resolve().parent / "results"
COUNTS = (1, 2, 3, 5)
KINDS = {"ua": "undifferentiated", "sc": "scale"}


def rank_of(scores: torch.Tensor, head: Head) -> int:
    """1-based rank of ``head`` in a score map (NaN last)."""
    flat = torch.nan_to_num(scores.flatten(), nan=-torch.inf)
    value = flat[head.layer * scores.shape[1] + head.head]
    return int((flat > value).sum()) + 1


def heads_of(entries) -> list[Head]:
    return [Head(e["layer"], e["head"]) for e in entries]


def summary(result, kind: str) -> dict:
    """The ASR entry of one run: rate, interval, heads and a first answer."""
    responses = result.responses
    return {
        "heads": [str(h) for h in result.heads],
        "kind": kind,
        **result.asr.to_dict(),
        "judge": result.judge,
        "labels": result.labels,
        "keyword": result.keyword_asr.to_dict(),
        "example": responses[0].response[:160] if responses else "",
    }


class Runner:
    """Resumable measurements of one organism; files are named ``KIND-NAME-TAG.json``."""

    def __init__(self, name: str, args: argparse.Namespace):
        self.name = name
        self.model = sh.load_model(name)
        self.config = sh.GenerationConfig(max_new_tokens=48, batch_size=16)

    def path(self, kind: str, tag: str = "") -> Path:
        return RESULTS / f"{kind}-{self.name}{'-' + tag if tag else ''}.json"

    def asr(self, prompts, heads, kind: str, tag: str) -> dict:
        ablation = sh.Ablation.of(heads, kind) if heads else None
        result = sh.evaluate_asr(
            self.model,
            prompts,
            ablation,
            config=self.config,
            out=self.path("asr", tag),
            progress=False,
        )
        return summary(result, kind)

    def per_query_asr(self, scores, count: int, kind: str, tag: str) -> dict:
        ablations = scores.prompt_ablations(count, kind)
        result = sh.evaluate_asr(
            self.model,
            scores.prompts,
            ablations,
            config=self.config,
            out=self.path("asr", tag),
            progress=False,
        )
        return summary(result, kind)

    def side_effects(self, prompts, heads, tag: str) -> dict:
        ablation = sh.Ablation.of(heads) if heads else None
        result = sh.side_effects(
            self.model,
            prompts,
            ablation,
            config=self.config,
            out=self.path("side", tag),
            progress=False,
        )
        return {
            "heads": [str(h) for h in heads],
            "over_refusal": result.over_refusal.to_dict(),
            "keyword_over_refusal": result.keyword_over_refusal.to_dict(),
            "mean_kl": result.mean_kl,
            "example": result.responses[0].response[:160],
        }


def measure(name: str, args: argparse.Namespace) -> dict:
    sets = held_out_prompts()
    harmful = sets["advbench_held_out"][: args.prompts]
    control = sets["harmless_held_out"][: args.control_prompts] or None
    asr_prompts = sets["advbench_held_out"][: args.asr_prompts]
    harmless = sets["harmless_held_out"][: args.asr_prompts]
    run = Runner(name, args)
    model = run.model
    ships = sh.ships(model, harmful, control=control, checkpoint=run.path("ships"), progress=True)
    entry: dict = {
        "settings": {
            k: getattr(args, k)
            for k in ("prompts", "control_prompts", "asr_prompts", "sahara_steps", "sahara_pool")
        },
        "card": read_card(name).get("held_out"),
        "ships_top": ships.top(10),
        "frequency_top": ships.top(10, by="frequency"),
        "contrast_top": ships.top(10, by="contrast") if control else None,
        "per_query_heads": [[str(h) for h in row] for row in ships.prompt_heads(5)],
        "asr": {"none": run.asr(asr_prompts, [], "undifferentiated", "none")},
        "per_query": {"none": run.asr(harmful, [], "undifferentiated", f"n{args.prompts}-none")},
        "datasets": {},
    }
    top_ships = heads_of(ships.top(max(COUNTS)))
    for count in COUNTS:
        for short, kind in KINDS.items():
            entry["asr"][f"ships-top{count}-{short}"] = run.asr(
                asr_prompts, top_ships[:count], kind, f"ships{count}-{short}"
            )
        entry["per_query"][f"top{count}-ua"] = run.per_query_asr(
            ships, count, "undifferentiated", f"n{args.prompts}-pq{count}-ua"
        )
    if control:
        top_contrast = heads_of(ships.top(3, by="contrast"))
        for count in (1, 3):
            entry["asr"][f"contrast-top{count}-ua"] = run.asr(
                asr_prompts, top_contrast[:count], "undifferentiated", f"contrast{count}-ua"
            )
    search = full = None
    if args.sahara_steps:
        full = sh.generalized_ships(model, harmful, checkpoint=run.path("gships"), progress=True)
        pool = heads_of(ranked(full.scores, args.sahara_pool)) if args.sahara_pool else None
        search = sh.sahara(
            model,
            harmful,
            steps=args.sahara_steps,
            heads=pool,
            checkpoint=run.path("sahara"),
            progress=True,
        )
        entry["generalized_ships_top"] = ranked(full.scores, 10)
        entry["sahara"] = search.chosen()
        entry["sahara_pool"] = len(pool) if pool else None
        for count in COUNTS:
            if count > len(search.heads):
                break
            for short, kind in KINDS.items():
                entry["asr"][f"sahara-{count}-{short}"] = run.asr(
                    asr_prompts, search.heads[:count], kind, f"sahara{count}-{short}"
                )
        entry["datasets"]["generalized_vs_ships"] = overlap(
            full.scores, ships.mean, ("generalized", "ships")
        )
    by_sc = sh.ships(
        model, harmful, kind="scale", checkpoint=run.path("ships", "sc"), progress=True
    )
    entry["datasets"]["ua_vs_sc"] = overlap(ships.mean, by_sc.mean, ("ua", "sc"))
    entry["side_effects"] = {
        "none": run.side_effects(harmless, [], "none"),
        "ships-top3": run.side_effects(harmless, top_ships[:3], "ships3"),
    }
    if search is not None and len(search.heads) >= 3:
        entry["side_effects"]["sahara-3"] = run.side_effects(harmless, search.heads[:3], "sahara3")
    for dataset in filter(None, args.datasets.split(",")):
        other = sh.ships(
            model,
            load_prompts(dataset)[: args.prompts],
            checkpoint=run.path("ships", dataset),
            progress=True,
        )
        entry["datasets"][f"advbench_vs_{dataset}"] = overlap(
            ships.mean, other.mean, ("advbench", dataset)
        )
    truth = planted_heads(read_card(name))
    if truth:
        entry["planted"] = [str(h) for h in truth]
        ranks = {
            "ships_mean": [rank_of(ships.mean, h) for h in truth],
            "ships_topk_frequency": [rank_of(ships.topk_frequency, h) for h in truth],
        }
        if control:
            ranks["ships_contrast"] = [rank_of(ships.contrast, h) for h in truth]
        if full is not None:  # every head's score, not only the pool Sahara searched
            ranks["generalized_ships"] = [rank_of(full.scores, h) for h in truth]
        entry["planted_ranks"] = ranks
        for short, kind in KINDS.items():
            entry["asr"][f"planted-{short}"] = run.asr(
                asr_prompts, list(truth), kind, f"planted-{short}"
            )
        entry["asr"]["planted-first-ua"] = run.asr(
            asr_prompts, list(truth[:1]), "undifferentiated", "planted1-ua"
        )
    return entry


def overlap(a: torch.Tensor, b: torch.Tensor, labels: tuple[str, str]) -> dict:
    """Rank agreement of two head maps: Spearman, top-10 Jaccard and the shared heads."""
    comparison = compare_maps(a, b, labels=labels)
    data = comparison.to_json()
    return {k: data[k] for k in ("spearman", "jaccard", "top_k", "shared", "top_a", "top_b")}


def listing(entries, n: int = 5) -> str:
    return ", ".join(f"{e['layer']}.{e['head']} ({e['score']:.3g})" for e in entries[:n])


def fmt(rate: dict) -> str:
    low, high = rate["ci"]
    return f"{rate['rate']:.2f} [{low:.2f}, {high:.2f}] (n={rate['n']})"


def table(runs: dict) -> list[str]:
    lines = [
        "| ablated | ASR [95% CI] (content judge) | keyword ASR | first answer |",
        "|---|---|---|---|",
    ]
    for key, value in runs.items():
        example = value["example"].replace("|", "/").replace("\n", " ")[:90]
        heads = (
            ", ".join(value["heads"])
            if len(value["heads"]) <= 5
            else f"{len(value['heads'])} heads"
        )
        keyword = f"{value['keyword']['rate']:.2f}" if "keyword" in value else "-"
        lines.append(f"| {key} ({heads or '-'}) | {fmt(value)} | {keyword} | {example} |")
    return lines


def markdown(findings: dict) -> str:
    lines = [
        "# Findings on the organisms",
        "",
        "Generated by `experiments/organism_findings.py`; see its docstring for the settings.",
        "",
    ]
    for name, entry in findings.items():
        if name.startswith("_"):
            continue
        lines += [f"## {name}", "", f"Settings: {json.dumps(entry['settings'])}", ""]
        card = entry.get("card") or {}
        held = [
            f"{key}: {'over-refusal' if key.startswith(('harmless', 'xstest_safe')) else 'refusal'}"
            f" {fmt(value['refusal_rate'])}"
            for key, value in card.items()
            if isinstance(value, dict) and "refusal_rate" in value
        ]
        if held:
            lines += ["Held-out (card): " + "; ".join(held), ""]
        lines += [
            f"- Ships top 5 (mean KL): {listing(entry['ships_top'])}",
            f"- Top-10 frequency top 5: {listing(entry['frequency_top'])}",
        ]
        if entry.get("contrast_top"):
            lines.append(
                f"- Contrast top 5 (harmful - harmless KL): {listing(entry['contrast_top'])}"
            )
        if entry.get("sahara"):
            pool = entry.get("sahara_pool")
            note = f" (steps 2.. among the {pool} best heads of step 1)" if pool else ""
            lines.append(f"- Sahara order (degrees){note}: {listing(entry['sahara'])}")
        if entry.get("planted"):
            ranks = "; ".join(f"{k} {v}" for k, v in entry["planted_ranks"].items())
            lines.append(f"- Planted heads {', '.join(entry['planted'])}: ranks among 270: {ranks}")
        for key, value in entry.get("datasets", {}).items():
            lines.append(
                f"- {key}: Spearman {value['spearman']:.2f}, top-{value['top_k']} Jaccard "
                f"{value['jaccard']:.2f}, shared {value['shared']}"
            )
        lines += ["", "Dataset-level ASR (held-out AdvBench):", ""] + table(entry["asr"])
        lines += ["", "Per-query ASR (each scored prompt with its own top heads ablated):", ""]
        lines += table(entry["per_query"])
        lines += [
            "",
            "Side effects on held-out harmless prompts:",
            "",
            "| ablated | over-refusal [95% CI] (content judge) | keyword | mean KL (nats) |",
            "|---|---|---|---|",
        ]
        for key, value in entry["side_effects"].items():
            keyword = value.get("keyword_over_refusal")
            keyword = f"{keyword['rate']:.2f}" if keyword else "-"
            lines.append(
                f"| {key} ({', '.join(value['heads']) or '-'}) | "
                f"{fmt(value['over_refusal'])} | {keyword} | {value['mean_kl']:.3g} |"
            )
        lines.append("")
    pairs = findings.get("_siblings")
    if pairs:
        lines += (
            ["## Siblings", ""]
            + [
                f"- {key}: Spearman {v['spearman']:.2f}, "
                f"top-{v['top_k']} Jaccard {v['jaccard']:.2f}, "
                f"shared {v['shared']}"
                for key, v in pairs.items()
            ]
            + [""]
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--organisms", default="smollm2-refusal")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--control-prompts", type=int, default=4)
    parser.add_argument("--asr-prompts", type=int, default=24)
    parser.add_argument("--sahara-steps", type=int, default=5, help="0: no Sahara")
    parser.add_argument(
        "--sahara-pool",
        type=int,
        default=30,
        help="steps 2.. among the K best heads of step 1 (0: all heads)",
    )
    parser.add_argument("--datasets", default="", help="other sets for the Ships overlap")
    parser.add_argument(
        "--compare", default="", help="models whose Ships map (only) is measured for the overlap"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in filter(None, args.organisms.split(",")):
        entry = measure(name, args)
        (RESULTS / f"findings-{name}.json").write_text(json.dumps(entry, indent=1) + "\n")
    sets = held_out_prompts()
    harmful = sets["advbench_held_out"][: args.prompts]
    control = sets["harmless_held_out"][: args.control_prompts] or None
    for name in filter(None, args.compare.split(",")):
        sh.ships(
            sh.load_model(name),
            harmful,
            control=control,
            checkpoint=RESULTS / f"ships-{name}.json",
            progress=True,
        )
    findings = {
        path.stem.removeprefix("findings-"): json.loads(path.read_text())
        for path in sorted(RESULTS.glob("findings-*.json"))
    }
    # every pair of UA maps scored on the same prompts, whichever run made them
    groups: dict[tuple[str, ...], dict[str, torch.Tensor]] = {}
    for path in sorted(RESULTS.glob("ships-*.json")):
        result = sh.ShipsResult.load(path)
        if result.info.get("ablation") == "undifferentiated":
            maps = groups.setdefault(tuple(result.prompts), {})
            maps[path.stem.removeprefix("ships-")] = result.mean
    findings["_siblings"] = {
        f"{a}_vs_{b}": overlap(maps[a], maps[b], (a, b))
        for maps in groups.values()
        for a, b in combinations(sorted(maps), 2)
    }
    text = markdown(findings)
    (RESULTS / "findings.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
