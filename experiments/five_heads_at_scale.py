"""ASR of ``smollm2-refusal`` with its top 5 Ships heads ablated, on more prompts than
``organism_findings.py`` uses: the 104 held-out AdvBench prompts that neither scored the
heads nor measured the 16-prompt ASR (16-119), and the 91 held-out JailbreakBench prompts;
Scaling Contribution, Undifferentiated Attention and no ablation, each answer kept::

    python experiments/five_heads_at_scale.py   # about 12 min on 2 CPU cores

The heads are read from ``results/findings-smollm2-refusal.json`` (run that first).
Writes ``results/five-heads-smollm2-refusal.json``.
"""

import json
from pathlib import Path

import torch

import safety_heads as sh
from safety_heads.training import held_out_prompts

RESULTS = Path(__file__).parent / "results"
OUT = RESULTS / "five-heads-smollm2-refusal.json"


def ships_top5() -> list[str]:
    """The top 5 Ships heads that ``organism_findings.py`` measured on ``smollm2-refusal``."""
    findings = json.loads((RESULTS / "findings-smollm2-refusal.json").read_text())
    return [f"{e['layer']}.{e['head']}" for e in findings["ships_top"][:5]]


def main() -> None:
    torch.set_num_threads(2)
    heads = ships_top5()
    model = sh.load_model("smollm2-refusal")
    config = sh.GenerationConfig(max_new_tokens=48, batch_size=16)
    sets = held_out_prompts()
    results = {}
    for name, prompts in (("advbench_16_120", sets["advbench_held_out"][16:]),
                          ("jailbreakbench", sets["jailbreakbench"])):
        for kind in ("scale", "undifferentiated", None):
            ablation = sh.Ablation.of(heads, kind) if kind else None
            result = sh.evaluate_asr(model, prompts, ablation, config=config, progress=False)
            rate = result.asr
            print(name, kind, rate.count, "of", rate.n, f"[{rate.low:.2f}, {rate.high:.2f}]",  # noqa: T201
                  flush=True)
            results[f"{name}-{kind}"] = {
                "successes": rate.count, "n": rate.n, "ci": [rate.low, rate.high],
                "answers": [(r.prompt, r.response, r.attack_success) for r in result.responses],
            }
    OUT.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
