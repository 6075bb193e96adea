"""One self-contained HTML page of results: figures, tables, settings, judged answers.

The page opens from disk with no network: plotly's JavaScript is inlined once, each figure
is a plotly ``div``, and the results it was built from are embedded as JSON
(``<script type="application/json" id="safety-heads-data">``), so the numbers travel
with the page. It is what ``safety-heads report`` and ``safety-heads demo`` write.

A report is a list of :class:`Section` values. :func:`read_item` loads any result file the
package writes and :func:`sections_for` turns loaded results into sections:

===============  ==========================================================================
kind             sections
===============  ==========================================================================
ships            mean-Ships heatmap (top heads marked), top-k frequency, contrast if any,
                 and the fast screen's map when the heads were screened
sahara           step-1 heatmap (chosen heads marked), score of the chosen head per step,
                 and the screen's map when screened
asr-curve        ASR vs number of ablated heads (all curves of the report in one figure,
                 the keyword judge's dashed), answer labels per point (stacked bars), the
                 judged answers at every point
evaluate         ASR with its interval (both judges), answer labels, the judged answers
side-effects     over-refusal and next-token KL on harmless prompts, answer labels
comparison       side-by-side heatmaps, difference, scatter, Spearman and top-k Jaccard
attention        the chosen heads' patterns on one prompt, base and ablated
export           where the ablated model was written and what share of it changed
methods-         per model: ASR and over-refusal with each method's top 1, 3, 5 heads
benchmark        ablated; each method's time, agreement with exact Ships, planted ranks
===============  ==========================================================================

Every ASR is shown for both judges a result holds: its judge (named by the file's
``judge``, else ``settings.judge``; files written before judges were named used the keyword
judge) and the paper's keyword judge. Each answer shown carries a coloured tag of its label
(:data:`safety_heads.evaluation.judges.LABELS`) and, where the keyword judge reads it
otherwise, that judge's label; answers in files written before labels get the label their
verdict implies.

Every section lists the settings that produced it. Building the page is a pure function
(:func:`report_html` returns the text); :func:`write_report` is the one that writes.
"""

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from safety_heads.errors import InputError, damaged_result
from safety_heads.evaluation.judges import LABELS, Verdict, label_counts
from safety_heads.figures.attention import AttentionPatterns
from safety_heads.figures.compare import MapComparison
from safety_heads.figures.plots import (
    LABEL_COLOURS,
    asr_curve_figure,
    attention_figure,
    comparison_heatmaps,
    comparison_scatter,
    judge_of,
    label_bars_figure,
    methods_figure,
    result_heatmap,
    sahara_steps_figure,
    screen_heatmap,
)
from safety_heads.method.sahara import SaharaResult
from safety_heads.method.ships import ShipsResult

__all__ = [
    "Section",
    "ReportItem",
    "read_item",
    "sections_for",
    "report_html",
    "build_report",
    "write_report",
    "REPORT_KINDS",
]

REPORT_KINDS = (
    "ships",
    "sahara",
    "asr-curve",
    "evaluate",
    "side-effects",
    "comparison",
    "attention",
    "export",
    "methods-benchmark",
)


@dataclass(frozen=True)
class Section:
    """A titled part of the page: ``figures``, then ``body`` (trusted HTML built by this
    module, already escaped), and ``data`` embedded as JSON under ``title``."""

    title: str
    figures: tuple[go.Figure, ...] = ()
    body: str = ""
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReportItem:
    """One loaded result: its ``kind`` (one of :data:`REPORT_KINDS`), a ``label`` for
    legends and headings, the ``value`` (a result object or the result's JSON) and the
    ``source`` file it came from."""

    kind: str
    label: str
    value: Any
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in REPORT_KINDS:
            raise InputError(f"ReportItem kind {self.kind!r} is not one of {REPORT_KINDS}.")


def read_item(path: str | os.PathLike[str], label: str | None = None) -> ReportItem:
    """Load a result file (or an export folder) written by this package as a report item."""
    from safety_heads.results import read_result_data, result_from_data

    kind, data = read_result_data(
        path,
        REPORT_KINDS,
        "a result this report can show",
        "pass files written by safety-heads ships, sahara, evaluate, compare --json or an "
        f"export folder (kinds: {', '.join(REPORT_KINDS)}).",
    )
    # Ships, Sahara, comparisons and attention are drawn from their objects; the other
    # kinds from their files' content, checked by loading them once.
    value = result_from_data(kind, data, path)
    if kind not in ("ships", "sahara", "comparison", "attention", "methods-benchmark"):
        value = data
    path = Path(path)
    return ReportItem(kind, label or path.stem, value, str(path))


