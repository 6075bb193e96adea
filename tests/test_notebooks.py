"""The example notebooks run top to bottom, offline, at a small size, and show what they say.

Each notebook reads ``SAFETY_HEADS_EXAMPLE_SIZE=small`` and shrinks its prompt counts. The
quick start needs only the bundled model; the others need the refusing organism
``smollm2-refusal`` and are skipped until its weights are built.
"""

import json
import os
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(p.name for p in EXAMPLES.glob("*.ipynb"))
NEEDS_ORGANISM = {"02_sahara_asr.ipynb", "04_chat_vs_base.ipynb"}


def _organism_built() -> bool:
    from safety_heads.demo import DEFAULT_MODEL
    from safety_heads.organisms import WEIGHTS_FILE, organism_folder

    return (organism_folder(DEFAULT_MODEL) / WEIGHTS_FILE).is_file()


def _execute(name: str, monkeypatch) -> object:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("SAFETY_HEADS_EXAMPLE_SIZE", "small")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    client.execute()
    return notebook


def _outputs(notebook, kind: str) -> list:
    return [
        o
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if o.get("output_type") == kind
    ]


def _plotly_figures(notebook) -> list[dict]:
    figures = []
    for output in _outputs(notebook, "execute_result") + _outputs(notebook, "display_data"):
        data = output.get("data", {})
        if "application/vnd.plotly.v1+json" in data:
            figures.append(data["application/vnd.plotly.v1+json"])
    return figures


def test_every_notebook_starts_with_a_colab_badge_and_a_guarded_install():
    assert {
        "01_quickstart.ipynb",
        "02_sahara_asr.ipynb",
        "03_surgery_export.ipynb",
        "04_chat_vs_base.ipynb",
    } <= set(NOTEBOOKS)
    for name in NOTEBOOKS:
        cells = json.loads((EXAMPLES / name).read_text())["cells"]
        assert f"examples/{name})" in "".join(cells[0]["source"]), name  # badge links itself
        install = "".join(cells[1]["source"])
        assert 'if "google.colab" in sys.modules:' in install and "pip install" in install
        assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")


def test_quickstart_runs_and_draws_the_map_and_the_attention_view(monkeypatch):
    notebook = _execute("01_quickstart.ipynb", monkeypatch)
    assert not _outputs(notebook, "error")
    figures = _plotly_figures(notebook)
    heatmaps = [t for f in figures for t in f["data"] if t.get("type") == "heatmap"]
    ships_map = heatmaps[0]
    assert len(ships_map["z"]) == 30 and len(ships_map["z"][0]) == 9  # SmolLM2: 30 x 9 heads
    assert len(heatmaps) == 1 + 4  # the Ships map, then 2 heads x (base, ablated) patterns
    text = "".join(o.get("text", "") for o in _outputs(notebook, "stream"))
    assert "ablated heads attend uniformly: True" in text
    html = [o["data"].get("text/html", "") for o in _outputs(notebook, "execute_result")]
    assert any("CircuitsVis" in h or "circuitsvis" in h for h in html)


@pytest.mark.parametrize("name", sorted(set(NOTEBOOKS) - {"01_quickstart.ipynb"}))
def test_other_notebooks_run_at_a_small_size(name, monkeypatch):
    if name in NEEDS_ORGANISM and not _organism_built():
        pytest.skip("needs the demo's refusing organism, which is not built")
    if name in NEEDS_ORGANISM and not os.environ.get("SAFETY_HEADS_SLOW_NOTEBOOKS"):
        pytest.skip("takes 5-10 minutes on a CPU; set SAFETY_HEADS_SLOW_NOTEBOOKS=1 to run it")
    notebook = _execute(name, monkeypatch)
    assert not _outputs(notebook, "error")
    assert name == "03_surgery_export.ipynb" or _plotly_figures(notebook)
