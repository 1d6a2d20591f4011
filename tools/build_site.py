"""Build the course's website from the executed notebooks, offline, with mkdocs-jupyter (our stand-in for
nbdev_docs, which needs quarto):

    python tools/build_site.py                  # every notebook in nbs/ -> _site/ (open _site/index.html)
    python tools/build_site.py --out /tmp/site nbs/index.ipynb nbs/05a_diagram.ipynb   # some of them

The pages show the outputs saved in the notebooks (tools/execute_notebooks.py makes them; nothing is run here).
Each notebook is copied into a temporary docs folder as a reader should see it: cells marked `#| hide` dropped,
nbdev's `#| ...` directive lines taken out of the code; nbs/index.ipynb is the home page; images/ and results/
are copied beside the pages. The Material theme is used without web fonts, so a build needs no network; the
pages load MathJax from its CDN when viewed (equations show as LaTeX without it).
"""
from __future__ import annotations
import argparse, re, shutil, subprocess, sys, tempfile
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
ASSETS = ("images", "results")   # folders beside the notebooks that their markdown links to
MARKER = ".ktsketch-site"        # in every site this tool builds: only such a folder is ever replaced

# the plugin's default is no MathJax at all; the pages load it from this CDN when viewed (our choice: no copy ships in a wheel)
MATHJAX = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe"

class SiteError(Exception): "The site could not be built; nothing was replaced."

def reader_copy(nb):
    "The notebook as a reader sees it: `#| hide` cells dropped, nbdev directive lines stripped from code."
    keep = []
    for cell in nb.cells:
        lines = cell.source.splitlines()
        if cell.cell_type == "code":
            directives = [l.strip() for l in lines if l.strip().startswith("#|")]
            if any(re.match(r"#\|\s*(hide|default_exp)\b", d) for d in directives): continue
            cell.source = "\n".join(l for l in lines if not l.strip().startswith("#|")).strip("\n")
            if not cell.source and not cell.get("outputs"): continue
        keep.append(cell)
    nb.cells = keep
    return nb

def title(nb, fallback: str) -> str:
    "The notebook's H1."
    for cell in nb.cells:
        m = re.match(r"#\s+(.+)", cell.source.strip()) if cell.cell_type == "markdown" else None
        if m: return m.group(1).strip()
    return fallback

def mkdocs_yml(nav: list) -> str:
    lines = ["site_name: ktsketch", "site_description: Face photo-sketch synthesis via knowledge transfer, as notebooks a course can run",
             "theme:", "  name: material", "  font: false", "  features: [navigation.instant, content.code.copy]",
             "plugins:", "  - search", "  - mkdocs-jupyter:", "      execute: false", "      include_source: true",
             "      ignore_h1_titles: true",   # the nav's titles (number and H1) name the pages
             f"      custom_mathjax_url: {MATHJAX!r}", "nav:"]
    lines += [f"  - {t!r}: {f}" for t, f in nav]
    return "\n".join(lines) + "\n"

def build_site(notebooks=None, # notebooks to include (default: every nbs/*.ipynb)
               out: Path = ROOT / "_site", # the site's folder (replaced if an earlier build made it; anything else is refused)
               quiet: bool = True,
              ) -> Path:
    "Build the site from `notebooks` into `out`; returns `out`. Warns about notebooks whose outputs are stale."
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise SiteError(f"--out {out}: exists and is not a site this tool built; it is left alone (choose another folder)")
    sys.path.insert(0, str(ROOT / "tools"))
    from execute_notebooks import executed, stale
    paths = [Path(p).resolve() for p in (notebooks or sorted(NBS.glob("*.ipynb")))]
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"; docs.mkdir()
        nav = []
        for p in sorted(paths, key=lambda p: (p.name != "index.ipynb", p.name)):   # the home page first
            nb = nbformat.read(p, as_version=4)
            if not executed(nb): print(f"warning: {p.name} has no saved outputs (python tools/execute_notebooks.py nbs/{p.name})", file=sys.stderr)
            elif stale(nb): print(f"warning: {p.name}'s saved outputs are stale (python tools/execute_notebooks.py nbs/{p.name})", file=sys.stderr)
            nbformat.write(reader_copy(nb), docs / p.name)
            nav.append(("Home" if p.name == "index.ipynb" else f"{p.stem.split('_')[0]} · {title(nb, p.stem)}", p.name))
        for a in ASSETS:
            if (NBS / a).is_dir(): shutil.copytree(NBS / a, docs / a)
        (Path(tmp) / "mkdocs.yml").write_text(mkdocs_yml(nav), encoding="utf-8")
        site = Path(tmp) / "site"
        r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q" if quiet else "-v", "-f", str(Path(tmp) / "mkdocs.yml"),
                            "-d", str(site)], capture_output=True, text=True, cwd=tmp)   # its cache (.cache/) stays in tmp
        if r.returncode != 0: raise SiteError(f"mkdocs build failed:\n{r.stderr[-4000:]}")
        (site / MARKER).write_text("built by tools/build_site.py: replaced by the next build\n", encoding="utf-8")
        staging = out.with_name(out.name + ".building")
        if staging.exists(): shutil.rmtree(staging)
        shutil.copytree(site, staging)
        if out.exists(): shutil.rmtree(out)
        staging.rename(out)
    return out

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="notebooks to include (default: every nbs/*.ipynb)")
    ap.add_argument("--out", type=Path, default=ROOT / "_site", help="the site's folder (replaced; default _site/)")
    a = ap.parse_args(argv)
    missing = [str(p) for p in a.notebooks if not p.is_file() or p.suffix != ".ipynb"]
    if missing:
        print(f"error: expected notebook files, got {missing}", file=sys.stderr)
        return 2
    try: out = build_site(a.notebooks or None, a.out)
    except SiteError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"wrote {out}/index.html")
    return 0

if __name__ == "__main__":
    sys.exit(main())
