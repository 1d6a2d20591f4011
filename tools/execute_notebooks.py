"""Run the lesson notebooks and save what they show in them (figures as PNG), so a student sees every output on
GitHub and in the site (tools/build_site.py); tests/test_notebooks.py fails when a saved output is stale.

    python tools/execute_notebooks.py                                            # every notebook in nbs/, 2 at a time
    python tools/execute_notebooks.py nbs/00_core.ipynb nbs/04_students.ipynb   # just these
    python tools/execute_notebooks.py --slow nbs/11_does_kt_help.ipynb           # run its `#| slow` cells too
    python tools/execute_notebooks.py --check                                    # name stale notebooks and cells (exit 1)

How the outputs are made and marked:
- A notebook runs top to bottom in a fresh `python3` kernel started in nbs/, with one torch thread
  (OMP_NUM_THREADS=1 unless set) and matplotlib's inline backend (figures saved as PNG), importing the
  ktsketch of this checkout. The notebook is written only when every cell ran without an error, then cleaned
  exactly as `nbdev_clean` cleans it (execution counts and run metadata dropped), so nbdev_clean leaves it alone.
- Fast cells always run. Cells flagged with settings.ini's tst_flags (`#| slow`, `#| notest`: what CI skips) run
  only with --slow; then their first output is a stamp: the date, the seconds, the machine and the command. A run
  without --slow keeps a slow cell's saved outputs and stamp while its source is unchanged; a slow cell that was
  never run, or changed since, gets a stamp saying so and no outputs. `#| eval: false` cells never run.
- A notebook run with --slow is run with --slow again by default (its metadata says so); --fast overrides.
- Every code cell's metadata holds `ktsketch.source`, a hash of the source its outputs came from; the notebook's
  metadata holds `ktsketch.code` (a hash of all its code cells in order), the date, the command and the seconds.
  `stale(nb)` lists the cells changed, added, removed or moved since: tests/test_notebooks.py runs it in CI.
- Widgets are saved as their static PNG (ktsketch's apps carry one) and text; a widget with no static picture
  (a tqdm progress bar) is dropped, since no page without a kernel can show it. Progress lines written with
  carriage returns keep their last state.
What the hashes cannot see: a change in ktsketch/ (made in another notebook) that changes what a cell shows.
Run it over every notebook after the code settles and before a release.
"""
from __future__ import annotations
import argparse, datetime, hashlib, logging, os, re, sys, tempfile, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
KEY = "ktsketch"                 # the cell and notebook metadata key (settings.ini keeps it through nbdev_clean)
SKIP_TAG = "ktsketch-skip"       # set on the cells not to run while nbclient runs the notebook, removed after
WIDGET = "application/vnd.jupyter.widget-view+json"
STATIC = ("image/png", "image/jpeg", "image/svg+xml", "text/html", "text/markdown", "text/latex")

class NotebookFailed(Exception): "A cell raised: the notebook was not written."

def source_hash(source: str) -> str:
    "A short hash of a cell's source (what its outputs were made from)."
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]

def code_hash(nb) -> str:
    "A hash of all code cells' sources in order: changes when a code cell is edited, added, removed or moved."
    return source_hash("\n\x00\n".join(c.source for c in nb.cells if c.cell_type == "code"))

def directives(source: str) -> dict:
    "The nbdev directives at the top of a cell: `#| slow` -> {'slow': []}, `#| eval: false` -> {'eval:': ['false']}."
    out = {}
    for line in source.splitlines():
        if not line.strip(): continue
        m = re.match(r"\s*#\|\s*(\S+)(.*)", line)
        if not m: break
        out[m.group(1)] = m.group(2).split()
    return out

def skip_flags() -> set:
    "The flags CI's nbdev_test skips (settings.ini tst_flags: `notest slow`)."
    from nbdev.config import get_config
    return set(get_config(path=ROOT).tst_flags.split())

