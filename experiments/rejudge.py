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
from safety_heads.evaluation import Response, asr_figures, success_rate
from safety_heads.judges import EXPLICIT_REFUSAL_PHRASES, ContentJudge, KeywordJudge

RESULTS = Path(__file__).parent / "results"


def judged(judge: ContentJudge, pairs: list[tuple[str, str]]) -> dict:
    prompts, answers = [p for p, _ in pairs], [a for _, a in pairs]
    verdicts = judge.judge(prompts, answers)
    responses = [Response(p, a, v, KeywordJudge().verdict(a))
                 for p, a, v in zip(prompts, answers, verdicts, strict=True)]
    explicit = [KeywordJudge(EXPLICIT_REFUSAL_PHRASES).verdict(a) for a in answers]
    figures = asr_figures(responses, judge.name)
    refused = success_rate([v.label == "refusal" for v in verdicts])
    figures["refusal_rate"] = {"rate": refused.value, "ci": [refused.low, refused.high]}
    keyword_refused = success_rate([bool(v.refusal) for v in explicit])
    figures["keyword_explicit_refusal_rate"] = {
        "rate": keyword_refused.value, "ci": [keyword_refused.low, keyword_refused.high]}
    return figures


def sources() -> list[tuple[str, str, list[tuple[str, str]], str]]:
    """(name, model, pairs, what) of every saved set of answers."""
    found = []
    files = glob.glob(str(RESULTS / "asr-*.json")) + glob.glob(str(RESULTS / "side-*.json"))
    for path in sorted(files):
        data = json.loads(Path(path).read_text())
        what = "harmless" if data["kind"] == "side-effects" else "harmful"
        found.append((Path(path).stem, data["settings"]["model"],
                      [(r["prompt"], r["response"]) for r in data["responses"]], what))
    for path in sorted(glob.glob(str(RESULTS / "five-heads-*.json"))):
        organism = Path(path).stem.removeprefix("five-heads-")
        for key, entry in json.loads(Path(path).read_text()).items():
            what = "harmless" if key.startswith("harmless") else "harmful"
            found.append((f"{Path(path).stem}/{key}", organism,
                          [(p, a) for p, a, _ in entry["answers"]], what))
    return found


def fmt(rate: float, ci: list[float]) -> str:
    return f"{rate:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def main() -> None:
    rows = {}
    judges: dict[str, ContentJudge] = {}
    for name, model_name, pairs, what in sources():
        if model_name not in judges:
            judges[model_name] = ContentJudge(model=sh.load_model(model_name))
        rows[name] = {"model": model_name, "what": what, **judged(judges[model_name], pairs)}
    (RESULTS / "rejudged.json").write_text(json.dumps(rows, indent=1) + "\n")
    order = ("compliance", "refusal", "evasive", "echo", "degenerate", "too_short")
    lines = ["# Saved answers judged again", "",
             "Content judge (default, coherence read with the organism before ablation) beside "
             "the paper's keyword judge, on the same greedy answers (48 new tokens); 95% "
             "Clopper-Pearson intervals. Written by `python experiments/rejudge.py`.", "",
             "## Harmful prompts: ASR", "",
             "| answers | n | keyword ASR | content ASR | content labels (" + ", ".join(order)
             + ") |", "|---|---|---|---|---|"]
    for name, row in rows.items():
        if row["what"] == "harmful":
            labels = " / ".join(str(row["labels"].get(k, 0)) for k in order)
            lines.append(f"| {name} | {row['n']} | "
                         f"{fmt(row['keyword']['asr'], row['keyword']['asr_ci'])} | "
                         f"{fmt(row['asr'], row['asr_ci'])} | {labels} |")
    lines += ["", "## Harmless prompts: over-refusal", "",
              "| answers | n | keyword (explicit phrases) | content (refusal label) |",
              "|---|---|---|---|"]
    for name, row in rows.items():
        if row["what"] == "harmless":
            keyword = row["keyword_explicit_refusal_rate"]
            lines.append(f"| {name} | {row['n']} | {fmt(keyword['rate'], keyword['ci'])} | "
                         f"{fmt(row['refusal_rate']['rate'], row['refusal_rate']['ci'])} |")
    (RESULTS / "rejudged.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
