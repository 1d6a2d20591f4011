"""Publish a pairs-curve grid that `ktsketch ablate` ran outside the repository (issue 14):

    python tools/publish_grid.py /path/to/grid     # the folder given to `ktsketch ablate --out`

merges every row file of the grid (one row per run key; a damaged row stops it), writes the table to
nbs/results/grid_synth/ablation.csv with its figures and conclusion (`ktsketch.claim.save_report`), copies the
table into the package (ktsketch/results/grid_synth.csv, what `claim.shipped_conclusion` reads) and prints the
sentence. Re-execute notebooks 11, 11b, index and 10 afterwards: they print that sentence.

    python tools/publish_grid.py /path/to/runs NAME  # a side table (e.g. fresh_seeds_n4): only nbs/results/grid_synth/NAME.csv

writes a side table read by notebook 11 (no figures, not packaged, not part of the conclusion).

    python tools/publish_grid.py /path/to/grid --real NAME --teachers LABEL   # a grid on real faces

writes nbs/results/NAME/ablation.csv and its conclusion text, numbers only: no figure (nothing made from the real
faces but their scores goes into the repository), not packaged; LABEL replaces the teachers column (the local
folder the grid's teachers came from means nothing to a reader).
"""
from __future__ import annotations
import shutil, sys
from pathlib import Path
from ktsketch.ablation import grid_rows, write_results
from ktsketch.claim import save_report, conclusion

ROOT = Path(__file__).resolve().parents[1]

def _rows(grid) -> list:
    "Every finished row of a grid folder; a damaged row or an empty grid stops the publishing."
    rows, bad = grid_rows(grid)
    if bad: sys.exit(f"publish_grid: damaged rows in {bad}; rerun the grid first (it redoes them)")
    if not rows: sys.exit(f"publish_grid: {grid}: no finished runs")
    return rows

def _report(rows, table, figures=True) -> Path:
    "Write the rows to `table`, its report (figures too unless `figures=False`) next to it; print what was written and the sentence."
    table = write_results(rows, table)
    print(len(rows), "rows ->", table)
    for p in save_report(table, figures=figures): print(p)
    print(conclusion(table))
    return table

def publish(grid, dest=ROOT / "nbs" / "results" / "grid_synth", package=ROOT / "ktsketch" / "results" / "grid_synth.csv"):
    table = _report(_rows(grid), Path(dest) / "ablation.csv")
    shutil.copyfile(table, package); print("copied ->", package)

def publish_side(grid, name, dest=ROOT / "nbs" / "results" / "grid_synth"):
    rows = _rows(grid)
    print(len(rows), "rows ->", write_results(rows, Path(dest) / f"{name}.csv"))

def publish_real(grid, name, teachers, dest=ROOT / "nbs" / "results"):
    _report([dict(r, teachers=teachers) for r in _rows(grid)], Path(dest) / name / "ablation.csv", figures=False)

if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 5 and args[1] == "--real" and args[3] == "--teachers": publish_real(args[0], args[2], args[4])
    elif len(args) in (1, 2) and not any(a.startswith("--") for a in args):
        publish(args[0]) if len(args) == 1 else publish_side(*args)
    else: sys.exit(__doc__)
