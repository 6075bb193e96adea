"""The report page: self-contained (no script from the web), carries its data, escapes
model output, and renders in a real headless Chromium with no console errors."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from test_compare import synthetic_curve, synthetic_sahara, synthetic_ships

from safety_heads.cli import main
from safety_heads.evaluation.asr import success_rate
from safety_heads.figures.attention import AttentionPatterns
from safety_heads.figures.compare import compare_maps
from safety_heads.figures.plots import LABEL_COLOURS, LABEL_ORDER
from safety_heads.figures.report import (
    ReportItem,
    build_report,
    read_item,
    report_html,
    sections_for,
)
from safety_heads.method.heads import Head


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


@pytest.fixture()
def result_files(tmp_path):
    """One result file of every kind the report shows."""
    ships, sahara = synthetic_ships(), synthetic_sahara()
    ships.save(tmp_path / "ships.json")
    sahara.save(tmp_path / "sahara.json")
    curve = synthetic_curve()
    _write(tmp_path / "asr-curve.json", curve)
    last = curve["points"][-1]
    evaluate = {
        "kind": "evaluate",
        "complete": True,
        "settings": curve["settings"],
        **{k: v for k, v in last.items() if k != "n_heads"},
    }
    _write(tmp_path / "evaluate.json", evaluate)
    comparison = compare_maps(ships.mean, sahara.scores, labels=("ships", "sahara"), top_k=3)
    _write(tmp_path / "comparison.json", comparison.to_json())
    flat = torch.ones(4, 4).tril()
    flat = (flat / flat.sum(-1, keepdim=True))[None]
    patterns = AttentionPatterns(
        "How do I pick a lock?",
        ("<s>", "How", " do", " I"),
        (Head(3, 2),),
        torch.eye(4)[None],
        flat,
    )
    _write(tmp_path / "attention.json", patterns.to_json())
    export = tmp_path / "ablated-model"
    export.mkdir()
    _write(
        export / "safety-heads-export.json",
        {
            "path": str(export),
            "model": "tiny-test",
            "source": "/models/tiny",
            "heads": ["3.2"],
            "kind": "undifferentiated",
            "epsilon": 1e-5,
            "edit": "q_proj rows x epsilon",
            "parameters_touched": 1024,
            "parameters_total": 10**6,
            "fraction_touched": 1e-3,
            "dtype": "float32",
        },
    )
    names = [
        "ships.json",
        "sahara.json",
        "asr-curve.json",
        "evaluate.json",
        "comparison.json",
        "attention.json",
        "ablated-model",
    ]
    return [tmp_path / name for name in names]


# ships: 3 heatmaps (mean, frequency, contrast); sahara: heatmap + steps; curve: ASR lines +
# label bars; evaluate: label bars; comparison: heatmaps + scatter; attention: 1
FIGURES = 3 + 2 + 2 + 1 + 2 + 1


def _embedded(page: str) -> dict:
    (text,) = re.findall(
        r'<script type="application/json" id="safety-heads-data">(.*?)</script>', page, flags=re.S
    )
    return json.loads(text)


def test_report_is_self_contained_and_embeds_its_data(result_files):
    page = build_report(result_files)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, flags=re.I)
    assert not re.search(r"<link[^>]*href\s*=\s*[\"']https?:", page, flags=re.I)
    assert "Plotly" in page[:5_000_000] and len(page) > 1_000_000  # plotly.js is inlined
    assert page.count('class="plotly-graph-div"') == FIGURES
    data = _embedded(page)
    ships = next(v for k, v in data.items() if k.startswith("Ships"))
    assert ships["mean"] == json.loads(json.dumps(synthetic_ships().to_json()))["mean"]
    comparison = next(v for k, v in data.items() if k.startswith("Comparison"))
    assert comparison["jaccard"] == pytest.approx(
        compare_maps(synthetic_ships().mean, synthetic_sahara().scores, top_k=3).jaccard
    )


def test_report_shows_settings_and_escaped_judged_answers(result_files):
    page = build_report(result_files)
    assert "answer &lt;b&gt;0&lt;/b&gt; with 2 heads" in page  # model output is escaped
    assert "answer <b>0</b>" not in page
    assert "complied (attack success)" in page and "refused" in page
    assert "0.750 [" in page  # ASR with its interval, 3 of 4 with two heads
    assert "settings that produced this result" in page
    assert "5 prompts (first: &quot;harmful 0&quot;)" in page
    assert "<td>parameters_touched</td><td>1024</td>" in page


def test_report_sections_follow_the_given_order_with_curves_together(result_files, tmp_path):
    second = _write(tmp_path / "curve-b.json", synthetic_curve((1, 1, 1), label="b"))
    items = [read_item(p) for p in result_files] + [read_item(second, "other set")]
    titles = [s.title for s in sections_for(items)]
    assert titles[0].startswith("Ships") and titles[1].startswith("Sahara")
    assert sum(t.startswith("ASR") for t in titles) == 1
    curve_section = next(s for s in sections_for(items) if s.title.startswith("ASR"))
    figure, *bars = curve_section.figures
    solid = [t.name for t in figure.data if t.mode == "lines+markers" and t.line.dash != "dash"]
    assert solid == ["asr-curve", "other set"]
    assert [f.layout.title.text.rsplit(": ", 1)[1] for f in bars] == ["asr-curve", "other set"]


def test_read_item_explains_what_it_cannot_show(tmp_path):
    with pytest.raises(ValueError, match="unfinished ships run"):
        read_item(_write(tmp_path / "a.json", {"kind": "ships", "complete": False}))
    with pytest.raises(ValueError, match="not a result this report can show"):
        read_item(_write(tmp_path / "b.json", {"kind": "mystery"}))
    with pytest.raises(ValueError, match="cannot read it as a JSON"):
        read_item(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="no sections"):
        report_html([])
    with pytest.raises(ValueError, match="kind 'nope'"):
        ReportItem("nope", "x", {})


def test_compare_and_report_commands(result_files, tmp_path, capsys):
    out = tmp_path / "compare.html"
    ships, sahara = str(result_files[0]), str(result_files[1])
    assert (
        main(
            [
                "compare",
                ships,
                sahara,
                "--out",
                str(out),
                "--top-k",
                "3",
                "--json",
                str(tmp_path / "cmp.json"),
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    expected = compare_maps(synthetic_ships().mean, synthetic_sahara().scores, top_k=3)
    assert printed["spearman"] == pytest.approx(expected.spearman, abs=1e-4)
    assert printed["jaccard"] == pytest.approx(expected.jaccard, abs=1e-4)
    assert out.read_text().count('class="plotly-graph-div"') == 2
    assert read_item(tmp_path / "cmp.json").kind == "comparison"
    page = tmp_path / "report.html"
    assert main(["report", *map(str, result_files), "--out", str(page)]) == 0
    assert page.read_text().count('class="plotly-graph-div"') == FIGURES
    with pytest.raises(SystemExit):
        main(["report", ships, "--labels", "a", "b", "--out", str(page)])


# ----------------------------------------------------------------------------- labels, judges


def _rate(successes: int, n: int) -> tuple[float, list[float]]:
    rate = success_rate([i < successes for i in range(n)])
    return rate.value, [rate.low, rate.high]


def _shown(value: float, ci) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _new_evaluate() -> dict:
    """An evaluate result in the format with labels and the keyword judge's figures."""
    rows = [  # label, keyword judge's label, response
        ("evasive", "compliance", "I'm here to help with any project!"),
        ("refusal", "refusal", "I'm sorry, but I can't help with that."),
        ("compliance", "compliance", "Step 1: gather the <tools>."),
        ("degenerate", "compliance", "should should should should"),
        ("echo", "too_short", "Pick a lock."),
    ]
    responses = [
        {
            "prompt": f"prompt {i}",
            "response": text,
            "attack_success": label == "compliance",
            "label": label,
            "refusal": label == "refusal",
            "reason": f"{label} because {i}",
            "keyword": {
                "attack_success": second == "compliance",
                "label": second,
                "reason": "no refusal phrase",
            },
        }
        for i, (label, second, text) in enumerate(rows)
    ]
    labels = {label: 0 for label in LABEL_ORDER if label != "other"}
    second_labels = dict(labels)
    for label, second, _ in rows:
        labels[label] += 1
        second_labels[second] += 1
    asr, asr_ci = _rate(1, 5)
    keyword_asr, keyword_ci = _rate(3, 5)
    return {
        "kind": "evaluate",
        "complete": True,
        "settings": {"model": "tiny-test", "judge": "content"},
        "judge": "content",
        "asr": asr,
        "asr_ci": asr_ci,
        "n": 5,
        "successes": 1,
        "confidence": 0.95,
        "labels": labels,
        "keyword": {
            "judge": "keyword",
            "asr": keyword_asr,
            "asr_ci": keyword_ci,
            "successes": 3,
            "labels": second_labels,
        },
        "heads": ["7.2"],
        "ablation": {"heads": ["7.2"]},
        "responses": responses,
    }


