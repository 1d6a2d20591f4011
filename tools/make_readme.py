"""Make README.md from nbs/index.ipynb (our stand-in for `nbdev_readme`, which needs quarto).

Drops cells marked `#| hide`, strips nbdev directive lines (`#| ...`) and writes markdown with nbconvert;
links to `images/...` and `results/...` (beside the notebook) become `nbs/...` (seen from the repository root).
`python tools/make_readme.py` writes README.md; `--check` exits 1 when README.md is out of date.
"""
from __future__ import annotations
import sys, re
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parents[1]

def readme_text(nb_path: Path = ROOT / "nbs" / "index.ipynb") -> str:
    "The README's markdown as made from `nb_path`."
    nb = nbformat.read(nb_path, as_version=4)
    keep = []
    for cell in nb.cells:
        lines = cell.source.splitlines()
        directives = [l.strip() for l in lines if l.strip().startswith("#|")]
        if any(re.match(r"#\|\s*hide\b", d) for d in directives): continue
        if cell.cell_type == "code":
            cell.source = "\n".join(l for l in lines if not l.strip().startswith("#|")).strip("\n")
            if not cell.source and not cell.get("outputs"): continue
        keep.append(cell)
    nb.cells = keep
    body, _ = MarkdownExporter().from_notebook_node(nb)
    body = re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"
    body = re.sub(r"\]\(((?:images|results)/[^)\s]+)\)", r"](nbs/\1)", body)   # files beside the notebook, seen from the root
    header = "<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n"
    return header + body

if __name__ == "__main__":
    text = readme_text()
    target = ROOT / "README.md"
    if "--check" in sys.argv[1:]:
        ok = target.exists() and target.read_text(encoding="utf-8") == text
        if not ok: print("README.md is out of date: run python tools/make_readme.py", file=sys.stderr)
        sys.exit(0 if ok else 1)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