def cell_kind(cell, flags: set) -> str:
    "'never' (eval: false, nbdev_export), 'slow' (a CI-skipped flag) or 'fast'."
    d = directives(cell.source)
    if d.get("eval:", [""])[0].lower() == "false" or "nbdev_export(" in cell.source: return "never"
    return "slow" if flags & set(d) else "fast"

def command_for(path: Path, slow: bool) -> str:
    "The command that (re)makes the outputs of `path`, as written in its stamps."
    rel = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    return f"python tools/execute_notebooks.py {'--slow ' if slow else ''}{rel}"

def machine() -> str:
    "What the slow cells ran on, for their stamp."
    try:
        import torch
        if torch.cuda.is_available(): return f"GPU {torch.cuda.get_device_name(0)}"
    except ImportError: pass
    return f"CPU, {os.environ.get('OMP_NUM_THREADS', '?')} torch thread(s)"

def stamp(text_md: str, text_plain: str):
    "A markdown output that says how a slow cell's outputs were made (its metadata marks it as ours)."
    return nbformat.v4.new_output("display_data", data={"text/markdown": text_md, "text/plain": text_plain},
                                  metadata={KEY: "stamp"})

def ran_stamp(info: dict):
    s = f"ran on {info['date']} in {info['seconds']:.0f} s ({info['machine']}) by `{info['command']}`"
    return stamp(f"*`#| slow` cell, skipped by CI: the outputs below are from a real run; {s}.*",
                 f"#| slow cell, skipped by CI: the outputs below are from a real run; {s.replace('`', '')}.")

def not_run_stamp(command: str):
    return stamp(f"*`#| slow` cell, skipped by CI, and not run when these outputs were made: `{command}` runs it.*",
                 f"#| slow cell, skipped by CI, and not run when these outputs were made: {command} runs it.")

def _last_state(text: str) -> str:
    "What a terminal shows of text written with carriage returns (tqdm): each line's part after its last '\\r'."
    return "\n".join(l.rsplit("\r", 1)[-1] for l in text.split("\n"))

def tidy_outputs(outputs: list) -> list:
    "Widgets as their static picture and text (or dropped when they have none); progress lines in their last state."
    keep = []
    for o in outputs:
        if o.output_type == "stream" and "\r" in o.text:
            o.text = _last_state(o.text)
            if not o.text.strip(): continue
        if o.output_type in ("display_data", "execute_result") and WIDGET in o.get("data", {}):
            del o.data[WIDGET]
            if not any(k in o.data for k in STATIC): continue
        keep.append(o)
    return keep

def nbdev_cleaned(nb) -> str:
    "The notebook's text exactly as `nbdev_clean` writes it (with this repo's settings.ini)."
    from execnb.nbio import loads, nb2str
    from nbdev.clean import clean_nb
    from nbdev.config import get_config
    cfg = get_config(path=ROOT)
    if cfg.clear_all: raise SystemExit("settings.ini has clear_all = True: nbdev_clean would strip every output")
    d = loads(nbformat.writes(nb))
    clean_nb(d, False, cfg.get("allowed_metadata_keys").split(), cfg.get("allowed_cell_metadata_keys").split(), cfg.clean_ids)
    return nb2str(d)