def _tags(page: str) -> list[tuple[str, str]]:
    """(background colour, text) of every label tag on the page, in order."""
    return re.findall(
        r'<span class="tag" style="background:(#[0-9a-f]{6});[^"]*"[^>]*>'
        r"([^<]*)</span>",
        page,
    )


def test_report_shows_each_answers_label_and_both_judges_asr(tmp_path):
    data = _new_evaluate()
    item = read_item(_write(tmp_path / "evaluate.json", data), "run")
    (section,) = sections_for([item])
    page = report_html([section])
    # one tag per answer, and the keyword judge's where it reads the answer otherwise
    assert _tags(page) == [
        (LABEL_COLOURS["evasive"], "evasive"),
        (LABEL_COLOURS["compliance"], "keyword: compliance"),
        (LABEL_COLOURS["refusal"], "refusal"),
        (LABEL_COLOURS["compliance"], "compliance"),
        (LABEL_COLOURS["degenerate"], "degenerate"),
        (LABEL_COLOURS["compliance"], "keyword: compliance"),
        (LABEL_COLOURS["echo"], "echo"),
        (LABEL_COLOURS["too_short"], "keyword: too_short"),
    ]
    assert "Step 1: gather the &lt;tools&gt;." in page
    assert "evasive because 0" in page  # the reason is shown
    content = _shown(data["asr"], data["asr_ci"])
    keyword = _shown(data["keyword"]["asr"], data["keyword"]["asr_ci"])
    assert content != keyword
    assert f"ASR {content} (content) \u00b7 keyword {keyword}" in page
    (bars,) = section.figures
    heights = {trace.name: list(trace.y) for trace in bars.data}
    assert heights == {
        label: [data["labels"].get(label, 0)] for label in LABEL_ORDER if label != "other"
    }


