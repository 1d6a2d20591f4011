"""The notebooks' saved outputs: made by tools/execute_notebooks.py, never stale, nbs/ within its size budget;
and the tool itself on a small notebook (a real kernel: fast cells, a slow cell, a figure, a widget, an error)."""
from __future__ import annotations
import json, sys
from pathlib import Path
import nbformat
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import execute_notebooks as ex

NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))
BUDGET_MB = 25

def read(p): return nbformat.read(p, as_version=4)

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_outputs_are_current(path):
    """A notebook with saved outputs shows what its code shows now: every code cell is the one its outputs came
    from. A notebook not executed yet passes (it carries no outputs at all: `python tools/execute_notebooks.py`
    makes them); one with outputs nothing vouches for (saved from Jupyter by hand) fails."""
    nb = read(path)
    if ex.executed(nb):
        assert ex.stale(nb) == [], f"{path.name} is stale: python tools/execute_notebooks.py nbs/{path.name}"
    else:
        assert ex.unmarked_outputs(nb) == [], (f"{path.name}: outputs not made by tools/execute_notebooks.py in cells "
            f"{ex.unmarked_outputs(nb)}: python tools/execute_notebooks.py nbs/{path.name} (or drop them: nbdev_clean --clear_all --fname nbs/{path.name})")

def test_nbs_fits_its_size_budget():
    "Saved outputs (PNG figures mostly) keep nbs/ under 25 MB, so a clone and GitHub's viewer stay quick."
    sizes = {p: p.stat().st_size for p in (ROOT / "nbs").rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts}
    total = sum(sizes.values()) / 2**20
    largest = sorted(sizes, key=sizes.get)[-3:]
    assert total < BUDGET_MB, f"nbs/ holds {total:.1f} MB (budget {BUDGET_MB} MB); largest: {[p.name for p in largest]}"

# ---- the tool, on a small notebook ----
CELLS = [
    "#| hide\nimport matplotlib.pyplot as plt\nimport ipywidgets as W",
    "answer = 6 * 7\nanswer",
    "#| slow\nprint('the slow cell ran')\nanswer + 1",
    "fig, ax = plt.subplots(figsize=(2, 2)); ax.plot([0, 1], [0, 1]); ax.set_title('a line');",
    "#| eval: false\nraise RuntimeError('never run')",
    "W.IntSlider(3)",
    "print('10%\\r50%\\r100%')",
    "out = W.Output()\nwith out:\n    out.clear_output(wait=True); print('inside an Output widget')\nout",
]

def small_notebook(path: Path, cells=CELLS) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A small notebook")] + [nbformat.v4.new_code_cell(s) for s in cells]
    nbformat.write(nb, path)
    return path

def data(cell, i=0): return cell.outputs[i].get("data", {})

def test_the_tool_saves_outputs_marks_slow_cells_and_finds_stale_ones(tmp_path):
    p = small_notebook(tmp_path / "small.ipynb")
    done = ex.execute(p, quiet=True, timeout=300)    # a cell that hangs fails the test in minutes, not CI's hour
    nb = read(p)
    assert done["fast"] == 6 and done["slow_not_run"] == 1 and done["never"] == 1
    c = nb.cells
    assert data(c[2])["text/plain"] == "42" and c[2].outputs[0].execution_count is None
    assert c[3].outputs[0].metadata == {"ktsketch": "stamp"} and "not run" in data(c[3])["text/markdown"]
    assert len(c[3].outputs) == 1 and c[3].metadata["ktsketch"]["slow"] == "not run"
    assert "image/png" in data(c[4])                                  # the figure, as a PNG
    assert c[5].outputs == []                                         # eval: false never runs
    assert c[6].outputs == []                                         # a widget with no static picture is dropped
    assert c[7].outputs[0].text == "100%\n"                           # a progress line in its last state
    assert c[8].outputs == [] and "widgets" not in nb.metadata        # an Output widget (nbclient tracks its state)
    assert ex.stale(nb) == [] and ex.executed(nb)
    assert "language_info" not in nb.metadata and nb.metadata["ktsketch"]["slow"] is False
    assert ex.nbdev_cleaned(nb) == p.read_text(encoding="utf-8")     # nbdev_clean would change nothing

    # --slow runs the slow cell, stamps it, and later fast runs keep what it showed while its source is unchanged
    ex.execute(p, slow=True, quiet=True, timeout=300)
    first = read(p).cells[3]
    assert "from a real run" in data(first)["text/markdown"] and "--slow" in data(first)["text/markdown"]
    assert first.outputs[1].text == "the slow cell ran\n" and data(first, 2)["text/plain"] == "43"
    assert first.metadata["ktsketch"]["slow"]["command"].endswith("--slow " + str(p))
    done = ex.execute(p, slow=False, quiet=True, timeout=300)
    assert done["slow_kept"] == 1 and read(p).cells[3] == first

    # edits the hashes see: a changed cell, a new cell, a removed cell
    nb = read(p)
    nb.cells[2].source = "answer = 6 * 9\nanswer"
    assert ex.stale(nb) == ["cell 2 ('answer = 6 * 9') changed since its outputs were made"]
    nb = read(p); nb.cells.insert(2, nbformat.v4.new_code_cell("answer += 1"))
    assert ex.stale(nb) == ["cell 2 ('answer += 1') is new since the outputs were made"]
    nb = read(p); del nb.cells[6]
    assert ex.stale(nb) == ["code cells were removed or moved since the outputs were made"]
    nb = read(p); nb.cells[3].outputs = nb.cells[3].outputs[1:]
    assert ex.stale(nb) == ["cell 3 ('#| slow') is a slow cell without its stamp"]

