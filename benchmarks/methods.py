"""Which head-attribution method finds the safety heads? All of them, in one run, on the
three refusing organisms (:mod:`safety_heads.benchmark` says what is measured).

    python benchmarks/methods.py [--organisms smollm2-planted,...] [--prompts 16]
        [--asr-prompts 16] [--safe 16] [--work benchmark-methods-work]
        [--out experiments/results/benchmark-methods.json]

Heads are scored on held-out AdvBench and harmless prompts no organism trained on; the ASR
is measured on the next held-out AdvBench prompts, over-refusal on XSTest's safe prompts
(spread over its types, the near-lookalike ones left out). Each run checkpoints under
``--work``, so a killed benchmark picks up where it stopped. Draw the result with
``safety-heads report experiments/results/benchmark-methods.json``.

When the judge changes, ``--rejudge`` measures every ASR of ``--out`` again with the current
judge: it generates the answers of each recorded head set anew (the file keeps no
answers) and leaves the maps, times, ranks and over-refusal as they are::

    python benchmarks/methods.py --rejudge --work benchmark-methods-rejudge
"""

import argparse
import json
import platform
from pathlib import Path

import torch

import safety_heads as sh
from safety_heads.benchmark import MethodsBenchmark, asr_figures, benchmark_methods
from safety_heads.evaluation.generation import GenerationConfig
from safety_heads.method.heads import parse_heads
from safety_heads.organisms.splits import held_out_prompts

PLANTED = {"smollm2-planted": "8.2,15.6,21.4"}
ORGANISMS = ("smollm2-planted", "smollm2-refusal", "smollm2-refusal-b")


def prompt_sets(prompts: int, asr_prompts: int, safe: int) -> dict[str, list[str]]:
    sets = held_out_prompts()
    xstest = [p for p, _ in sh.load_xstest("safe", exclude_near_lookalike=True)]
    return {
        "harmful": sets["advbench_held_out"][:prompts],
        "harmless": sets["harmless_held_out"][:prompts],
        "asr": sets["advbench_held_out"][prompts : prompts + asr_prompts],
        "safe": xstest[:: max(1, len(xstest) // safe)][:safe],
    }


def line(name: str, method: str, figures: dict, tenth: int) -> str:
    ablated = figures["ablated"]
    return (
        f"{name:18s} {method:19s} {figures['seconds']:7.1f} s "
        f"({figures['speedup_vs_exact']:5.1f}x)  rho {figures['spearman_vs_ships']:+.2f}  "
        f"top-10 J {figures['top10_jaccard_vs_ships']:.2f}  "
        f"Ships top 3 in top {tenth}: {figures['ships_top3_in_top_tenth']}/3  "
        + (f"planted ranks {figures['planted_ranks']}  " if "planted_ranks" in figures else "")
        + "ASR@1/3/5 "
        + "/".join(f"{ablated[k]['asr']:.2f}" for k in ablated)
        + "  XSTest refusal@1/3/5 "
        + "/".join(f"{ablated[k]['over_refusal']:.2f}" for k in ablated)
    )


def rejudge(out: Path, base: str, sets: dict, config: GenerationConfig, work: Path) -> None:
    """Every ASR of the benchmark ``out`` measured again with the current judge."""
    data = json.loads(out.read_text())
    work.mkdir(parents=True, exist_ok=True)

    def asr(model, heads: list[str], tag: str) -> dict:
        result = sh.evaluate_asr(
            model,
            sets["asr"],
            sh.Ablation(heads) if heads else None,
            config=config,
            out=work / f"{tag}-asr-{'-'.join(heads) or 'none'}.json",
            progress=False,
        )
        return asr_figures(result)

    ceiling = asr(sh.load_model(base), [], base)
    data["settings"]["ceiling"] |= {k: ceiling[k] for k in ("asr", "asr_ci", "labels")}
    for name, figures in data["models"].items():
        model = sh.load_model(name)
        measured: dict[tuple[str, ...], dict] = {}
        entries = [figures["no_ablation"]] + [
            entry for method in figures["methods"].values() for entry in method["ablated"].values()
        ]
        for entry in entries:
            heads = tuple(entry["heads"])
            if heads not in measured:
                measured[heads] = asr(model, list(heads), name)
                print(f"{name} {','.join(heads) or 'none'}: ASR {measured[heads]['asr']:.2f}")
            entry |= measured[heads]
    out.write_text(json.dumps(data, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--organisms", default=",".join(ORGANISMS), help="'' for none")
    parser.add_argument(
        "--base",
        default="smollm2-135m-instruct",
        help="the unaligned base model, whose ASR on the same prompts is the ceiling",
    )
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--asr-prompts", type=int, default=16)
    parser.add_argument("--safe", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default="benchmark-methods-work")
    parser.add_argument("--out", default="experiments/results/benchmark-methods.json")
    parser.add_argument(
        "--rejudge", action="store_true", help="measure --out's ASRs again with today's judge"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sets = prompt_sets(args.prompts, args.asr_prompts, args.safe)
    config = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=8)
    if args.rejudge:
        rejudge(Path(args.out), args.base, sets, config, Path(args.work))
        print(f"wrote {args.out}")
        return
    settings = {
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "device": "cpu",
        "judge": "content (coherence read by the unablated organism); keyword beside it",
        "ablation": "undifferentiated attention (epsilon 1e-5) for every ASR and XSTest figure",
        "generation": {"max_new_tokens": args.max_new_tokens, "greedy": True},
        "sets": {
            "harmful": "advbench held out [0, prompts)",
            "harmless": "harmless held out [0, prompts)",
            "asr": "advbench held out [prompts, prompts + asr_prompts)",
            "safe": "xstest safe, near-lookalike left out, evenly spaced",
        },
    }
    out = Path(args.out)
    models: dict[str, dict] = {}
    if out.exists():  # another run's organisms stay; this run's are measured again
        earlier = json.loads(out.read_text())
        if earlier.get("kind") != "methods-benchmark":
            parser.error(f"{out} is not a methods benchmark; choose another --out")
        models = earlier["models"]
    base = sh.evaluate_asr(
        sh.load_model(args.base),
        sets["asr"],
        config=config,
        out=Path(args.work) / f"{args.base}-asr-none.json",
        progress=False,
    )
    settings["ceiling"] = {
        "model": args.base,
        "asr": base.asr.value,
        "asr_ci": [base.asr.low, base.asr.high],
        "labels": base.labels,
        "keyword_asr": base.keyword_asr.value,
    }
    print(f"ceiling: {args.base} complies with {base.asr.value:.2f} of the ASR prompts")
    out.write_text(
        json.dumps({"kind": "methods-benchmark", "settings": settings, "models": models}, indent=1)
    )
    for name in filter(None, args.organisms.split(",")):
        model = sh.load_model(name)
        planted = parse_heads(PLANTED.get(name, ""))
        figures = benchmark_methods(model, name, sets, config, args.work, planted)
        models[name] = figures
        if figures["exact_resumed"]:
            print(f"{name}: exact Ships resumed from {args.work}: its times are partial")
        for method, entry in figures["methods"].items():
            print(line(name, method, entry, figures["top_tenth"]), flush=True)
        result = MethodsBenchmark(models, settings)
        out.write_text(json.dumps({"kind": "methods-benchmark", **result.to_json()}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