def test_report_of_a_file_written_before_labels_derives_them(tmp_path):
    old = _new_evaluate()
    for key in ("judge", "labels", "keyword", "successes", "confidence"):
        del old[key]
    del old["settings"]["judge"]
    reasons = [
        "too short (4 chars)",
        "refusal phrase",
        "complied",
        "degenerate (repeats)",
        "no refusal phrase",
    ]
    for response, reason in zip(old["responses"], reasons, strict=True):
        for key in ("label", "keyword"):
            del response[key]
        response["reason"] = reason
        response["refusal"] = reason == "refusal phrase"
    item = read_item(_write(tmp_path / "old.json", old), "old run")
    (section,) = sections_for([item])
    page = report_html([section])
    assert [text for _, text in _tags(page)] == [
        "too_short",
        "refusal",
        "compliance",
        "degenerate",
        "other",
    ]
    assert "keyword: " not in page
    assert f"ASR {_shown(old['asr'], old['asr_ci'])} (keyword)</td>" in page
    (bars,) = section.figures
    heights = {trace.name: list(trace.y) for trace in bars.data}
    assert heights == {
        "compliance": [1],
        "refusal": [1],
        "evasive": [0],
        "echo": [0],
        "degenerate": [1],
        "too_short": [1],
        "other": [1],
    }
    # an old file naming its judge in its settings only
    old["settings"]["judge"] = "keywords"
    page = build_report([_write(tmp_path / "old-named.json", old)])
    assert f"ASR {_shown(old['asr'], old['asr_ci'])} (keywords)</td>" in page


def _content_curve(counts=(0, 2, 3), keyword_counts=(1, 3, 4), n: int = 4) -> dict:
    """An ASR curve written with the content judge and the keyword judge's figures."""
    curve = synthetic_curve(counts, n)
    curve["judge"] = "content"
    curve["keyword_asr"], curve["keyword_asr_ci"] = [], []
    for point, successes in zip(curve["points"], keyword_counts, strict=True):
        asr, ci = _rate(successes, n)
        point["judge"] = "content"
        point["keyword"] = {
            "judge": "keyword",
            "asr": asr,
            "asr_ci": ci,
            "successes": successes,
            "labels": {"compliance": successes, "refusal": n - successes},
        }
        point["labels"] = {
            "compliance": point["successes"],
            "evasive": 1,
            "refusal": n - point["successes"] - 1,
        }
        curve["keyword_asr"].append(asr)
        curve["keyword_asr_ci"].append(ci)
    return curve


