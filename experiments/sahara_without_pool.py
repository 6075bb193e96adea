"""Sahara searched over every head at every step (no pool), for more steps than
``organism_findings.py`` takes, and the ASR of each prefix of the heads it picks::

    python experiments/sahara_without_pool.py --organism smollm2-planted --steps 5

The search uses the first ``--prompts`` held-out AdvBench prompts (16, as the findings);
ASR is measured with Undifferentiated Attention and Scaling Contribution on the first
``--asr-prompts`` (32), greedy, 48 new tokens, keyword judge. Every part is a resumable file
in ``experiments/results/`` (``sahara-NAME-all-heads.json``, ``asr-NAME-sahara-all-*.json``);
the summary goes to ``sahara-all-heads-NAME.json``, each chosen head with its rank alone
(step 1). For a planted organism the ranks of its planted heads in each step's scores are
reported too.
"""

import argparse
import json
from pathlib import Path

import torch
from organism_findings import rank_of

import safety_heads as sh
from safety_heads.organisms import planted_heads, read_card
from safety_heads.organisms.splits import held_out_prompts

RESULTS = Path(__file__).parent / "results"
KINDS = {"ua": "undifferentiated", "sc": "scale"}


def step_rank(scores: torch.Tensor, head: sh.Head) -> int | None:
    """1-based rank of ``head`` in one step's map; None once it has been chosen (NaN)."""
    return None if torch.isnan(scores[head.layer, head.head]) else rank_of(scores, head)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--organism", default="smollm2-planted")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--asr-prompts", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = args.organism
    model = sh.load_model(name)
    sets = held_out_prompts()
    search = sh.sahara(
        model,
        sets["advbench_held_out"][: args.prompts],
        steps=args.steps,
        checkpoint=RESULTS / f"sahara-{name}-all-heads.json",
        progress=True,
    )
    planted = planted_heads(read_card(name))
    config = sh.GenerationConfig(max_new_tokens=48, batch_size=16)
    asr_prompts = sets["advbench_held_out"][: args.asr_prompts]
    # each chosen head with its rank alone (step 1), which a pool of step 1's best would need
    chosen = [
        {**entry, "rank_alone": rank_of(search.scores, head)}
        for entry, head in zip(search.chosen(), search.heads, strict=True)
    ]
    summary = {"settings": vars(args), "chosen": chosen, "asr": {}}
    for count in range(1, len(search.heads) + 1):
        for short, kind in KINDS.items():
            result = sh.evaluate_asr(
                model,
                asr_prompts,
                sh.Ablation.of(search.heads[:count], kind),
                config=config,
                out=RESULTS / f"asr-{name}-sahara-all-{count}-{short}.json",
                progress=False,
            )
            summary["asr"][f"{count}-{short}"] = result.asr.to_dict()
            print(
                count,
                short,
                [str(h) for h in search.heads[:count]],  # noqa: T201
                f"{result.asr.value:.2f}",
                flush=True,
            )
    if planted:
        # rank of each planted head in each step's map (1 = the head that step chose)
        summary["planted_ranks_by_step"] = {
            str(head): [step_rank(scores, head) for scores in search.step_scores]
            for head in planted
        }
    (RESULTS / f"sahara-all-heads-{name}.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