def execute(path, slow: bool | None = None, timeout: int = 3600, quiet: bool = False) -> dict:
    """Run the notebook at `path` and save its outputs in it; returns what it did.
    `slow`: run the `#| slow` cells too (None: as the notebook was last run)."""
    from nbclient import NotebookClient
    from ktsketch.core import atomic_write_text
    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    meta = dict(nb.metadata.get(KEY, {}))
    if slow is None: slow = bool(meta.get("slow", False))
    flags, command = skip_flags(), command_for(path, slow)
    kinds = [cell_kind(c, flags) if c.cell_type == "code" else None for c in nb.cells]
    run = [k == "fast" or (k == "slow" and slow) for k in kinds]
    for c, r, k in zip(nb.cells, run, kinds):
        if k is not None and not r: c.metadata.setdefault("tags", []).append(SKIP_TAG)
    t0, seconds = time.time(), {}
    def started(cell, cell_index, **kw): seconds[cell_index] = time.time()
    def finished(cell, cell_index, **kw): seconds[cell_index] = time.time() - seconds[cell_index]
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False, store_widget_state=True,   # nbclient needs it for Output widgets
                            skip_cells_with_tag=SKIP_TAG,
                            record_timing=False, resources={"metadata": {"path": str(path.parent)}},
                            on_cell_execute=started, on_cell_executed=finished)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               MPLBACKEND="module://matplotlib_inline.backend_inline",   # CI exports Agg, which shows no figures
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    # the kernel's own stderr (its start-up warnings; a crash's last words) goes to a file, shown only if a cell fails
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as kernel_log:
        try: client.execute(env=env, stderr=kernel_log)
        except Exception as e:   # nbclient's CellExecutionError names the cell and carries its traceback
            kernel_log.seek(0)
            said = "\n".join(l for l in kernel_log.read().splitlines() if "without encryption" not in l)[-2000:]
            what = "a cell failed" if type(e).__name__ == "CellExecutionError" else f"the run failed ({type(e).__name__})"
            raise NotebookFailed(f"{path.name}: {what}, nothing written:\n{e}"
                                 + (f"\nthe kernel's stderr:\n{said}" if said.strip() else "")) from None
    date, where = datetime.date.today().isoformat(), machine()
    counts = dict(fast=0, slow_ran=0, slow_kept=0, slow_not_run=0, never=0)
    for i, (c, r, k) in enumerate(zip(nb.cells, run, kinds)):
        if k is None: continue
        if SKIP_TAG in c.metadata.get("tags", []):
            c.metadata["tags"].remove(SKIP_TAG)
            if not c.metadata["tags"]: del c.metadata["tags"]
        h, old = source_hash(c.source), c.metadata.get(KEY, {})
        if k == "never":
            c.outputs, c.metadata[KEY] = [], {"source": h}; counts["never"] += 1
        elif r:
            c.outputs = tidy_outputs(c.outputs)
            if k == "slow":
                info = dict(date=date, seconds=round(seconds.get(i, 0.0), 1), machine=where, command=command)
                c.outputs.insert(0, ran_stamp(info))
                c.metadata[KEY] = {"source": h, "slow": info}; counts["slow_ran"] += 1
            else:
                c.metadata[KEY] = {"source": h}; counts["fast"] += 1
        elif old.get("source") == h and isinstance(old.get("slow"), dict):
            counts["slow_kept"] += 1   # a slow cell that is unchanged since its real run: keep what that run showed
        else:
            c.outputs = [not_run_stamp(command_for(path, True))]
            c.metadata[KEY] = {"source": h, "slow": "not run"}; counts["slow_not_run"] += 1
    nb.metadata[KEY] = dict(code=code_hash(nb), date=date, command=command, seconds=round(time.time() - t0, 1), slow=slow)
    nb.metadata.pop("language_info", None); nb.metadata.pop("widgets", None)   # widget state: no page without a kernel uses it
    atomic_write_text(nbdev_cleaned(nb), path)
    out = dict(notebook=str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
               seconds=nb.metadata[KEY]["seconds"], kb=round(path.stat().st_size / 1024), **counts)
    if not quiet: print(" ".join(f"{k}={v}" for k, v in out.items()), flush=True)
    return out

def executed(nb) -> bool:
    "Whether the notebook's outputs were made by this tool."
    return "code" in nb.metadata.get(KEY, {})

