"""Answers for the judge's labelled set: the pool that ``tests/data/judge_labels.jsonl``
was drawn from.

Two sources, both greedy, 48 new tokens, chat template:

* every (prompt, answer) pair already in ``experiments/results/asr-*.json`` (held-out
  AdvBench prompts; the organisms with no ablation and with 1 to 5 heads ablated by
  Ships, Sahara, the contrast score or per query, UA and SC);
* new runs on other prompt sets, written to ``experiments/results/judge-*.json``: the
  unaligned base model on held-out JailbreakBench and MaliciousInstruct (coherent
  compliance), ``smollm2-refusal`` with the top 5 Ships heads ablated (UA) on
  MaliciousInstruct, ``smollm2-planted`` with its planted head 8.2 ablated (UA) on
  JailbreakBench, and ``smollm2-refusal-b`` unablated on JailbreakBench.

``python experiments/judge_answers.py --sample 250 110 --out pool.jsonl`` then draws a
sample: 250 answers of the first source and 110 of the new runs, each stratified by file
(an equal share of each), seeded, de-duplicated on the answer text.

A second, fresh set checks the judge on answers written after its rules were frozen, at the
default length of 128 new tokens, on prompts none of the first set used
(``--fresh`` generates them to ``experiments/results/judge128-*.json``, and
``--fresh-out fresh.jsonl`` writes every distinct answer, shuffled, for labelling into
``tests/data/judge_labels_fresh.jsonl``): XSTest's unsafe prompts answered by the unaligned
base model and by ``smollm2-planted`` with its planted heads scaled (SC), held-out
MaliciousInstruct by ``smollm2-refusal-b`` with its top 3 Ships heads ablated (UA), the last
held-out AdvBench prompts by ``smollm2-refusal`` with its top 5 Ships heads scaled (SC), and
held-out JailbreakBench by ``smollm2-refusal`` with its 3 Sahara heads ablated (UA) and by
``smollm2-planted`` unablated.

``--fresh-set 2``, ``3`` and ``4`` make three more such sets (``judge128b-*``,
``judge128c-*``, ``judge128d-*``), each generated and labelled after the judge last
changed: the second after rule 8, the third and fourth after the reader probe
(``experiments/train_reader.py``) was fitted on the four sets before them. Their runs are
listed in ``FRESH_SETS``.
"""

import argparse
import glob
import json
import random
from collections import defaultdict
from pathlib import Path

import safety_heads as sh
from safety_heads.organisms.splits import held_out_prompts

RESULTS = Path(__file__).parent / "results"
RUNS = (
    # (file stem, model, prompt set, heads, count)
    ("judge-base-jailbreakbench", "smollm2-135m-instruct", "jailbreakbench", (), 40),
    ("judge-base-maliciousinstruct", "smollm2-135m-instruct", "maliciousinstruct", (), 40),
    (
        "judge-refusal-ships5-ua-maliciousinstruct",
        "smollm2-refusal",
        "maliciousinstruct",
        ("18.8", "7.2", "18.7", "12.8", "8.8"),
        40,
    ),
    ("judge-planted-8.2-ua-jailbreakbench", "smollm2-planted", "jailbreakbench", ("8.2",), 40),
    ("judge-refusal-b-none-jailbreakbench", "smollm2-refusal-b", "jailbreakbench", (), 40),
)

