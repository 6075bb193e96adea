"""Every saved answer of the findings, judged again: the default content judge (coherence
read with the organism that wrote the answers, before any ablation) beside the paper's
keyword judge, on the same answers; no answer is generated again.

Reads ``experiments/results/asr-*.json`` (ASR runs), ``side-*.json`` (harmless prompts:
over-refusal) and ``five-heads-*.json``; writes ``experiments/results/rejudged.json`` and
the tables of ``experiments/results/rejudged.md``::

    python experiments/rejudge.py          # about 4 min on a 2-core CPU
"""

import glob
import json
from pathlib import Path

import safety_heads as sh
from safety_heads.evaluation.asr import answer_figures
from safety_heads.evaluation.judges import ContentJudge

RESULTS = Path(__file__).parent / "results"


def sources() -> list[tuple[str, str, list[tuple[str, str]], str]]:
    """(name, model, pairs, what) of every saved set of answers."""
    found = []
    files = glob.glob(str(RESULTS / "asr-*.json")) + glob.glob(str(RESULTS / "side-*.json"))
    for path in sorted(files):
        data = json.loads(Path(path).read_text())
        what = "harmless" if data["kind"] == "side-effects" else "harmful"
        found.append(
            (
                Path(path).stem,
                data["settings"]["model"],
                [(r["prompt"], r["response"]) for r in data["responses"]],
                what,
            )
        )
    for path in sorted(glob.glob(str(RESULTS / "five-heads-*.json"))):
        organism = Path(path).stem.removeprefix("five-heads-")
        for key, entry in json.loads(Path(path).read_text()).items():
            what = "harmless" if key.startswith("harmless") else "harmful"
            found.append(
                (
                    f"{Path(path).stem}/{key}",
                    organism,
                    [(p, a) for p, a, _ in entry["answers"]],
                    what,
                )
            )
    return found


def fmt(rate: dict) -> str:
    return f"{rate['rate']:.2f} [{rate['ci'][0]:.2f}, {rate['ci'][1]:.2f}]"


def main() -> None:
    rows = {}
    judges: dict[str, ContentJudge] = {}
    for name, model_name, pairs, what in sources():
        if model_name not in judges:
            judges[model_name] = ContentJudge(model=sh.load_model(model_name))
        figures = answer_figures(judges[model_name], [p for p, _ in pairs], [a for _, a in pairs])
        rows[name] = {"model": model_name, "what": what, "n": len(pairs), **figures}
    (RESULTS / "rejudged.json").write_text(json.dumps(rows, indent=1) + "\n")
    order = ("compliance", "refusal", "evasive", "echo", "degenerate", "too_short")
    lines = [
        "# Saved answers judged again",
        "",
        "Content judge (default, coherence read with the organism before ablation) beside "
        "the paper's keyword judge, on the same greedy answers (48 new tokens); 95% "
        "Clopper-Pearson intervals. Written by `python experiments/rejudge.py`.",
        "",
        "## Harmful prompts: ASR",
        "",
        "| answers | n | keyword ASR | content ASR | content labels (" + ", ".join(order) + ") |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        if row["what"] == "harmful":
            labels = " / ".join(str(row["labels"].get(k, 0)) for k in order)
            lines.append(
                f"| {name} | {row['n']} | {fmt(row['keyword_asr'])} | "
                f"{fmt(row['asr'])} | {labels} |"
            )
    lines += [
        "",
        "## Harmless prompts: over-refusal",
        "",
        "| answers | n | keyword (explicit phrases) | content (refusal label) |",
        "|---|---|---|---|",
    ]
    for name, row in rows.items():
        if row["what"] == "harmless":
            lines.append(
                f"| {name} | {row['n']} | {fmt(row['keyword_explicit_refusal_rate'])} "
                f"| {fmt(row['refusal_rate'])} |"
            )
    (RESULTS / "rejudged.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
