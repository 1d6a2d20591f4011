"""Write the figures the README and the notebooks link to, from code (no data, no network):

    python tools/make_figures.py      # nbs/images/method.png: the method's wiring (ktsketch.diagram, notebook 05a)
"""
from __future__ import annotations
from pathlib import Path
from ktsketch.diagram import save_method_diagram

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    print(f"wrote {save_method_diagram(ROOT / 'nbs' / 'images' / 'method.png')}")
