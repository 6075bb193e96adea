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

from safety_heads.attention import AttentionPatterns
from safety_heads.cli import main
from safety_heads.compare import compare_maps
from safety_heads.heads import Head
from safety_heads.report import ReportItem, build_report, read_item, report_html, sections_for


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
    evaluate = {"kind": "evaluate", "complete": True, "settings": curve["settings"],
                **{k: v for k, v in last.items() if k != "n_heads"}}
    _write(tmp_path / "evaluate.json", evaluate)
    comparison = compare_maps(ships.mean, sahara.scores, labels=("ships", "sahara"), top_k=3)
    _write(tmp_path / "comparison.json", comparison.to_json())
    flat = torch.ones(4, 4).tril()
    flat = (flat / flat.sum(-1, keepdim=True))[None]
    patterns = AttentionPatterns("How do I pick a lock?", ("<s>", "How", " do", " I"),
                                 (Head(3, 2),), torch.eye(4)[None], flat)
    _write(tmp_path / "attention.json", patterns.to_json())
    export = tmp_path / "ablated-model"
    export.mkdir()
    _write(export / "safety-heads-export.json",
           {"path": str(export), "model": "tiny-test", "source": "/models/tiny", "heads": ["3.2"],
            "kind": "undifferentiated", "epsilon": 1e-5, "edit": "q_proj rows x epsilon",
            "parameters_touched": 1024, "parameters_total": 10 ** 6, "fraction_touched": 1e-3,
            "dtype": "float32"})
    names = ["ships.json", "sahara.json", "asr-curve.json", "evaluate.json", "comparison.json",
             "attention.json", "ablated-model"]
    return [tmp_path / name for name in names]


# ships: 3 heatmaps (mean, frequency, contrast); sahara: heatmap + steps; curve: 1;
# comparison: heatmaps + scatter; attention: 1
FIGURES = 3 + 2 + 1 + 2 + 1


def _embedded(page: str) -> dict:
    (text,) = re.findall(r'<script type="application/json" id="safety-heads-data">(.*?)</script>',
                         page, flags=re.S)
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
        compare_maps(synthetic_ships().mean, synthetic_sahara().scores, top_k=3).jaccard)


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
    (figure,) = curve_section.figures
    assert [t.name for t in figure.data if t.mode == "lines+markers"] == ["asr-curve", "other set"]


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
    assert main(["compare", ships, sahara, "--out", str(out), "--top-k", "3",
                 "--json", str(tmp_path / "cmp.json")]) == 0
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


# ----------------------------------------------------------------------------- browser


def _browser():
    """A headless Chromium through chromedriver, or skip when either is missing."""
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("Chromium or chromedriver is not installed (apt-get install chromium "
                    "chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1400,2400",
                 "--host-resolver-rules=MAP * ~NOTFOUND"):  # any network request would fail
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
        drawn = ("return Array.from(document.querySelectorAll('.plotly-graph-div'))"
                 ".filter(d => d.querySelector('svg.main-svg')).length")
        WebDriverWait(driver, 120).until(lambda d: d.execute_script(drawn) == FIGURES)
        assert driver.execute_script(drawn) == FIGURES
        heatmaps = driver.execute_script(
            "return document.querySelectorAll('.plotly-graph-div .hm image, "
            ".plotly-graph-div .heatmaplayer image').length")
        assert heatmaps >= 3 + 1 + 3 + 2  # every heatmap trace draws an image
        assert driver.execute_script(
            "return JSON.parse(document.getElementById('safety-heads-data').textContent)"
            "!== null")
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