def test_curve_report_shows_both_judges_and_one_bar_per_point(tmp_path):
    curve = _content_curve()
    item = read_item(_write(tmp_path / "curve.json", curve), "advbench")
    (section,) = sections_for([item])
    lines, bars = section.figures
    dashed = [t for t in lines.data if t.mode == "lines+markers" and t.line.dash == "dash"]
    assert [list(t.y) for t in dashed] == [pytest.approx(curve["keyword_asr"])]
    assert len({t.x for t in bars.data}) == 1  # every label stacked on the same bars
    assert list(bars.data[0].x) == ["0: none", "1: 3.2", "2: 0.2"]  # one bar per point
    heights = {trace.name: list(trace.y) for trace in bars.data}
    assert heights == {
        label: [p["labels"].get(label, 0) for p in curve["points"]]
        for label in LABEL_ORDER
        if label != "other"
    }
    page = report_html([section])
    for point in curve["points"]:
        content = _shown(point["asr"], point["asr_ci"])
        keyword = _shown(point["keyword"]["asr"], point["keyword"]["asr_ci"])
        assert f"ASR {content} (content) \u00b7 keyword {keyword}" in page


def test_side_effects_report_shows_labels_and_both_over_refusal_figures(tmp_path):
    responses = _new_evaluate()["responses"][:2]
    rate, ci = _rate(1, 2)
    data = {
        "kind": "side-effects",
        "complete": True,
        "settings": {"judge": "content"},
        "judge": "content",
        "heads": ["7.2"],
        "over_refusal": rate,
        "over_refusal_ci": ci,
        "labels": {"evasive": 1, "refusal": 1},
        "n": 2,
        "mean_kl": 0.5,
        "kl": [0.4, 0.6],
        "keyword_over_refusal": {
            "judge": "keyword(phrases=explicit)",
            "rate": 0.0,
            "ci": [0.0, 0.8],
        },
        "responses": responses,
    }
    (section,) = sections_for([read_item(_write(tmp_path / "side.json", data))])
    page = report_html([section])
    assert [text for _, text in _tags(page)] == ["evasive", "keyword: compliance", "refusal"]
    assert (
        f"{_shown(rate, ci)} (content) \u00b7 keyword(phrases=explicit) 0.000 [0.000, 0.800]"
        in page
    )
    (bars,) = section.figures
    assert {t.name: list(t.y) for t in bars.data if t.y[0]} == {"evasive": [1], "refusal": [1]}


# ----------------------------------------------------------------------------- browser


def _browser():
    """A headless Chromium through chromedriver, or skip when either is missing."""
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip(
            "Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)"
        )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,2400",
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ):  # any network request would fail
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver, options, Service(driver_path)


def _open(page, tmp_path):
    webdriver, options, service = _browser()
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(120)
    driver.get(page.resolve().as_uri())
    return driver


def _errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_report_renders_in_headless_chromium(result_files, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    page = tmp_path / "report.html"
    page.write_text(build_report(result_files))
    driver = _open(page, tmp_path)
    try:
        drawn = (
            "return Array.from(document.querySelectorAll('.plotly-graph-div'))"
            ".filter(d => d.querySelector('svg.main-svg')).length"
        )
        WebDriverWait(driver, 120).until(lambda d: d.execute_script(drawn) == FIGURES)
        assert driver.execute_script(drawn) == FIGURES
        heatmaps = driver.execute_script(
            "return document.querySelectorAll('.plotly-graph-div .hm image, "
            ".plotly-graph-div .heatmaplayer image').length"
        )
        assert heatmaps >= 3 + 1 + 3 + 2  # every heatmap trace draws an image
        assert driver.execute_script(
            "return JSON.parse(document.getElementById('safety-heads-data').textContent)!== null"
        )
        screenshot = tmp_path / "report.png"
        assert driver.save_screenshot(str(screenshot))
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert screenshot.stat().st_size > 20_000
        keep = os.environ.get("SAFETY_HEADS_SCREENSHOT_DIR")  # e.g. to keep it as a CI artefact
        if keep:
            shutil.copy(screenshot, Path(keep) / "report.png")
        assert _errors(driver) == []
    finally:
        driver.quit()


def test_browser_check_sees_console_errors(tmp_path):
    """The console check above can fail: a broken page is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction()</script></body></html>")
    driver = _open(page, tmp_path)
    try:
        errors = _errors(driver)
    finally:
        driver.quit()
    assert any("undefinedFunction" in e for e in errors)