# ----------------------------------------------------------------------------- tables


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return html.escape(json.dumps(value))
    return html.escape("" if value is None else str(value))


def _table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, css: str = ""
) -> str:
    if not rows:
        return "<p><em>nothing to show</em></p>"
    columns = list(columns or rows[0].keys())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _settings(settings: Mapping[str, Any]) -> str:
    """A settings table; long prompt lists are shown as a count and the first prompt."""
    rows = []
    for key, value in settings.items():
        if isinstance(value, list) and key.endswith("prompts"):
            first = f' (first: "{value[0][:80]}")' if value else ""
            value = f"{len(value)} prompts{first}"
        elif key == "screen" and isinstance(value, Mapping):  # its map is drawn
            value = f"{value.get('name')}, best {value.get('keep')} heads scored exactly"
        rows.append({"setting": key, "value": value})
    return (
        '<details class="settings"><summary>settings that produced this result</summary>'
        + _table(rows, css="settings")
        + "</details>"
    )


def _judged(entry: Mapping[str, Any]) -> Verdict:
    """The verdict on a judged answer (or its ``keyword`` verdict); answers written before
    labels get the label their verdict implies, unreadable ones their label or ``other``."""
    try:
        return Verdict.from_dict(entry)
    except (KeyError, TypeError, ValueError):
        label = entry.get("label")
        label = label if label in LABELS else "other"
        return Verdict(label == "compliance", str(entry.get("reason", "")), label=label)


def _labels(data: Mapping[str, Any]) -> dict[str, int]:
    """A result's (or curve point's) label counts: its ``labels``, else counted from its
    answers (files written before labels)."""
    counts = data.get("labels")
    if isinstance(counts, Mapping):
        return {str(k): int(v) for k, v in counts.items()}
    return label_counts([_judged(r) for r in data.get("responses") or []])


def _text_colour(background: str) -> str:
    red, green, blue = (int(background[i : i + 2], 16) for i in (1, 3, 5))
    return "#000" if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "#fff"


def _tag(label: str, judge: str, prefix: str = "") -> str:
    colour = LABEL_COLOURS.get(label, LABEL_COLOURS["other"])
    return (
        f'<span class="tag" style="background:{colour};color:{_text_colour(colour)}" '
        f'title="{html.escape(judge)} judge">{html.escape(prefix + label)}</span>'
    )


def _verdict(entry: Mapping[str, Any]) -> str:
    reason = f" ({entry['reason']})" if entry.get("reason") else ""
    if entry.get("attack_success"):
        return "complied (attack success)"
    if entry.get("refusal"):
        return "refused" + reason
    return str(entry.get("reason") or "failed")


def _responses(responses: Sequence[Mapping[str, Any]], limit: int, judge: str) -> str:
    """The first ``limit`` answers with their label tags (the keyword judge's too where it
    reads an answer otherwise) and the verdict's reason."""
    rows = []
    for entry in responses[:limit]:
        label = str(_judged(entry).label)
        tags = _tag(label, judge)
        second = entry.get("keyword")
        if isinstance(second, Mapping):
            name = str(second.get("judge") or "keyword")
            other = str(_judged(second).label)
            if other != label:
                tags += " " + _tag(other, name, f"{name}: ")
        rows.append(
            "<tr>"
            + "".join(f"<td>{_cell(entry.get(key, ''))}</td>" for key in ("prompt", "response"))
            + f'<td class="label">{tags}</td><td>{_cell(_verdict(entry))}</td></tr>'
        )
    if not rows:
        return "<p><em>nothing to show</em></p>"
    head = "".join(f"<th>{c}</th>" for c in ("prompt", "response", "label", "verdict"))
    more = len(responses) - len(rows)
    note = f"<p class=note>{more} more answers are in the result file.</p>" if more > 0 else ""
    return (
        f'<table class="responses"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
        f"</tbody></table>{note}"
    )


