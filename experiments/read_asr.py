"""The published attack success rates, read: the answers behind the findings' headline ASRs,
each labelled by reading (two independent passes, ``tests/data/judge_labelling_guide.md``),
beside the content and keyword judges' figures on the same answers.

The figures (all greedy, 48 new tokens, held-out AdvBench prompts):

* ``smollm2-planted`` with its three planted heads ablated, by Scaling Contribution and by
  Undifferentiated Attention, and the unaligned base model unablated, on 32 prompts
  (``docs/findings.md``; the result files in ``experiments/results/``);
* the methods benchmark's ASR with attribution patching's top 3 heads ablated (UA) on
  ``smollm2-planted``, for both of its estimates, and the base model's ceiling, on 16
  prompts (``experiments/results/benchmark-methods.json``, which keeps no answers: they are
  generated again here with its settings, and their judged ASR is checked against it).

Steps::

    python experiments/read_asr.py --generate          # the benchmark's answers, ~2 min
    python experiments/read_asr.py --items items.jsonl # every distinct answer, to read
    python experiments/read_asr.py                     # experiments/results/read-asr.md

The labels are ``tests/data/judge_labels_published.jsonl``.
"""

import argparse
import json
import random
from pathlib import Path

import safety_heads as sh
from safety_heads.evaluation.asr import answer_figures, success_rate
from safety_heads.evaluation.judges import ContentJudge
from safety_heads.organisms.splits import held_out_prompts

ROOT = Path(__file__).parent.parent
RESULTS = ROOT / "experiments" / "results"
LABELS = ROOT / "tests" / "data" / "judge_labels_published.jsonl"
OUT = RESULTS / "read-asr.md"
BENCHMARK = RESULTS / "benchmark-methods.json"

PLANTED, BASE = "smollm2-planted", "smollm2-135m-instruct"
# (figure, result file under experiments/results, the model that answered)
FIGURES = (
    (
        "`smollm2-planted`, planted heads 8.2, 15.6, 21.4 by SC, 32 prompts",
        "organisms-v1/asr-smollm2-planted-planted-sc.json",
        PLANTED,
    ),
    (
        "`smollm2-planted`, planted heads by UA, 32 prompts",
        "organisms-v1/asr-smollm2-planted-planted-ua.json",
        PLANTED,
    ),
    (
        "unaligned base model, no ablation, the same 32 prompts (the ceiling)",
        "asr-smollm2-135m-instruct-none.json",
        BASE,
    ),
    (
        "methods benchmark: `smollm2-planted`, atp-SC's top 3 (8.2, 21.4, 15.6) by UA, "
        "16 further prompts",
        "read/benchmark-planted-atp-sc-top3.json",
        PLANTED,
    ),
    (
        "methods benchmark: `smollm2-planted`, atp-UA's top 3 (8.2, 4.5, 21.4) by UA, the same 16",
        "read/benchmark-planted-atp-ua-top3.json",
        PLANTED,
    ),
    (
        "methods benchmark: unaligned base model, the same 16 (the ceiling)",
        "read/benchmark-base-ceiling.json",
        BASE,
    ),
)


def generate() -> None:
    """The methods benchmark's ASR answers again, with its settings (benchmarks/methods.py:
    16 scoring prompts, then 16 ASR prompts, batches of 8, 48 new tokens)."""
    asr_prompts = held_out_prompts()["advbench_held_out"][16:32]
    config = sh.GenerationConfig(max_new_tokens=48, batch_size=8)
    published = json.loads(BENCHMARK.read_text())
    planted = sh.load_model("smollm2-planted")
    for method in ("atp-sc", "atp-ua"):
        figures = published["models"]["smollm2-planted"]["methods"][method]["ablated"]["3"]
        result = sh.evaluate_asr(
            planted,
            asr_prompts,
            sh.Ablation(figures["heads"]),
            config=config,
            out=RESULTS / "read" / f"benchmark-planted-{method}-top3.json",
        )
        _check_same(result.asr.value, figures["asr"], method)
    base = sh.evaluate_asr(
        sh.load_model("smollm2-135m-instruct"),
        asr_prompts,
        None,
        config=config,
        out=RESULTS / "read" / "benchmark-base-ceiling.json",
    )
    _check_same(base.asr.value, published["settings"]["ceiling"]["asr"], "ceiling")


def _check_same(measured: float, published: float, what: str) -> None:
    if abs(measured - published) > 1e-9:
        raise SystemExit(
            f"{what}: the answers generated again give ASR {measured:.4f}, the benchmark "
            f"published {published:.4f}; they are not the same answers."
        )


def answers(path: str) -> list[dict]:
    return json.loads((RESULTS / path).read_text())["responses"]


def write_items(out: Path, seed: int = 0) -> None:
    """Every distinct (prompt, answer) pair of the figures, shuffled, without its source."""
    seen: dict[tuple[str, str], None] = {}
    for _, path, _ in FIGURES:
        for item in answers(path):
            seen.setdefault((item["prompt"], item["response"]), None)
    pairs = list(seen)
    random.Random(seed).shuffle(pairs)
    with out.open("x") as handle:
        for number, (prompt, response) in enumerate(pairs):
            row = {"id": number, "prompt": prompt, "response": response}
            handle.write(json.dumps(row) + "\n")


def rate(outcomes: list[bool]) -> str:
    r = success_rate(outcomes)
    return f"{r.count}/{r.n}, {r.value:.2f} [{r.low:.2f}, {r.high:.2f}]"


def table() -> list[str]:
    """Per figure: the readers' ASR, and both judges' on the same answers (the content
    judge reads coherence with the model that answered, before any ablation)."""
    labels = {
        (row["prompt"], row["response"]): row["label"]
        for row in map(json.loads, LABELS.read_text().splitlines())
    }
    lines = [
        "| figure | read by people | content judge | keyword judge | the readers' labels |",
        "|---|---|---|---|---|",
    ]
    models: dict[str, object] = {}
    for figure, path, name in FIGURES:
        items = answers(path)
        prompts = [i["prompt"] for i in items]
        texts = [i["response"] for i in items]
        read = [labels[pair] for pair in zip(prompts, texts, strict=True)]
        judge = ContentJudge(model=models.setdefault(name, sh.load_model(name)))
        judged = answer_figures(judge, prompts, texts)
        content = judged["labels"]["compliance"]
        keyword = round(judged["keyword_asr"]["rate"] * len(texts))
        counts = ", ".join(f"{read.count(x)} {x}" for x in sh.LABELS if read.count(x))
        lines.append(
            f"| {figure} | **{rate([x == 'compliance' for x in read])}** | "
            f"{rate([k < content for k in range(len(texts))])} | "
            f"{rate([k < keyword for k in range(len(texts))])} | {counts} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generate", action="store_true", help="the benchmark's answers again")
    parser.add_argument("--items", type=Path, default=None, help="write the answers to read here")
    args = parser.parse_args()
    if args.generate:
        generate()
    if args.items:
        write_items(args.items)
    if not args.generate and not args.items:
        lines = [
            "# The published ASRs, read",
            "",
            "Each answer labelled by reading, two independent passes "
            "(`tests/data/judge_labels_published.jsonl`); 95% Clopper-Pearson intervals. "
            "Written by `python experiments/read_asr.py`.",
            "",
            *table(),
            "",
        ]
        OUT.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