def test_the_tool_writes_nothing_when_a_cell_fails_and_runs_the_others(tmp_path, capsys):
    fails = small_notebook(tmp_path / "fails.ipynb", ["x = 1", "1 / 0"])
    works = small_notebook(tmp_path / "works.ipynb", ["x = 2\nx"])
    before = fails.read_bytes()
    assert ex.main([str(fails), str(works)]) == 1
    assert fails.read_bytes() == before and ex.executed(read(works))
    err = capsys.readouterr().err
    assert "fails.ipynb: a cell failed, nothing written" in err and "ZeroDivisionError" in err
    assert ex.main([str(tmp_path / "missing.ipynb")]) == 2

def test_the_method_picture_is_the_current_diagram(tmp_path):
    "nbs/images/method.png (in the README) is what `python tools/make_figures.py` draws now (up to font rendering)."
    import numpy as np
    from PIL import Image
    from ktsketch.diagram import save_method_diagram
    fresh = np.asarray(Image.open(save_method_diagram(tmp_path / "method.png")).convert("L"), dtype=float)
    saved = np.asarray(Image.open(ROOT / "nbs" / "images" / "method.png").convert("L"), dtype=float)
    assert saved.shape == fresh.shape, "nbs/images/method.png is not the current diagram: python tools/make_figures.py"
    differ = float((np.abs(saved - fresh) > 32).mean())   # 0 here; fading one loss family (highlight=) changes 0.4 %
    assert differ < 0.001, f"{differ:.1%} of nbs/images/method.png differs from the diagram: python tools/make_figures.py"

# ---- the site ----
def test_the_site_builds_offline_from_the_saved_outputs(tmp_path):
    import build_site as bs
    nbs = [ROOT / "nbs" / "index.ipynb", ROOT / "nbs" / "05a_diagram.ipynb"]
    out = bs.build_site(nbs, tmp_path / "site")
    home, page = (out / "index.html").read_text(encoding="utf-8"), (out / "05a_diagram" / "index.html").read_text(encoding="utf-8")
    assert "images/method.png" in home and (out / "images" / "method.png").is_file()          # the README's picture
    assert page.count("data:image/png;base64,") >= 3                                           # the notebook's saved figures
    assert "05a · The method in one picture" in home and "#| export" not in page              # titled nav, no nbdev directives
    assert "fonts.googleapis" not in page and (out / "search" / "search_index.json").is_file()
    # a folder the tool did not build is never replaced; its own site is
    mine = tmp_path / "mine"; mine.mkdir(); (mine / "notes.txt").write_text("mine")
    with pytest.raises(bs.SiteError, match="not a site this tool built"): bs.build_site(nbs[:1], mine)
    assert (mine / "notes.txt").read_text() == "mine"
    assert bs.build_site(nbs[:1], out) == out and not (out / "05a_diagram").exists()
