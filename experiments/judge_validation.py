"""The judges against the labelled sets: confusion matrices of the default content judge and
of the paper's keyword judge on ``tests/data/judge_labels.jsonl`` (360 answers of 48 tokens
labelled by reading, two passes; see ``tests/data/judge_labelling_guide.md``) and on
``tests/data/judge_labels_fresh.jsonl`` (200 answers of 128 tokens to prompts the first set
never used, generated and labelled after the judge's rules were frozen: its out-of-sample
check), ``tests/data/judge_labels_fresh2.jsonl`` (167 more, generated and labelled after
the one rule added since, "asked for a way, states none") and
``tests/data/judge_labels_fresh3.jsonl`` and ``..._fresh4.jsonl`` (generated and labelled
after the reader probe was fitted on the four sets before them: there the content judge
with the reader, ``--judge reader``, is measured too), and the targets.

Coherence is read with the model that wrote each answer, as in an evaluation. Writes
``experiments/results/judge-validation.md``::

    python experiments/judge_validation.py      # about 1 min on a 2-core CPU
"""

import json
from collections import defaultdict
from pathlib import Path

import safety_heads as sh
from safety_heads.evaluation.judges import ContentJudge, KeywordJudge

ROOT = Path(__file__).parent.parent
LABELLED = ROOT / "tests" / "data" / "judge_labels.jsonl"
FRESH = ROOT / "tests" / "data" / "judge_labels_fresh.jsonl"
FRESH2 = ROOT / "tests" / "data" / "judge_labels_fresh2.jsonl"
FRESH3 = ROOT / "tests" / "data" / "judge_labels_fresh3.jsonl"
FRESH4 = ROOT / "tests" / "data" / "judge_labels_fresh4.jsonl"
OUT = ROOT / "experiments" / "results" / "judge-validation.md"
ORDER = ("refusal", "compliance", "degenerate", "echo", "evasive", "too_short")
FAILURES = ("degenerate", "echo", "evasive")


SOURCE_MODELS = (  # the prefix of a source run's file name -> the model that answered
    ("asr-smollm2-planted-", "smollm2-planted"),
    ("asr-smollm2-refusal-", "smollm2-refusal"),
    ("judge-base-", "smollm2-135m-instruct"),
    ("judge-planted-", "smollm2-planted"),
    ("judge-refusal-b-", "smollm2-refusal-b"),
    ("judge-refusal-", "smollm2-refusal"),
    ("judge128-base-", "smollm2-135m-instruct"),
    ("judge128-planted-", "smollm2-planted"),
    ("judge128-refusal-b-", "smollm2-refusal-b"),
    ("judge128-refusal-", "smollm2-refusal"),
    ("judge128b-base-", "smollm2-135m-instruct"),
    ("judge128b-planted-", "smollm2-planted"),
    ("judge128b-refusal-b-", "smollm2-refusal-b"),
    ("judge128c-base-", "smollm2-135m-instruct"),
    ("judge128c-planted-", "smollm2-planted"),
    ("judge128c-refusal-b-", "smollm2-refusal-b"),
    ("judge128c-refusal-", "smollm2-refusal"),
    ("judge128d-base-", "smollm2-135m-instruct"),
    ("judge128d-planted-", "smollm2-planted"),
    ("judge128d-refusal-b-", "smollm2-refusal-b"),
)


def model_of(source: str) -> str:
    """The model that wrote the answers of a source run of the labelled set."""
    return next(model for prefix, model in SOURCE_MODELS if source.startswith(prefix))


def predictions(rows: list[dict], reader: bool = False) -> dict[str, list[str]]:
    """Each judge's label of each row (with ``reader``, also the content judge with the
    reader probe: only on a set the probe was not trained on)."""
    judged: dict[str, dict[int, str]] = {"content": {}, "content + reader": {}}
    by_model = defaultdict(list)
    for row in rows:
        by_model[model_of(row["source"])].append(row)
    for name, group in by_model.items():
        model = sh.load_model(name)
        for judge_name, with_reader in (("content", False), ("content + reader", True)):
            if with_reader and not reader:
                continue
            judge = ContentJudge(model=model, reader=with_reader)
            verdicts = judge.judge([r["prompt"] for r in group], [r["response"] for r in group])
            judged[judge_name].update(
                {r["id"]: v.label for r, v in zip(group, verdicts, strict=True)}
            )
    out = {name: [labels[r["id"]] for r in rows] for name, labels in judged.items() if labels}
    return {**out, "keyword": [KeywordJudge().verdict(r["response"]).label for r in rows]}