def stale(nb) -> list[str]:
    "What is stale in an executed notebook: cells whose source changed since their outputs were made, cells added, removed or moved."
    problems = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code": continue
        meta, first = c.metadata.get(KEY, {}), (c.source.strip().splitlines() or [""])[0][:60]
        if "source" not in meta: problems.append(f"cell {i} ({first!r}) is new since the outputs were made")
        elif meta["source"] != source_hash(c.source): problems.append(f"cell {i} ({first!r}) changed since its outputs were made")
        elif meta.get("slow") is not None and not (c.outputs and c.outputs[0].get("metadata", {}).get(KEY) == "stamp"):
            problems.append(f"cell {i} ({first!r}) is a slow cell without its stamp")
    if not problems and nb.metadata.get(KEY, {}).get("code") != code_hash(nb):
        problems.append("code cells were removed or moved since the outputs were made")
    return problems

def unmarked_outputs(nb) -> list[int]:
    "Code cells of a notebook never run by this tool that carry outputs anyway (made by hand: nothing says they are current)."
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("outputs")]

def lesson_notebooks() -> list[Path]:
    return sorted(NBS.glob("*.ipynb"))

def check(paths) -> int:
    bad = 0
    for p in paths:
        nb = nbformat.read(p, as_version=4)
        problems = stale(nb) if executed(nb) else ["not executed (no outputs made by tools/execute_notebooks.py)"]
        for msg in problems: print(f"{Path(p).name}: {msg}")
        bad += bool(problems)
    if bad: print(f"{bad} notebook(s) stale or not executed: python tools/execute_notebooks.py NOTEBOOK")
    return 1 if bad else 0

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: every nbs/*.ipynb)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--slow", dest="slow", action="store_const", const=True, help="run `#| slow` cells too")
    mode.add_argument("--fast", dest="slow", action="store_const", const=False, help="skip `#| slow` cells (keep their saved outputs)")
    ap.add_argument("--check", action="store_true", help="run nothing: name the stale notebooks and cells, exit 1 if any")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="notebooks run at once (one kernel, one torch thread each)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds a cell may run")
    a = ap.parse_args(argv)
    paths = a.notebooks or lesson_notebooks()
    missing = [str(p) for p in paths if not p.is_file() or p.suffix != ".ipynb"]
    if missing:
        print(f"error: expected notebook files, got {missing}", file=sys.stderr)
        return 2
    if a.check: return check(paths)
    t0 = time.time()
    results = _run_all(paths, a)   # a notebook that fails is reported and left as it was; the others still run
    failed = [r for r in results if isinstance(r, NotebookFailed)]
    for e in failed: print(str(e), file=sys.stderr)
    print(f"ran {len(results) - len(failed)} notebook(s) in {time.time() - t0:.0f} s"
          + (f"; {len(failed)} failed and were not written: {[str(e).split(':')[0] for e in failed]}" if failed else "")
          + f"; nbs/ holds {sum(f.stat().st_size for f in NBS.rglob('*') if f.is_file()) / 2**20:.1f} MB")
    return 1 if failed else 0

def _execute_or_failure(path, slow, timeout):
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)   # nbclient's kernel poller complains at every shutdown
    try: return execute(path, slow, timeout)
    except NotebookFailed as e:
        print(f"notebook={Path(path).name} FAILED (the cell and its error are printed at the end)", flush=True)
        return e

def last_seconds(path) -> float:
    "How long the notebook took when its outputs were last made (infinity when never): the longest start first."
    try: return float(nbformat.read(path, as_version=4).metadata.get(KEY, {}).get("seconds", float("inf")))
    except Exception: return float("inf")

def _run_all(paths, a) -> list:
    if a.jobs > 1 and len(paths) > 1:
        order = sorted(range(len(paths)), key=lambda i: -last_seconds(paths[i]))   # longest first: the pool ends together
        with ProcessPoolExecutor(min(a.jobs, len(paths))) as pool:
            done = dict(zip(order, pool.map(_execute_or_failure, [paths[i] for i in order],
                                            [a.slow] * len(paths), [a.timeout] * len(paths))))
        return [done[i] for i in range(len(paths))]
    return [_execute_or_failure(p, a.slow, a.timeout) for p in paths]

if __name__ == "__main__":
    sys.exit(main())