# (file stem, model, prompts, heads, ablation kind) of the fresh sets, 128 new tokens;
# prompts: a list, or (held-out set, start, stop)
XSTEST_UNSAFE = sh.load_prompts("xstest-unsafe", shuffle=True, seed=0)
FRESH_SETS = {
    # the first: labelled after the rules were frozen (tests/data/judge_labels_fresh.jsonl)
    1: (
        (
            "judge128-base-xstest",
            "smollm2-135m-instruct",
            XSTEST_UNSAFE[:40],
            (),
            "undifferentiated",
        ),
        (
            "judge128-planted-3-sc-xstest",
            "smollm2-planted",
            XSTEST_UNSAFE[40:80],
            ("8.2", "15.6", "21.4"),
            "scale",
        ),
        (
            "judge128-refusal-b-ships3-ua-maliciousinstruct",
            "smollm2-refusal-b",
            ("maliciousinstruct", -40, None),
            ("18.8", "11.3", "7.2"),
            "undifferentiated",
        ),
        (
            "judge128-refusal-ships5-sc-advbench",
            "smollm2-refusal",
            ("advbench_held_out", -40, None),
            ("18.8", "7.2", "18.7", "12.8", "8.8"),
            "scale",
        ),
        (
            "judge128-refusal-sahara3-ua-jailbreakbench",
            "smollm2-refusal",
            ("jailbreakbench", -40, None),
            ("7.2", "11.3", "8.0"),
            "undifferentiated",
        ),
        (
            "judge128-planted-none-jailbreakbench",
            "smollm2-planted",
            ("jailbreakbench", -40, None),
            (),
            "undifferentiated",
        ),
    ),
    # the second: labelled after the "asked for a way, states none" rule was added
    # (tests/data/judge_labels_fresh2.jsonl)
    2: (
        (
            "judge128b-base-xstest",
            "smollm2-135m-instruct",
            XSTEST_UNSAFE[80:120],
            (),
            "undifferentiated",
        ),
        (
            "judge128b-planted-atp-ua-xstest",
            "smollm2-planted",
            XSTEST_UNSAFE[120:160],
            ("8.2", "4.5", "21.4"),
            "undifferentiated",
        ),
        (
            "judge128b-planted-3-sc-maliciousinstruct",
            "smollm2-planted",
            ("maliciousinstruct", 40, 80),
            ("8.2", "15.6", "21.4"),
            "scale",
        ),
        (
            "judge128b-refusal-b-ships5-sc-advbench",
            "smollm2-refusal-b",
            ("advbench_held_out", 32, 72),
            ("18.8", "11.3", "7.2", "26.8", "15.8"),
            "scale",
        ),
        (
            "judge128b-base-harmfulwriting",
            "smollm2-135m-instruct",
            sh.load_prompts("harmfulwriting")[:40],
            (),
            "undifferentiated",
        ),
    ),
    # the third: labelled after the reader probe was frozen (tests/data/judge_labels_fresh3.jsonl)
    3: (
        (
            "judge128c-base-xstest",
            "smollm2-135m-instruct",
            XSTEST_UNSAFE[160:],
            (),
            "undifferentiated",
        ),
        (
            "judge128c-planted-3-ua-harmfulwriting",
            "smollm2-planted",
            sh.load_prompts("harmfulwriting")[40:],
            ("8.2", "15.6", "21.4"),
            "undifferentiated",
        ),
        (
            "judge128c-refusal-ships3-sc-maliciousinstruct",
            "smollm2-refusal",
            ("maliciousinstruct", 0, 40),
            ("18.8", "7.2", "18.7"),
            "scale",
        ),
        (
            "judge128c-planted-8.2-sc-jailbreakbench",
            "smollm2-planted",
            ("jailbreakbench", 0, 40),
            ("8.2",),
            "scale",
        ),
        (
            "judge128c-refusal-b-ships5-ua-xstest",
            "smollm2-refusal-b",
            XSTEST_UNSAFE[:40],
            ("18.8", "11.3", "7.2", "26.8", "15.8"),
            "undifferentiated",
        ),
    ),
    # the fourth: a second check of the same frozen judge and reader probe
    # (tests/data/judge_labels_fresh4.jsonl)
    4: (
        (
            "judge128d-base-harmbench",
            "smollm2-135m-instruct",
            sh.load_prompts("harmbench")[150:190],
            (),
            "undifferentiated",
        ),
        (
            "judge128d-base-donotanswer",
            "smollm2-135m-instruct",
            sh.load_prompts("donotanswer", shuffle=True, seed=0)[:40],
            (),
            "undifferentiated",
        ),
        (
            "judge128d-planted-3-sc-advbench",
            "smollm2-planted",
            ("advbench_held_out", 80, 120),
            ("8.2", "15.6", "21.4"),
            "scale",
        ),
        (
            "judge128d-refusal-b-ships3-ua-jailbreakbench",
            "smollm2-refusal-b",
            ("jailbreakbench", 51, 91),
            ("18.8", "11.3", "7.2"),
            "undifferentiated",
        ),
    ),
}
FRESH_PREFIX = {1: "judge128-", 2: "judge128b-", 3: "judge128c-", 4: "judge128d-"}


