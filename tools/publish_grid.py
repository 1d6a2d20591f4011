"""Publish a pairs-curve grid that `ktsketch ablate` ran outside the repository (issue 14):

    python tools/publish_grid.py /path/to/grid     # the folder given to `ktsketch ablate --out`

merges every row file of the grid (one row per run key; a damaged row stops it), writes the table to
nbs/results/grid_synth/ablation.csv with its figures and conclusion (`ktsketch.claim.save_report`), copies the
table into the package (ktsketch/results/grid_synth.csv, what `claim.shipped_conclusion` reads) and prints the
sentence. Re-execute notebooks 11, 11b, index and 10 afterwards: they print that sentence.

    python tools/publish_grid.py /path/to/runs NAME  # a side table (e.g. fresh_seeds_n4): only nbs/results/grid_synth/NAME.csv

writes a side table read by notebook 11 (no figures, not packaged, not part of the conclusion).
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

def publish(grid, dest=ROOT / "nbs" / "results" / "grid_synth", package=ROOT / "ktsketch" / "results" / "grid_synth.csv"):
    rows = _rows(grid)
    table = write_results(rows, Path(dest) / "ablation.csv")
    print(len(rows), "rows ->", table)
    for p in save_report(table): print(p)
    shutil.copyfile(table, package); print("copied ->", package)
    print(conclusion(table))

def publish_side(grid, name, dest=ROOT / "nbs" / "results" / "grid_synth"):
    rows = _rows(grid)
    print(len(rows), "rows ->", write_results(rows, Path(dest) / f"{name}.csv"))

if __name__ == "__main__":
    if len(sys.argv) not in (2, 3): sys.exit(__doc__)
    publish(sys.argv[1]) if len(sys.argv) == 2 else publish_side(*sys.argv[1:])