def summary(rows: list[dict], predicted: list[str]) -> dict[str, float | str]:
    gold = [r["label"] for r in rows]
    pairs = list(zip(gold, predicted, strict=True))
    success = [p == "compliance" for p in predicted]

    def share(selected: list[bool]) -> str:
        chosen = [s for s, keep in zip(success, selected, strict=True) if keep]
        if not chosen:
            return "0/0"
        return f"{sum(chosen)}/{len(chosen)} ({sum(chosen) / len(chosen):.1%})"

    agree = sum((g == "compliance") == s for g, s in zip(gold, success, strict=True))
    return {
        "accuracy (comply or not)": f"{agree / len(rows):.3f}",
        "label accuracy": f"{sum(g == p for g, p in pairs) / len(rows):.3f}",
        "refusals judged successes": share([g == "refusal" for g in gold]),
        "degenerate/echo/evasive judged successes": share([g in FAILURES for g in gold]),
        "compliance recall": share([g == "compliance" for g in gold]),
    }


def matrix(rows: list[dict], predicted: list[str]) -> list[str]:
    seen = [label for label in (*ORDER, "other") if label in predicted]
    lines = ["| read as \\ judged | " + " | ".join(seen) + " |", "|---|" + "---|" * len(seen)]
    for gold in ORDER:
        counts = [
            sum(r["label"] == gold and p == label for r, p in zip(rows, predicted, strict=True))
            for label in seen
        ]
        lines.append(f"| {gold} | " + " | ".join(str(c) for c in counts) + " |")
    return lines


def section(
    title: str, rows: list[dict], parts: dict[str, list[dict]], reader: bool = False
) -> list[str]:
    """The judges' measures on ``rows`` and on each part of them, and their matrices."""
    predicted = predictions(rows, reader)
    lines = [f"# {title}", ""]
    for judge, labels in predicted.items():
        lines += [
            f"## {judge} judge",
            "",
            "| measure | " + " | ".join(parts) + " |",
            "|---|" + "---|" * len(parts),
        ]
        by_part = {}
        for part, chosen in parts.items():
            ids = {r["id"] for r in chosen}
            by_part[part] = summary(
                chosen, [p for r, p in zip(rows, labels, strict=True) if r["id"] in ids]
            )
        for measure in by_part["all"]:
            lines.append(
                f"| {measure} | " + " | ".join(str(by_part[h][measure]) for h in parts) + " |"
            )
        lines += ["", "Confusion matrix (rows: the readers' label; columns: the judge's):", ""]
        lines += matrix(rows, labels) + [""]
    return lines


def main() -> None:
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    lines = [
        "# The judges on the labelled sets",
        "",
        "Labels resolved from two reading passes. Written by "
        "`python experiments/judge_validation.py`.",
        "",
    ]
    lines += section(
        f"The labelled set: {len(rows)} answers of 48 tokens (`tests/data/judge_labels.jsonl`)",
        rows,
        {
            "all": rows,
            "even ids": [r for r in rows if r["id"] % 2 == 0],
            "odd ids": [r for r in rows if r["id"] % 2 == 1],
        },
    )
    for number, path in ((1, FRESH), (2, FRESH2), (3, FRESH3), (4, FRESH4)):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        sources = sorted({r["source"] for r in rows})
        lines += section(
            f"Fresh set {number}: {len(rows)} answers of 128 tokens, out of sample "
            f"(`tests/data/{path.name}`)",
            rows,
            {"all": rows, **{s: [r for r in rows if r["source"] == s] for s in sources}},
            reader=number >= 3,  # the reader probe was fitted on the four sets before
        )
    OUT.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
