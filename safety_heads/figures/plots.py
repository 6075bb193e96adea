"""Figures of head scores, Sahara searches, ASR curves, answer labels, comparisons and
attention patterns.

Every function returns a :class:`plotly.graph_objects.Figure` and does nothing else: call
``.show()`` in a notebook, ``.write_html(path)`` to keep one, or hand several to
:func:`safety_heads.figures.report.report_html` for a self-contained page. Figures carry their
numbers as plain lists (NaN as ``None``), so a heatmap's ``z`` is the score map itself.

Conventions: a head map is drawn with layers down the side (layer 0 on top) and query heads
along the bottom; hovering a cell shows layer, head and value; heads of interest (a Sahara
order, a top-k) are drawn as open squares numbered in order.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from jaxtyping import Float
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from torch import Tensor

from safety_heads.errors import InputError
from safety_heads.evaluation.asr import AsrCurve
from safety_heads.figures.attention import AttentionPatterns
from safety_heads.figures.compare import MapComparison, score_map
from safety_heads.method.heads import (
    Head,
    HeadLike,
    map_from_json,
    map_to_json,
    parse_heads,
    top_heads,
)
from safety_heads.method.sahara import SaharaResult
from safety_heads.method.ships import ShipsResult

__all__ = [
    "head_heatmap",
    "result_heatmap",
    "sahara_steps_figure",
    "asr_curve_figure",
    "label_bars_figure",
    "judge_of",
    "keyword_series",
    "LABEL_COLOURS",
    "LABEL_ORDER",
    "comparison_heatmaps",
    "comparison_scatter",
    "attention_figure",
    "screen_heatmap",
    "methods_figure",
    "MARK_NAME",
]

MARK_NAME = "chosen heads"
"""Name of the trace that marks heads on a heatmap."""

_TEMPLATE = "plotly_white"
_MARK_COLOUR = "#d62728"

LABEL_COLOURS: dict[str, str] = {
    "refusal": "#2ca02c",
    "compliance": "#d62728",
    "degenerate": "#6b6b6b",
    "echo": "#9e9ac8",
    "evasive": "#c9a66b",
    "too_short": "#9ecae1",
    "other": "#dcdcdc",
}
"""The colour of each judge label (:data:`safety_heads.evaluation.judges.LABELS`), the same in every
figure and in the report's tags: successful attacks (``compliance``) red, refusals green,
the other failures muted."""

LABEL_ORDER: tuple[str, ...] = (
    "compliance",
    "refusal",
    "evasive",
    "echo",
    "degenerate",
    "too_short",
    "other",
)
"""The order of labels in stacked bars, bottom up, and in legends: successful attacks on the
axis (their height is the ASR's numerator), then refusals, then the other failures."""

_UNKNOWN_LABEL_COLOUR = "#f0c0f0"


def _finite_range(*maps: Tensor) -> tuple[float, float]:
    """Smallest and largest finite value over ``maps`` (0, 1 if there is none)."""
    values = [float(v) for m in maps for v in m.flatten().tolist() if math.isfinite(v)]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    return (low, high) if low < high else (low - 0.5, high + 0.5)


def _heatmap_trace(scores: Tensor, value_label: str, **style: Any) -> go.Heatmap:
    n_layers, n_heads = scores.shape
    return go.Heatmap(
        z=map_to_json(scores),
        x=list(range(n_heads)),
        y=list(range(n_layers)),
        hovertemplate=f"layer %{{y}}, head %{{x}}<br>{value_label}: %{{z:.4g}}<extra></extra>",
        hoverongaps=False,
        **style,
    )


def _marks_trace(heads: Sequence[Head], scores: Tensor, **style: Any) -> go.Scatter:
    values = [float(scores[h.layer, h.head]) for h in heads]
    return go.Scatter(
        x=[h.head for h in heads],
        y=[h.layer for h in heads],
        mode="markers+text",
        text=[str(i + 1) for i in range(len(heads))],
        textposition="middle center",
        textfont={"color": _MARK_COLOUR, "size": 10},
        customdata=[
            [str(h), None if math.isnan(v) else v] for h, v in zip(heads, values, strict=True)
        ],
        marker={
            "symbol": "square-open",
            "size": 16,
            "color": _MARK_COLOUR,
            "line": {"width": 2, "color": _MARK_COLOUR},
        },
        hovertemplate="#%{text}: head %{customdata[0]}<br>value: %{customdata[1]:.4g}"
        "<extra></extra>",
        name=MARK_NAME,
        showlegend=False,
        **style,
    )


def _head_axes(figure: go.Figure, row: int | None = None, col: int | None = None) -> None:
    where = {} if row is None else {"row": row, "col": col}
    figure.update_yaxes(title_text="layer", autorange="reversed", **where)
    figure.update_xaxes(title_text="head", dtick=1, **where)


def head_heatmap(
    scores: Float[Tensor, "n_layers n_heads"],
    *,
    marked: Sequence[HeadLike] | str = (),
    title: str = "",
    value_label: str = "score",
    colorscale: str = "Viridis",
    zmin: float | None = None,
    zmax: float | None = None,
) -> go.Figure:
    """A layers x heads heatmap of any score map, ``marked`` heads numbered in order.

    NaN cells (heads not scored) stay blank. ``zmin``/``zmax`` fix the colour range (to
    share it across figures); by default it spans the map's finite values.
    """
    heads = parse_heads(marked)
    n_layers, n_heads = scores.shape
    for head in heads:
        if head.layer >= n_layers or head.head >= n_heads:
            raise InputError(
                f"Marked head {head} is outside the {n_layers} x {n_heads} map; mark heads "
                f"of layers 0..{n_layers - 1} and heads 0..{n_heads - 1}."
            )
    low, high = _finite_range(scores)
    figure = go.Figure(
        _heatmap_trace(
            scores,
            value_label,
            colorscale=colorscale,
            zmin=low if zmin is None else zmin,
            zmax=high if zmax is None else zmax,
            colorbar={"title": {"text": value_label}},
        )
    )
    if heads:
        figure.add_trace(_marks_trace(heads, scores))
    _head_axes(figure)
    figure.update_layout(
        title=title,
        template=_TEMPLATE,
        height=max(320, 60 + 16 * n_layers),
        width=max(600, 160 + 40 * n_heads),
    )
    return figure


def _describe(result: ShipsResult | SaharaResult) -> str:
    info = result.info
    n = len(info.get("prompts") or [])
    return f"{info.get('model', 'model')}, {n} prompts, {info.get('ablation', '?')} ablation"


def result_heatmap(
    result: ShipsResult | SaharaResult,
    which: str | None = None,
    *,
    marked: Sequence[HeadLike] | str | None = None,
    n_marked: int = 5,
    title: str | None = None,
) -> go.Figure:
    """Heatmap of one map of a Ships or Sahara result (``which``: see
    :func:`safety_heads.figures.compare.score_map`).

    ``marked=None`` marks a Sahara result's chosen heads in search order, or a Ships map's
    ``n_marked`` best heads.
    """
    scores = score_map(result, which)
    if isinstance(result, SaharaResult):
        which = which or "step-1"
        label = (
            "principal angle (degrees)" if which.startswith("step") else "angle, harmful - control"
        )
        heads = result.heads if marked is None else parse_heads(marked)
        default_title = f"Sahara {which}: {_describe(result)}"
    else:
        which = which or "mean"
        label = {
            "mean": "mean KL (Ships)",
            "frequency": f"top-{result.top_k} frequency",
            "contrast": "KL, harmful - control",
            "control": "mean KL on controls",
        }[which]
        heads = top_heads(scores, n_marked) if marked is None else parse_heads(marked)
        default_title = f"Ships {which}: {_describe(result)}"
    return head_heatmap(
        scores, marked=heads, title=default_title if title is None else title, value_label=label
    )


SCREEN_VALUES = {
    "atp": "predicted drop, log-prob of the first answer token",
    "direction": "write along the refusal direction",
}


def screen_heatmap(
    result: ShipsResult | SaharaResult, *, n_marked: int = 10, title: str | None = None
) -> go.Figure:
    """The fast screen's map of a screened result (``ships``/``sahara`` with ``screen=``),
    its ``n_marked`` best heads numbered: the map the exactly scored heads were chosen from."""
    screen = result.info.get("screen")
    if not screen:
        raise InputError(
            "This result was not screened (no info['screen']); run ships or sahara with "
            "screen='atp' and keep=K to draw a screen's map."
        )
    scores = map_from_json(screen["map"])
    return head_heatmap(
        scores,
        marked=top_heads(scores, min(n_marked, int(screen["keep"]))),
        title=title or f"Screen {screen['name']}: {_describe(result)}; best {screen['keep']} exact",
        value_label=SCREEN_VALUES.get(screen["name"], "screen score"),
        colorscale="Cividis",
    )


def sahara_steps_figure(result: SaharaResult, *, title: str | None = None) -> go.Figure:
    """The score of the head chosen at each Sahara step (and its contrast, with controls)."""
    chosen = result.chosen()
    steps = list(range(1, len(chosen) + 1))
    labels = [f"{c['layer']}.{c['head']}" for c in chosen]
    figure = go.Figure(
        go.Scatter(
            x=steps,
            y=[c["score"] for c in chosen],
            mode="lines+markers+text",
            text=labels,
            textposition="top center",
            name="chosen head's score",
            hovertemplate="step %{x}: head %{text}<br>angle %{y:.4g} deg<extra></extra>",
        )
    )
    if result.control_step_scores is not None:
        figure.add_trace(
            go.Scatter(
                x=steps,
                y=[c["contrast"] for c in chosen],
                mode="lines+markers",
                text=labels,
                name="harmful - control",
                line={"dash": "dash"},
                hovertemplate="step %{x}: head %{text}<br>contrast %{y:.4g} deg<extra></extra>",
            )
        )
    figure.update_layout(
        title=f"Sahara search ({result.select} selection): {_describe(result)}"
        if title is None
        else title,
        xaxis={"title": "search step", "dtick": 1},
        yaxis={"title": "Generalized Ships (degrees)", "rangemode": "tozero"},
        template=_TEMPLATE,
        height=380,
    )
    return figure


def _curve_dict(curve: AsrCurve | Mapping[str, Any]) -> Mapping[str, Any]:
    data = curve.to_json() if isinstance(curve, AsrCurve) else curve
    if "asr" not in data or "asr_ci" not in data or not isinstance(data["asr"], list):
        raise InputError(
            "An ASR curve needs 'asr' and 'asr_ci' lists: pass an AsrCurve or the JSON of "
            "safety-heads evaluate --curve."
        )
    return data


def _rgba(colour: str, alpha: float) -> str:
    colour = colour.lstrip("#")
    red, green, blue = (int(colour[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha})"


def judge_of(result: Mapping[str, Any]) -> str:
    """The name of the judge behind a result file's rates: its ``judge``, else its settings'
    ``judge``, else ``"keyword"`` (files written before judges were named used the paper's
    keyword judge)."""
    name = result.get("judge") or (result.get("settings") or {}).get("judge")
    return str(name) if name else "keyword"


def keyword_series(
    curve: Mapping[str, Any],
) -> tuple[str, list[float], list[Sequence[float]]] | None:
    """The keyword judge's name, ASR and intervals along an ASR curve's JSON (``keyword_asr``
    and ``keyword_asr_ci``, else each point's ``keyword``), or None when the curve has no
    second judge (files written before it) or its judge is the keyword judge itself."""
    points = list(curve.get("points") or [])
    second = [p.get("keyword") for p in points]
    name = second[0].get("judge") if second and isinstance(second[0], Mapping) else None
    name = str(name or "keyword")
    if isinstance(curve.get("keyword_asr"), list) and isinstance(curve.get("keyword_asr_ci"), list):
        series = list(curve["keyword_asr"]), list(curve["keyword_asr_ci"])
    elif points and all(isinstance(k, Mapping) for k in second):
        series = [k["asr"] for k in second], [k["asr_ci"] for k in second]
    else:
        return None
    if name == judge_of(curve):
        return None
    return name, *series


def asr_curve_figure(
    curves: Mapping[str, AsrCurve | Mapping[str, Any]], *, title: str = "ASR vs ablated heads"
) -> go.Figure:
    """Attack success rate against the number of ablated heads, one line per entry of
    ``curves`` (a data set, an ablation kind ...), each with its confidence band.

    Where a curve carries the keyword judge's figures too (files written since results hold
    two judges), its keyword ASR is drawn as a dashed line of the same colour, no band.
    """
    if not curves:
        raise InputError("No curves given; pass {label: AsrCurve or its JSON}.")
    figure = go.Figure()
    judges: dict[str, None] = {}
    seconds: dict[str, None] = {}
    for index, (label, curve) in enumerate(curves.items()):
        data = _curve_dict(curve)
        judge = judge_of(data)
        judges[judge] = None
        colour = qualitative.Plotly[index % len(qualitative.Plotly)]
        counts = list(range(len(data["asr"])))
        order = list(data.get("order") or [])
        added = ["none"] + [f"+ {h}" for h in order][: len(counts) - 1]
        low = [ci[0] for ci in data["asr_ci"]]
        high = [ci[1] for ci in data["asr_ci"]]
        band = {
            "mode": "lines",
            "line": {"width": 0},
            "hoverinfo": "skip",
            "showlegend": False,
            "legendgroup": label,
        }
        figure.add_trace(go.Scatter(x=counts, y=high, name=f"{label} upper", **band))
        figure.add_trace(
            go.Scatter(
                x=counts,
                y=low,
                name=f"{label} lower",
                fill="tonexty",
                fillcolor=_rgba(colour, 0.18),
                **band,
            )
        )
        figure.add_trace(
            go.Scatter(
                x=counts,
                y=data["asr"],
                mode="lines+markers",
                name=label,
                legendgroup=label,
                line={"color": colour},
                text=added,
                customdata=[[lo, hi] for lo, hi in zip(low, high, strict=True)],
                hovertemplate=f"{label}, {judge} judge<br>%{{x}} heads (%{{text}})<br>ASR "
                "%{y:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]<extra></extra>",
            )
        )
        second = keyword_series(data)
        if second is not None:
            name, rates, intervals = second
            seconds[name] = None
            figure.add_trace(
                go.Scatter(
                    x=counts[: len(rates)],
                    y=rates,
                    mode="lines+markers",
                    name=f"{label}, {name}",
                    legendgroup=label,
                    line={"color": colour, "dash": "dash"},
                    marker={"symbol": "circle-open"},
                    text=added[: len(rates)],
                    customdata=[[ci[0], ci[1]] for ci in intervals],
                    hovertemplate=f"{label}, {name} judge<br>%{{x}} heads (%{{text}})<br>ASR "
                    "%{y:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
                    "<extra></extra>",
                )
            )
    if seconds:
        title = (
            f"{title}<br><sup>solid: {', '.join(judges)} judge; dashed: "
            f"{', '.join(seconds)} judge</sup>"
        )
    confidence = _curve_dict(next(iter(curves.values())))
    level = (confidence.get("points") or [{}])[0].get("confidence", 0.95)
    figure.update_layout(
        title=title,
        template=_TEMPLATE,
        height=400,
        xaxis={"title": "heads ablated (in search order)", "dtick": 1},
        yaxis={"title": f"attack success rate ({100 * level:.0f}% CI band)", "range": [0, 1]},
    )
    return figure


def label_bars_figure(
    points: Sequence[tuple[str, Mapping[str, int]]],
    *,
    title: str = "Answers by label",
    xaxis_title: str = "",
) -> go.Figure:
    """One stacked bar per entry of ``points`` (a name, and how many answers carry each
    label, as in a result file's ``labels``), one colour per label (:data:`LABEL_COLOURS`).

    Segments are stacked bottom up in :data:`LABEL_ORDER`, the same in every figure
    (``other`` only when some point has it; labels unknown to this version on top); a label
    missing from a point counts 0. Hovering a segment shows its count and share.
    """
    if not points:
        raise InputError("No points given; pass [(name, {label: count}), ...].")
    names = [str(name) for name, _ in points]
    if len(set(names)) != len(names):
        raise InputError(f"Point names must be distinct (each names one bar); got {names}.")
    for name, counts in points:
        for label, count in counts.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise InputError(
                    f"Point {name!r}: the count of {label!r} must be a whole "
                    f"number >= 0, got {count!r}."
                )
    extra = sorted({str(label) for _, counts in points for label in counts} - set(LABEL_ORDER))
    shown = [
        label
        for label in LABEL_ORDER
        if label != "other" or any(c.get("other", 0) for _, c in points)
    ] + extra
    totals = [sum(counts.values()) for _, counts in points]
    figure = go.Figure()
    for label in shown:
        values = [counts.get(label, 0) for _, counts in points]
        figure.add_trace(
            go.Bar(
                x=names,
                y=values,
                name=label,
                marker={
                    "color": LABEL_COLOURS.get(label, _UNKNOWN_LABEL_COLOUR),
                    "line": {"width": 0},
                },
                customdata=[[v / t if t else 0.0] for v, t in zip(values, totals, strict=True)],
                hovertemplate=f"%{{x}}<br>{label}: %{{y}} (%{{customdata[0]:.0%}})<extra></extra>",
            )
        )
    figure.update_layout(
        title=title,
        template=_TEMPLATE,
        barmode="stack",
        height=360,
        width=max(420, 200 + 70 * len(names)) if len(names) < 8 else None,
        xaxis={"title": xaxis_title, "type": "category"},
        yaxis={"title": "answers", "rangemode": "tozero"},
        legend={"title": {"text": "label"}},
        bargap=0.35,
    )
    return figure


def comparison_heatmaps(comparison: MapComparison, *, title: str | None = None) -> go.Figure:
    """Map A and map B side by side on one colour scale, and the difference A - B on a
    diverging scale centred on 0; each map's top-k heads are marked."""
    a, b, difference = comparison.a, comparison.b, comparison.difference
    low, high = _finite_range(a, b)
    spread = max(abs(v) for v in _finite_range(difference))
    name_a, name_b = comparison.label_a, comparison.label_b
    figure = make_subplots(
        rows=1,
        cols=3,
        horizontal_spacing=0.12,
        subplot_titles=[name_a, name_b, f"{name_a} - {name_b}"],
    )
    figure.add_trace(_heatmap_trace(a, name_a, coloraxis="coloraxis"), row=1, col=1)
    figure.add_trace(_heatmap_trace(b, name_b, coloraxis="coloraxis"), row=1, col=2)
    figure.add_trace(_heatmap_trace(difference, "difference", coloraxis="coloraxis2"), row=1, col=3)
    figure.add_trace(_marks_trace(comparison.top("a"), a), row=1, col=1)
    figure.add_trace(_marks_trace(comparison.top("b"), b), row=1, col=2)
    for col in (1, 2, 3):
        _head_axes(figure, 1, col)
    middle = figure.layout.xaxis2.domain[1]
    n_layers, n_heads = a.shape
    figure.update_layout(
        title=(
            f"{name_a} vs {name_b}: Spearman {comparison.spearman:.3f}, top-"
            f"{comparison.top_k} Jaccard {comparison.jaccard:.3f}"
        )
        if title is None
        else title,
        template=_TEMPLATE,
        height=max(360, 80 + 16 * n_layers),
        width=max(900, 3 * (160 + 40 * n_heads)),
        coloraxis={
            "colorscale": "Viridis",
            "cmin": low,
            "cmax": high,
            "colorbar": {"x": middle + 0.01, "len": 0.9, "title": {"text": "score"}},
        },
        coloraxis2={
            "colorscale": "RdBu",
            "reversescale": True,
            "cmin": -spread,
            "cmax": spread,
            "colorbar": {"x": 1.01, "len": 0.9, "title": {"text": "A - B"}},
        },
    )
    return figure


def comparison_scatter(comparison: MapComparison, *, title: str | None = None) -> go.Figure:
    """Each head's score in A against its score in B, coloured by top-k membership."""
    top_a, top_b = set(comparison.top("a")), set(comparison.top("b"))
    groups: dict[str, list[Head]] = {
        "top-k of both": [],
        "top-k of A only": [],
        "top-k of B only": [],
        "other": [],
    }
    n_layers, n_heads = comparison.a.shape
    for layer in range(n_layers):
        for head_index in range(n_heads):
            head = Head(layer, head_index)
            x, y = float(comparison.a[layer, head_index]), float(comparison.b[layer, head_index])
            if math.isnan(x) or math.isnan(y):
                continue
            key = (
                "top-k of both"
                if head in top_a and head in top_b
                else "top-k of A only"
                if head in top_a
                else "top-k of B only"
                if head in top_b
                else "other"
            )
            groups[key].append(head)
    colours = {
        "top-k of both": _MARK_COLOUR,
        "top-k of A only": "#1f77b4",
        "top-k of B only": "#2ca02c",
        "other": "#b0b0b0",
    }
    figure = go.Figure()
    for key, heads in groups.items():
        name = key.replace("A", comparison.label_a).replace("B", comparison.label_b)
        figure.add_trace(
            go.Scatter(
                x=[float(comparison.a[h.layer, h.head]) for h in heads],
                y=[float(comparison.b[h.layer, h.head]) for h in heads],
                text=[str(h) for h in heads],
                mode="markers",
                name=name,
                marker={"color": colours[key], "size": 7 if key == "other" else 10},
                hovertemplate=f"head %{{text}}<br>{comparison.label_a}: %{{x:.4g}}<br>"
                f"{comparison.label_b}: %{{y:.4g}}<extra></extra>",
            )
        )
    figure.update_layout(
        title=(
            f"Head scores, {comparison.label_a} vs {comparison.label_b} "
            f"(Spearman {comparison.spearman:.3f})"
        )
        if title is None
        else title,
        xaxis={"title": comparison.label_a},
        yaxis={"title": comparison.label_b},
        template=_TEMPLATE,
        height=460,
    )
    return figure


def attention_figure(patterns: AttentionPatterns, *, title: str | None = None) -> go.Figure:
    """The heads' patterns as heatmaps (query position down, key position across), one row
    per head, base and ablated side by side on one colour scale (0 to 1)."""
    views = [("base", patterns.base)]
    if patterns.ablated is not None:
        views.append(("ablated", patterns.ablated))
    rows = len(patterns.heads)
    figure = make_subplots(
        rows=rows,
        cols=len(views),
        vertical_spacing=min(0.08, 0.3 / rows),
        subplot_titles=[f"head {h} {name}" for h in patterns.heads for name, _ in views],
    )
    positions = list(range(len(patterns.tokens)))
    labels = [f"{i}: {t!r}"[:24] for i, t in enumerate(patterns.tokens)]
    for row, head in enumerate(patterns.heads, start=1):
        for col, (name, stack) in enumerate(views, start=1):
            figure.add_trace(
                go.Heatmap(
                    z=map_to_json(stack[row - 1]),
                    x=positions,
                    y=positions,
                    coloraxis="coloraxis",
                    customdata=[[labels[q]] * len(positions) for q in positions],
                    text=[labels] * len(positions),
                    hovertemplate=f"head {head} {name}<br>from %{{customdata}}<br>to %{{text}}"
                    "<br>weight %{z:.3f}<extra></extra>",
                ),
                row=row,
                col=col,
            )
            figure.update_yaxes(
                autorange="reversed",
                tickvals=positions,
                ticktext=labels,
                tickfont={"size": 8},
                row=row,
                col=col,
            )
            figure.update_xaxes(
                tickvals=positions,
                ticktext=labels,
                tickangle=-60,
                tickfont={"size": 8},
                row=row,
                col=col,
            )
    side = max(260, 14 * len(positions))
    figure.update_layout(
        title=(f"Attention patterns on one prompt ({patterns.model})" if title is None else title),
        template=_TEMPLATE,
        height=rows * (side + 120),
        width=len(views) * (side + 160),
        coloraxis={
            "colorscale": "Blues",
            "cmin": 0.0,
            "cmax": 1.0,
            "colorbar": {"title": {"text": "weight"}},
        },
    )
    return figure


def methods_figure(figures: Mapping[str, Any], *, title: str = "") -> go.Figure:
    """One model's methods benchmark (an entry of a ``methods-benchmark`` file's
    ``models``): for each method, the ASR (left) and the over-refusal on safe prompts
    (right) with its top 1, 3 and 5 heads ablated, each with its interval; the dotted line
    is the model with no head ablated."""
    methods = list(figures["methods"])
    sizes = list(next(iter(figures["methods"].values()))["ablated"])
    figure = make_subplots(
        rows=1, cols=2, subplot_titles=("attack success rate", "over-refusal on safe prompts")
    )
    for index, size in enumerate(sizes):
        colour = qualitative.Plotly[index % len(qualitative.Plotly)]
        for col, (key, ci) in enumerate((("asr", "asr_ci"), ("over_refusal", "over_refusal_ci"))):
            points = [figures["methods"][m]["ablated"][size] for m in methods]
            values = [p[key] for p in points]
            figure.add_trace(
                go.Bar(
                    x=methods,
                    y=values,
                    name=f"top {size}",
                    legendgroup=size,
                    showlegend=col == 0,
                    marker={"color": colour},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [p[ci][1] - v for p, v in zip(points, values, strict=True)],
                        "arrayminus": [v - p[ci][0] for p, v in zip(points, values, strict=True)],
                    },
                    text=[", ".join(p["heads"]) for p in points],
                    hovertemplate="%{x}, top " + size + " (%{text}): %{y:.2f}<extra></extra>",
                ),
                row=1,
                col=col + 1,
            )
            figure.add_hline(
                y=figures["no_ablation"][key],
                line={"dash": "dot", "color": "#444"},
                row=1,
                col=col + 1,
            )
    figure.update_layout(
        title=title,
        template=_TEMPLATE,
        barmode="group",
        height=420,
        legend={"title": {"text": "heads ablated"}},
    )
    figure.update_yaxes(range=[0, 1])
    return figure