def generate_runs() -> None:
    sets = held_out_prompts()
    config = sh.GenerationConfig(max_new_tokens=48, batch_size=8)
    loaded: dict[str, object] = {}
    for stem, name, dataset, heads, count in RUNS:
        model = loaded.setdefault(name, sh.load_model(name))
        ablation = sh.Ablation(heads) if heads else None
        sh.evaluate_asr(
            model,
            sets[dataset][:count],
            ablation,
            config=config,
            judge="keyword",
            out=RESULTS / f"{stem}.json",
        )


def generate_fresh_runs(number: int) -> None:
    sets = held_out_prompts()
    config = sh.GenerationConfig(max_new_tokens=128, batch_size=8)
    loaded: dict[str, object] = {}
    for stem, name, prompts, heads, kind in FRESH_SETS[number]:
        if isinstance(prompts, tuple):
            source, start, stop = prompts
            prompts = sets[source][start:stop]
        model = loaded.setdefault(name, sh.load_model(name))
        ablation = sh.Ablation(heads, kind) if heads else None
        sh.evaluate_asr(
            model, prompts, ablation, config=config, judge="keyword", out=RESULTS / f"{stem}.json"
        )


def pairs(*patterns: str) -> list[dict[str, str]]:
    """Every distinct (prompt, answer) pair of the result files matching ``patterns`` (the
    first set's pool by default), with the file it came from."""
    seen = set()
    rows = []
    files = [
        f for p in patterns or ("asr-*.json", "judge-*.json") for f in glob.glob(str(RESULTS / p))
    ]
    for path in sorted(files):
        for item in json.loads(Path(path).read_text())["responses"]:
            key = item["response"].strip()
            if key in seen:
                continue
            seen.add(key)
            rows.append(
                {"source": Path(path).stem, "prompt": item["prompt"], "response": item["response"]}
            )
    return rows


def sample(rows: list[dict[str, str]], size: int, seed: int = 0) -> list[dict[str, str]]:
    """``size`` rows, an equal share from each source file where it has enough."""
    by_source = defaultdict(list)
    for row in rows:
        by_source[row["source"]].append(row)
    rng = random.Random(seed)
    for group in by_source.values():
        rng.shuffle(group)
    chosen: list[dict[str, str]] = []
    depth = 0
    while len(chosen) < size:
        added = False
        for source in sorted(by_source):
            if depth < len(by_source[source]) and len(chosen) < size:
                chosen.append(by_source[source][depth])
                added = True
        if not added:
            break
        depth += 1
    rng.shuffle(chosen)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generate", action="store_true", help="run the new generations")
    parser.add_argument(
        "--sample",
        type=int,
        nargs=2,
        default=None,
        metavar=("OLD", "NEW"),
        help="draw this many answers of the earlier runs and of the new ones",
    )
    parser.add_argument("--out", type=Path, default=Path("judge-pool.jsonl"))
    parser.add_argument("--fresh", action="store_true", help="run a fresh set's generations")
    parser.add_argument("--fresh-out", type=Path, default=None, help="write a fresh set here")
    parser.add_argument("--fresh-set", type=int, choices=sorted(FRESH_SETS), default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.generate:
        generate_runs()
    if args.fresh:
        generate_fresh_runs(args.fresh_set)
    if args.fresh_out:
        rows = pairs(f"{FRESH_PREFIX[args.fresh_set]}*.json")
        random.Random(args.seed).shuffle(rows)
        with args.fresh_out.open("x") as handle:
            for number, row in enumerate(rows):
                handle.write(json.dumps({"id": number, **row}) + "\n")
    if args.sample:
        every = pairs()
        old = [row for row in every if row["source"].startswith("asr-")]
        new = [row for row in every if row["source"].startswith("judge-")]
        rows = sample(old, args.sample[0], args.seed) + sample(new, args.sample[1], args.seed)
        random.Random(args.seed).shuffle(rows)
        with args.out.open("x") as handle:
            for number, row in enumerate(rows):
                handle.write(json.dumps({"id": number, **row}) + "\n")


if __name__ == "__main__":
    main()
