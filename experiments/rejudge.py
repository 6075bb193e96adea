"""Every saved answer of the findings, judged again: the default content judge (coherence
read with the organism that wrote the answers, before any ablation) beside the paper's
keyword judge, on the same answers; no answer is generated again.

Reads the ``asr-*.json`` (ASR runs), ``side-*.json`` (harmless prompts:
over-refusal) and ``five-heads-*.json`` of a folder (``--results``, default
``experiments/results``); writes its ``rejudged.json`` and
the tables of its ``rejudged.md``::

    python experiments/rejudge.py          # about 4 min on a 2-core CPU
    python experiments/rejudge.py --results experiments/results/organisms-v1
"""

import argparse
import glob
import json
from pathlib import Path

import safety_heads as sh
from safety_heads.evaluation.asr import answer_figures
from safety_heads.evaluation.judges import ContentJudge
from safety_heads.models.chat_model import model_identity

RESULTS = Path(__file__).parent / "results"


def sources(results: Path) -> list[tuple[str, str, list[tuple[str, str]], str, str | None]]:
    """(name, model, pairs, what, weights) of every saved set of answers; ``weights``: the
    digest of the weights that wrote them (None where the file does not record it)."""
    found = []
    files = glob.glob(str(results / "asr-*.json")) + glob.glob(str(results / "side-*.json"))
    for path in sorted(files):
        data = json.loads(Path(path).read_text())
        what = "harmless" if data["kind"] == "side-effects" else "harmful"
        found.append(
            (
                Path(path).stem,
                data["settings"]["model"],
                [(r["prompt"], r["response"]) for r in data["responses"]],
                what,
                data["settings"].get("model_weights"),
            )
        )
    for path in sorted(glob.glob(str(results / "five-heads-*.json"))):
        organism = Path(path).stem.removeprefix("five-heads-")
        for key, entry in json.loads(Path(path).read_text()).items():
            what = "harmless" if key.startswith("harmless") else "harmful"
            found.append(
                (
                    f"{Path(path).stem}/{key}",
                    organism,
                    [(p, a) for p, a, _ in entry["answers"]],
                    what,
                    None,
                )
            )
    return found


def fmt(rate: dict) -> str:
    return f"{rate['rate']:.2f} [{rate['ci'][0]:.2f}, {rate['ci'][1]:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="the folder of answers")
    results = parser.parse_args().results
    earlier_file = results / "rejudged.json"
    earlier = json.loads(earlier_file.read_text()) if earlier_file.exists() else {}
    rows = {}
    judges: dict[str, ContentJudge] = {}
    for name, model_name, pairs, what, weights in sources(results):
        if model_name not in judges:
            judges[model_name] = ContentJudge(model=sh.load_model(model_name))
        shipped = model_identity(judges[model_name].model).get("model_weights")
        if weights != shipped and name in earlier:
            # Coherence is read with the weights that wrote the answers; these are no longer
            # shipped (or not recorded), so the row judged with them is kept as it was.
            rows[name] = earlier[name] | {"kept": True}
            continue
        figures = answer_figures(judges[model_name], [p for p, _ in pairs], [a for _, a in pairs])
        rows[name] = {"model": model_name, "what": what, "n": len(pairs), **figures}
    (results / "rejudged.json").write_text(json.dumps(rows, indent=1) + "\n")
    order = ("compliance", "refusal", "evasive", "echo", "degenerate", "too_short")
    lines = [
        "# Saved answers judged again",
        "",
        "Content judge (default, coherence read with the organism before ablation) beside "
        "the paper's keyword judge, on the same greedy answers (48 new tokens); 95% "
        "Clopper-Pearson intervals. Written by `python experiments/rejudge.py`. Rows marked "
        "* are kept from an earlier run: the weights that wrote their answers are not the "
        "ones shipped now (or are not recorded), and coherence is read only with those.",
        "",
        "## Harmful prompts: ASR",
        "",
        "| answers | n | keyword ASR | content ASR | content labels (" + ", ".join(order) + ") |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        if row["what"] == "harmful":
            labels = " / ".join(str(row["labels"].get(k, 0)) for k in order)
            mark = " *" if row.get("kept") else ""
            lines.append(
                f"| {name}{mark} | {row['n']} | {fmt(row['keyword_asr'])} | "
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
            mark = " *" if row.get("kept") else ""
            lines.append(
                f"| {name}{mark} | {row['n']} | {fmt(row['keyword_explicit_refusal_rate'])} "
                f"| {fmt(row['refusal_rate'])} |"
            )
    (results / "rejudged.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
