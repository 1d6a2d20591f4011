"""The repository's own promises: README made from index.ipynb, CI runs the README's commands,
notebooks and package in step, nbdev_clean leaves notebooks alone."""
from __future__ import annotations
import re, shutil, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from make_readme import readme_text

def bash_blocks(md: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", md, flags=re.S)]

def test_readme_is_made_from_index():
    assert (ROOT / "README.md").read_text(encoding="utf-8") == readme_text(), \
        "README.md differs from nbs/index.ipynb: run python tools/make_readme.py"

def test_readme_has_the_two_commands_and_ci_runs_them():
    blocks = bash_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 2, "the README must show an install-and-run command and a test command"
    install, test = blocks[0], blocks[1]
    assert "pip install" in install and "ktsketch" in install
    assert "pytest" in test and "nbdev_test" in test
    ci = (ROOT / ".ci" / "run").read_text()
    ci_lines = [l.strip() for l in ci.splitlines()]
    assert any(l.startswith(test) for l in ci_lines), f"CI must run the README's test command verbatim: {test!r}"
    # the install command's pip step and its check are what CI runs first (CI makes its own venv)
    pip_step = install.split("&&")[-2].strip()
    assert any(pip_step in l for l in ci_lines), f"CI must install as the README says: {pip_step!r}"

def _copy_repo(tmp_path: Path) -> Path:
    dst = tmp_path / "repo"
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info",
                                                             "build", "dist", "runs", ".pytest_cache"))
    return dst

def _nbdev(cmd, cwd):
    exe = Path(sys.executable).parent / cmd
    return subprocess.run([str(exe) if exe.exists() else cmd], cwd=cwd, capture_output=True, text=True, timeout=300)

def _tree(d: Path, pattern: str) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob(pattern)) if "__pycache__" not in p.parts}

def test_nbdev_export_changes_nothing(tmp_path):
    repo = _copy_repo(tmp_path)
    before = _tree(repo / "ktsketch", "*.py")
    r = _nbdev("nbdev_export", repo)
    assert r.returncode == 0, r.stderr
    after = _tree(repo / "ktsketch", "*.py")
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"ktsketch/ is not what nbs/ exports (run nbdev_export): {changed}"

def test_nbdev_clean_changes_nothing(tmp_path):
    repo = _copy_repo(tmp_path)
    before = _tree(repo / "nbs", "*.ipynb")
    r = _nbdev("nbdev_clean", repo)
    assert r.returncode == 0, r.stderr
    after = _tree(repo / "nbs", "*.ipynb")
    changed = sorted(k for k in before if before[k] != after.get(k))
    assert not changed, f"notebooks are not clean (run nbdev_clean): {changed}"

def test_the_shipped_ablation_table_is_the_notebooks():
    "ktsketch/results/ablation.csv (quoted by the demo report) is a byte-for-byte copy of nbs/results/ablation.csv."
    ours, shipped = ROOT / "nbs" / "results" / "ablation.csv", ROOT / "ktsketch" / "results" / "ablation.csv"
    assert ours.read_bytes() == shipped.read_bytes(), "copy nbs/results/ablation.csv to ktsketch/results/"

def test_the_shipped_grid_is_the_notebooks():
    "ktsketch/results/grid_synth.csv (what `claim.shipped_conclusion` reads) is a byte-for-byte copy of the committed grid."
    ours, shipped = ROOT / "nbs" / "results" / "grid_synth" / "ablation.csv", ROOT / "ktsketch" / "results" / "grid_synth.csv"
    assert ours.read_bytes() == shipped.read_bytes(), "python tools/publish_grid.py copies the grid into the package"

def _outputs(nb) -> str:
    import nbformat
    cells = nbformat.read(ROOT / "nbs" / nb, as_version=4).cells
    return " ".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for c in cells if c.cell_type == "code"
                    for o in c.get("outputs", []))

def test_every_page_quotes_the_one_conclusion():
    """The README, notebook 11 and the walkthrough show the current `shipped_conclusion()`, word for word (line breaks
    aside): a page re-executed before the grid was republished fails here (the demo report is checked in test_cli)."""
    from ktsketch.claim import shipped_conclusion
    squash = lambda t: " ".join(t.replace("\\n", " ").split())
    sentence = squash(shipped_conclusion())
    assert sentence in squash((ROOT / "README.md").read_text(encoding="utf-8")), "re-run index.ipynb, then tools/make_readme.py"
    for nb in ("11_does_kt_help.ipynb", "10_walkthrough.ipynb", "11b_claim.ipynb"):
        assert sentence in squash(_outputs(nb)), f"python tools/execute_notebooks.py nbs/{nb}"

def test_every_notebook_names_its_kernel():
    "Every notebook names the python3 kernel (JupyterLab asks 'Select Kernel' otherwise); nbdev_clean keeps it."
    import json
    nbs = sorted((ROOT / "nbs").glob("*.ipynb")) + sorted((ROOT / "ktsketch" / "notebooks").glob("*.ipynb"))
    assert len(nbs) > 10
    missing = [str(p.relative_to(ROOT)) for p in nbs
               if json.loads(p.read_text(encoding="utf-8"))["metadata"].get("kernelspec", {}).get("name") != "python3"]
    assert not missing, f"no python3 kernelspec in {missing}"