def _rate(value: float, ci: Sequence[float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _asr(data: Mapping[str, Any], judge: str) -> str:
    """The rate of ``data`` (a result or curve point) for its ``judge`` and, where it holds
    them, the keyword judge's: "ASR 0.060 [0.010, 0.210] (content) · keyword 0.560 [...]"."""
    text = f"ASR {_rate(data['asr'], data['asr_ci'])} ({judge})"
    second = data.get("keyword")
    if isinstance(second, Mapping) and "asr" in second and "asr_ci" in second:
        name = str(second.get("judge") or "keyword")
        if name != judge:
            text += f" · {name} {_rate(second['asr'], second['asr_ci'])}"
    return text


def _ci_header(data: Mapping[str, Any]) -> str:
    return f"ASR [{100 * float(data.get('confidence', 0.95)):.0f}% CI]"


# ----------------------------------------------------------------------------- sections


def _ships_sections(item: ReportItem) -> list[Section]:
    result: ShipsResult = item.value
    figures = [result_heatmap(result, "mean"), result_heatmap(result, "frequency")]
    if result.contrast is not None:
        figures.append(result_heatmap(result, "contrast"))
    columns = ["layer", "head", "score", "topk_frequency"] + (
        ["control", "contrast"] if result.contrast is not None else []
    )
    top = result.to_dataframe().head(10)
    body = (
        "<h3>top heads by mean Ships (KL, nats)</h3>"
        + _table(top.to_dict("records"), columns)
        + _settings(result.info)
    )
    if result.info.get("screen"):
        figures.append(screen_heatmap(result))
    return [Section(f"Ships: {item.label}", tuple(figures), body, result.to_json())]


def _sahara_sections(item: ReportItem) -> list[Section]:
    result: SaharaResult = item.value
    figures = [result_heatmap(result, "step-1"), sahara_steps_figure(result)]
    if result.info.get("screen"):
        figures.append(screen_heatmap(result))
    body = (
        "<h3>heads chosen, in order (score: principal angles, degrees)</h3>"
        + _table([{"step": i + 1, **c} for i, c in enumerate(result.chosen())])
        + _settings({**result.info, "rank": result.rank, "select": result.select})
    )
    return [Section(f"Sahara: {item.label}", tuple(figures), body, result.to_json())]


def _point_name(point: Mapping[str, Any]) -> str:
    heads = point.get("heads") or []
    return f"{point['n_heads']}: {heads[-1]}" if heads else f"{point['n_heads']}: none"


def _curve_sections(items: Sequence[ReportItem], examples: int) -> list[Section]:
    figures = [asr_curve_figure({item.label: item.value for item in items})]
    parts = []
    for item in items:
        data = item.value
        judge = judge_of(data)
        points = data["points"]
        figures.append(
            label_bars_figure(
                [(_point_name(p), _labels(p)) for p in points],
                title=f"Answers by label ({judge} judge): {item.label}",
                xaxis_title="heads ablated: last head added",
            )
        )
        rows = [
            {
                "heads ablated": p["n_heads"],
                "heads": ", ".join(p["heads"]) or "none",
                _ci_header(p): _asr(p, p.get("judge") or judge),
                "n": p["n"],
            }
            for p in points
        ]
        answers = "".join(
            f"<details{' open' if i == len(points) - 1 else ''}><summary>answers with "
            f"{p['n_heads']} head(s) ablated ({', '.join(p['heads']) or 'none'})</summary>"
            f"{_responses(p['responses'], examples, p.get('judge') or judge)}</details>"
            for i, p in enumerate(points)
        )
        parts.append(
            f"<h3>{html.escape(item.label)}</h3>"
            + _table(rows)
            + answers
            + _settings(data.get("settings", {}))
        )
    data = {item.label: {k: v for k, v in item.value.items() if k != "progress"} for item in items}
    return [Section("ASR vs number of ablated heads", tuple(figures), "".join(parts), data)]


def _evaluate_sections(item: ReportItem, examples: int) -> list[Section]:
    data = item.value
    judge = judge_of(data)
    heads = ", ".join(data["heads"]) or "none"
    rows = [{"heads": heads, _ci_header(data): _asr(data, judge), "n": data["n"]}]
    figure = label_bars_figure(
        [(f"heads ablated: {heads}", _labels(data))],
        title=f"Answers by label ({judge} judge): {item.label}",
    )
    body = (
        _table(rows)
        + "<h3>judged answers</h3>"
        + _responses(data["responses"], examples, judge)
        + _settings(data.get("settings", {}))
    )
    clean = {k: v for k, v in data.items() if k != "progress"}
    return [Section(f"Attack success rate: {item.label}", (figure,), body, clean)]


def _side_effect_sections(item: ReportItem, examples: int) -> list[Section]:
    data = item.value
    judge = judge_of(data)
    heads = ", ".join(data["heads"]) or "none"
    rate = f"{_rate(data['over_refusal'], data['over_refusal_ci'])} ({judge})"
    second = data.get("keyword_over_refusal")
    if isinstance(second, Mapping) and "rate" in second and "ci" in second:
        rate += f" · {second.get('judge') or 'keyword'} {_rate(second['rate'], second['ci'])}"
    rows = [
        {
            "heads": heads,
            "over-refusal [95% CI]": rate,
            "mean next-token KL (nats)": data["mean_kl"],
            "n": data["n"],
        }
    ]
    figure = label_bars_figure(
        [(f"heads ablated: {heads}", _labels(data))],
        title=f"Answers to harmless prompts by label ({judge} judge): {item.label}",
    )
    body = (
        _table(rows)
        + "<h3>answers to harmless prompts</h3>"
        + _responses(data["responses"], examples, judge)
        + _settings(data.get("settings", {}))
    )
    clean = {k: v for k, v in data.items() if k != "progress"}
    return [Section(f"Side effects: {item.label}", (figure,), body, clean)]


def _comparison_sections(item: ReportItem) -> list[Section]:
    comparison: MapComparison = item.value
    rows = [
        {
            "Spearman rank correlation": comparison.spearman,
            f"top-{comparison.top_k} Jaccard": comparison.jaccard,
            "shared top heads": ", ".join(map(str, comparison.shared)) or "none",
            f"top of {comparison.label_a}": ", ".join(map(str, comparison.top("a"))),
            f"top of {comparison.label_b}": ", ".join(map(str, comparison.top("b"))),
        }
    ]
    body = _table(rows) + _settings({"compared": comparison.info or {}})
    figures = (comparison_heatmaps(comparison), comparison_scatter(comparison))
    title = f"Comparison: {comparison.label_a} vs {comparison.label_b}"
    return [Section(title, figures, body, comparison.to_json())]


def _attention_sections(item: ReportItem) -> list[Section]:
    patterns: AttentionPatterns = item.value
    ablation = patterns.ablation
    body = (
        f"<p>Prompt: <q>{html.escape(patterns.prompt)}</q>. Ablation: "
        f"{html.escape(ablation.describe() if ablation else 'none')}.</p>"
    )
    return [
        Section(
            f"Attention patterns: {item.label}",
            (attention_figure(patterns),),
            body,
            patterns.to_json(),
        )
    ]


def _export_sections(item: ReportItem) -> list[Section]:
    data = item.value
    keys = (
        "path",
        "model",
        "source",
        "heads",
        "kind",
        "epsilon",
        "edit",
        "parameters_touched",
        "parameters_total",
        "fraction_touched",
        "dtype",
    )
    rows = [{"field": key, "value": data.get(key)} for key in keys]
    body = (
        "<p>Load it with <code>transformers.AutoModelForCausalLM.from_pretrained(folder)"
        "</code>. It is a research artefact: do not deploy it.</p>" + _table(rows)
    )
    return [Section(f"Exported ablated model: {item.label}", (), body, data)]


def _methods_sections(item: ReportItem) -> list[Section]:
    benchmark = item.value
    sections = []
    for name, figures in benchmark.models.items():
        rows = []
        for method, entry in figures["methods"].items():
            ablated = entry["ablated"]
            rows.append(
                {
                    "method": method,
                    "seconds": entry["seconds"],
                    "vs exact Ships": f"{entry['speedup_vs_exact']:.1f}x",
                    "Spearman": entry["spearman_vs_ships"],
                    "top-10 Jaccard": entry["top10_jaccard_vs_ships"],
                    f"Ships top 3 in top {figures['top_tenth']}": entry["ships_top3_in_top_tenth"],
                    "planted ranks": ", ".join(map(str, entry.get("planted_ranks", []))) or "-",
                    "ASR top 1/3/5": " / ".join(f"{a['asr']:.2f}" for a in ablated.values()),
                    "keyword ASR": " / ".join(f"{a['keyword_asr']:.2f}" for a in ablated.values()),
                    "over-refusal": " / ".join(
                        f"{a['over_refusal']:.2f}" for a in ablated.values()
                    ),
                }
            )
        none = figures["no_ablation"]
        ceiling = benchmark.settings.get("ceiling")
        base = (
            f" The unaligned base model ({ceiling['model']}) on the same prompts: ASR "
            f"{_rate(ceiling['asr'], ceiling['asr_ci'])}, the ceiling."
            if ceiling
            else ""
        )
        body = (
            f"<p>No head ablated: ASR {_rate(none['asr'], none['asr_ci'])}, over-refusal "
            f"{_rate(none['over_refusal'], none['over_refusal_ci'])}.{base}</p>"
            + _table(rows)
            + _settings({**benchmark.settings, "prompts": figures["prompts"]})
        )
        sections.append(
            Section(
                f"Methods benchmark: {name}",
                (methods_figure(figures, title=f"Each method's top heads ablated: {name}"),),
                body,
                {"settings": benchmark.settings, "model": name, **figures},
            )
        )
    return sections


def sections_for(items: Sequence[ReportItem], *, examples: int = 5) -> list[Section]:
    """Sections for loaded results, in the order given; all ASR curves share one section
    (one line each), placed where the first one is. ``examples``: answers shown per point."""
    sections: list[Section] = []
    curves = [item for item in items if item.kind == "asr-curve"]
    builders = {
        "ships": _ships_sections,
        "sahara": _sahara_sections,
        "comparison": _comparison_sections,
        "attention": _attention_sections,
        "export": _export_sections,
        "methods-benchmark": _methods_sections,
        "evaluate": lambda item: _evaluate_sections(item, examples),
        "side-effects": lambda item: _side_effect_sections(item, examples),
    }
    for item in items:
        if item.kind == "asr-curve" and item is not curves[0]:
            continue
        try:
            sections += (
                _curve_sections(curves, examples)
                if item.kind == "asr-curve"
                else builders[item.kind](item)
            )
        except (KeyError, TypeError, IndexError) as error:  # a file that lacks a field
            raise damaged_result(item.source or item.label, item.kind, error) from error
    return sections


# ----------------------------------------------------------------------------- the page

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
table.responses td { max-width: 460px; white-space: pre-wrap; }
table.responses td.label { white-space: normal; min-width: 6em; }
.tag { display: inline-block; border-radius: .8em; padding: 0 .55em; margin: .1em 0;
       font-size: .8em; line-height: 1.6; white-space: nowrap; }
details { margin: .4em 0; } summary { cursor: pointer; color: #444; }
.note { color: #666; font-size: .85em; }
.figure { margin: 1em 0; }
"""


def _json_script(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``</`` can close it early)."""
    text = json.dumps(data, allow_nan=False, default=str)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _clean(value: Any) -> Any:
    """``value`` with NaN and infinities as None, so strict JSON can hold it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def report_html(
    sections: Sequence[Section],
    *,
    title: str = "safety-heads report",
    intro: str = "",
) -> str:
    """The page for ``sections`` (build them from result files with :func:`read_item` and
    :func:`sections_for`). ``intro`` is plain text shown under the title. The page needs no
    network: plotly's JavaScript is inlined.
    """
    from plotly.offline import get_plotlyjs

    resolved = list(sections)
    if not resolved:
        raise InputError("The report has no sections; pass at least one result.")
    figure_count = 0
    parts = []
    data = {}
    for number, section in enumerate(resolved, start=1):
        anchor = f"section-{number}"
        figures = []
        for figure in section.figures:
            figure_count += 1
            figures.append(
                '<div class="figure">'
                + figure.to_html(
                    full_html=False,
                    include_plotlyjs=False,
                    div_id=f"figure-{figure_count}",
                    config={"displaylogo": False, "responsive": True},
                )
                + "</div>"
            )
        parts.append(
            f'<section id="{anchor}"><h2>{html.escape(section.title)}</h2>'
            + "".join(figures)
            + section.body
            + "</section>"
        )
        if section.data is not None:
            data[section.title] = _clean(section.data)
    contents = "".join(
        f'<li><a href="#section-{n}">{html.escape(s.title)}</a></li>'
        for n, s in enumerate(resolved, start=1)
    )
    intro_html = f"<p>{html.escape(intro)}</p>" if intro else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"<h1>{html.escape(title)}</h1>{intro_html}<ol class=contents>{contents}</ol>"
        + "".join(parts)
        + f'<script type="application/json" id="safety-heads-data">{_json_script(data)}'
        "</script></body></html>\n"
    )


def build_report(
    paths: Sequence[str | os.PathLike[str]],
    *,
    labels: Sequence[str] | None = None,
    title: str = "safety-heads report",
    intro: str = "",
    examples: int = 5,
) -> str:
    """The page for result files: :func:`read_item` each, :func:`sections_for`,
    :func:`report_html`. ``labels`` (one per file) default to the file names."""
    if labels is not None and len(labels) != len(paths):
        raise InputError(
            f"Got {len(labels)} labels for {len(paths)} result files; give one "
            "label per file, or none."
        )
    items = [read_item(p, None if labels is None else labels[i]) for i, p in enumerate(paths)]
    return report_html(sections_for(items, examples=examples), title=title, intro=intro)


def write_report(page: str, path: str | os.PathLike[str]) -> Path:
    """Write the page from :func:`report_html` to ``path`` (through a temporary file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, path)
    return path
