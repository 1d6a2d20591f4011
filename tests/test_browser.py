"""The widgets of ktsketch.widgets in a real JupyterLab, driven by headless Chromium through Playwright.

The first test: one JupyterLab (127.0.0.1, random port, token; stopped whatever happens), one small notebook that
the test writes: it trains a kt pair of students under a `TrainingDashboard` (a long run, stopped by
clicking Stop while its cell is still running), then shows a `SampleExplorer`, a `FeatureViewer` and a
`LossWeightLab`, plus one explorer whose callback is made to fail on purpose. The test moves sliders, clicks
buttons and checks what the page shows: the images change, the table grows, and no cell, widget or console
reports an error, except the deliberately broken explorer, which must be reported (that proves the check
fails when a widget callback raises). The second: `ktsketch lab` (Voila, no code cells) on a free loopback port,
every app of notebooks 07 and 07b on the page, each app's main control moved, the page changing and no error shown.
Screenshots go to the test's temp dir (and to $KTSKETCH_SHOTS if set).
"""
from __future__ import annotations
import contextlib, os, re, shutil, time
from pathlib import Path
import pytest
from lab import (jupyter_lab, open_notebook, run_all, wait_idle, error_outputs, launch_chromium, chromium_path, ktsketch_lab,
                 free_port)

try:
    from playwright.sync_api import sync_playwright
except ImportError:   # pragma: no cover
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="playwright (python) is not installed: pip install playwright"),
    pytest.mark.skipif(chromium_path() is None, reason="no chromium on PATH: apt-get install chromium (never `playwright install`)"),
]

STEPS = 5000   # the dashboard's run: far more than the test waits for, so only the Stop button can end it in time

CELLS = [
    # 0: a tiny world (few faces, the shipped teachers) and tiny students
    """import torch
torch.set_num_threads(1)
from pathlib import Path
from ktsketch.widgets import *
from ktsketch.transfer import Trainer, TrainConfig
world = tiny_world(n_train=8, n_test=4)
TINY = dict(size=world.size, widths=(4, 8, 8, 8), n_res=1, batch_size=2, n_augs=2, lr=2e-3, mutual_ramp=5,
            n_samples=2, ckpt_every=0, progress=False, device="cpu")""",
    # 1: the dashboard, shown before training
    f"""kt = Trainer(TrainConfig.from_preset("kt", steps={STEPS}, sample_every=10, **TINY), world.train_tensors,
             teachers=world.teachers, out_dir=Path("run_kt"))
dash = TrainingDashboard(kt, refresh_s=0.3, n_samples=2)
dash""",
    # 2: the long run: blocks this cell until the test clicks Stop
    "dash.fit()",
    # 3: after the stop
    """print(f"stopped={kt.stopped} step={kt.step} checkpoint={Path('run_kt/checkpoint.pt').exists()}")""",
    # 4: the explorer
    """pixel = Trainer(TrainConfig.from_preset("pixel", steps=10, sample_every=0, **TINY), world.train_tensors).fit()
explorer = SampleExplorer(world.test, {"pixel": (pixel.G, pixel.F), "kt": (kt.G, kt.F)}, teachers=world.teachers,
                          size=world.size)
explorer""",
    # 5: the feature viewer
    """viewer = FeatureViewer(kt, world.test_tensors)
viewer""",
    # 6: the loss-weight lab
    """lab = LossWeightLab(world, steps=10, widths=(4, 8, 8, 8), n_seeds=2)
lab""",
    # 7: an explorer whose callback fails for any face but the first: the test must see it
    """broken = SampleExplorer(world.test, {"pixel": (pixel.G, pixel.F)}, size=world.size)
_panel = broken.panel
broken.panel = lambda i: _panel(i) if i == 0 else 1 / 0
broken.ui.add_class("deliberately-broken")
broken""",
]

def write_notebook(path: Path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nbformat.write(nb, path)

# ---- what the page shows ----
def widget_errors(page, root: str = "") -> list[str]:
    "Texts of the apps' error areas (a guarded callback that raised) under `root`."
    return page.eval_on_selector_all(f"{root} .ktsketch-error".strip(),
                                     "els => els.map(e => e.textContent.trim()).filter(t => t.length > 0)")

def page_errors(page, console: list, exclude: str | None = None) -> list[str]:
    "Every error the page shows: error/stderr outputs, widget error areas, widget render failures, console errors."
    errs = [f"output: {t}" for t in error_outputs(page)]
    for t in page.eval_on_selector_all(".ktsketch-error", "els => els.filter(e => e.textContent.trim().length > 0)"
                                       ".map(e => [e.closest('.deliberately-broken') !== null, e.textContent.trim()])"):
        if not (exclude == "deliberately-broken" and t[0]): errs.append(f"widget: {t[1]}")
    errs += [f"render: {t}" for t in page.eval_on_selector_all(
        ".jp-OutputArea-output", "els => els.map(e => e.textContent).filter(t => t.includes('Error displaying widget'))")]
    errs += [f"console: {m}" for m in console]
    return errs

# true as soon as the page shows an error (other than the deliberately broken app's): waits end early on it
ANY_ERROR = ("[...document.querySelectorAll('.ktsketch-error')].some(e => e.textContent.trim() && !e.closest('.deliberately-broken'))"
             " || document.querySelectorAll(\".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']\").length > 0")

def wait_for(page, console: list, condition: str, arg=None, timeout_ms: int = 60_000):
    "Wait until the JS `condition(arg)` holds or an error shows; fail with the page's errors if any."
    page.wait_for_function(f"arg => ({condition})(arg) || {ANY_ERROR}", arg=arg, timeout=timeout_ms)
    errs = page_errors(page, console, exclude="deliberately-broken")
    assert errs == [], errs

def img_src(page, selector: str) -> str:
    return page.eval_on_selector(selector, "e => e.src")

def wait_src_change(page, console: list, selector: str, old: str, timeout_ms: int = 30_000):
    wait_for(page, console, "([s, old]) => { const e = document.querySelector(s); return e && e.src && e.src !== old; }",
             [selector, old], timeout_ms)

def text(page, selector: str) -> str:
    return page.eval_on_selector(selector, "e => e.textContent")

def press_slider(page, root: str, index: int, key: str, times: int = 1):
    "Focus the index-th slider handle under `root` and press `key` (a keyboard move: what a student's drag does)."
    handle = page.locator(f"{root} .widget-slider .noUi-handle").nth(index)
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(times): handle.press(key)

def shot(page, shots: list, folder: Path, name: str, selector: str | None = None):
    path = folder / f"{len(shots):02d}-{name}.png"
    if selector is None: page.screenshot(path=str(path), full_page=False)
    else:
        loc = page.locator(selector).first
        loc.scroll_into_view_if_needed()
        loc.screenshot(path=str(path))
    shots.append(path)

@contextlib.contextmanager
def lab_page(root: Path, name: str):
    """JupyterLab serving `root`, Chromium showing `root/name` with every cell run: yields (page, console, shots, folder).
    Browser and server are stopped whatever happens; screenshots (and the server log) go to $KTSKETCH_SHOTS if set."""
    folder = root.parent / "shots"; folder.mkdir(exist_ok=True)
    shots, console = [], []
    try:
        with sync_playwright() as p, jupyter_lab(root) as lab:
            browser = launch_chromium(p)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: console.append(f"page error: {e}"))
                open_notebook(page, lab, name)
                run_all(page)
                yield page, console, shots, folder
            finally:
                browser.close()
    finally:
        keep = os.environ.get("KTSKETCH_SHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for s in shots: shutil.copy(s, Path(keep) / s.name)
            if (root / "jupyterlab.log").exists(): shutil.copy(root / "jupyterlab.log", Path(keep) / "jupyterlab.log")

def test_widgets_in_jupyterlab(tmp_path):
    root = tmp_path / "lab"; root.mkdir()
    write_notebook(root / "widgets.ipynb")
    t0 = time.perf_counter()
    with lab_page(root, "widgets.ipynb") as (page, console, shots, folder):

        # 1. the dashboard trains in a running cell; Stop ends the run (kernel subshells handle the click)
        dash = ".ktsketch-dashboard"
        wait_for(page, console, "s => { const e = document.querySelector(s); const m = e && e.textContent.match(/training: step (\\d+)/);"
                 " return m && +m[1] >= 12; }", f"{dash} .ktsketch-status")
        wait_for(page, console, "s => { const e = document.querySelector(s); return e && e.src; }", f"{dash} img", 10_000)
        shot(page, shots, folder, "dashboard-training", dash)
        page.locator(f"{dash} button", has_text="Stop").click()
        wait_for(page, console, "s => document.querySelector(s).textContent.startsWith('stopped')",
                 f"{dash} .ktsketch-status", 30_000)
        status = text(page, f"{dash} .ktsketch-status")
        step = int(re.search(r"stopped: step (\d+) / (\d+)", status).group(1))
        assert 12 <= step < STEPS, status
        assert "checkpoint" in status and "run_kt" in status, status
        wait_idle(page, 120_000)
        assert (root / "run_kt" / "checkpoint.pt").exists()
        printed = page.eval_on_selector_all(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stdout']",
                                            "els => els.map(e => e.textContent)")
        assert any(f"stopped=True step={step} checkpoint=True" in t for t in printed), printed
        shot(page, shots, folder, "dashboard-stopped", dash)
        assert page_errors(page, console, exclude="deliberately-broken") == []

        # 2. the explorer: a slider move redraws the faces and the scores
        ex = ".ktsketch-explorer:not(.deliberately-broken)"
        shot(page, shots, folder, "explorer-face0", ex)
        old, old_table = img_src(page, f"{ex} img"), text(page, f"{ex} .ktsketch-scores")
        press_slider(page, ex, 0, "ArrowRight")
        wait_src_change(page, console, f"{ex} img", old)
        wait_for(page, console, "s => document.querySelector(s).textContent.trim() === '1'", f"{ex} .widget-readout")
        assert text(page, f"{ex} .ktsketch-scores") != old_table
        for name in ("sketch teacher", "photo teacher", "pixel", "kt"): assert name in text(page, f"{ex} .ktsketch-scores")
        shot(page, shots, folder, "explorer-face1", ex)

        # 3. the feature viewer: another level redraws the maps, and the channel range follows the teacher
        fv = ".ktsketch-viewer"
        old = img_src(page, f"{fv} img")
        press_slider(page, fv, 1, "ArrowRight", 2)        # level 0 -> 2
        wait_src_change(page, console, f"{fv} img", old)
        wait_for(page, console, "s => { const e = document.querySelector(s); return e && e.textContent.startsWith('L2:'); }",
                 f"{fv} .ktsketch-losses b", 10_000)
        shot(page, shots, folder, "viewer-level2", fv)

        # 4. the lab: each click trains and adds a row
        lw = ".ktsketch-lab"
        rows = lambda: page.eval_on_selector_all(f"{lw} table.ktsketch-runs tbody tr", "els => els.length")
        old = img_src(page, f"{lw} img")
        page.locator(f"{lw} button", has_text="Train students").click()
        wait_for(page, console, "s => document.querySelectorAll(s).length === 1", f"{lw} table.ktsketch-runs tbody tr")
        wait_src_change(page, console, f"{lw} img", old)
        press_slider(page, lw, 0, "Home")                 # lambda_teacher -> 0
        old = img_src(page, f"{lw} img")
        page.locator(f"{lw} button", has_text="Train students").click()
        wait_for(page, console, "s => document.querySelectorAll(s).length === 2", f"{lw} table.ktsketch-runs tbody tr")
        wait_src_change(page, console, f"{lw} img", old)
        assert rows() == 2
        cells = page.eval_on_selector_all(f"{lw} table.ktsketch-runs tbody tr td:nth-of-type(3)", "els => els.map(e => e.textContent)")
        assert [float(c) for c in cells] == [1.0, 0.0], cells          # the lambda_teacher column: one row per run
        assert "±" in text(page, f"{lw} table.ktsketch-runs")              # two seeds a run: mean ± SD
        shot(page, shots, folder, "lab-two-runs", lw)

        wait_idle(page, 30_000)
        assert page_errors(page, console, exclude="deliberately-broken") == []
        shot(page, shots, folder, "page")

        # 5. the check itself: a callback that raises must be reported
        bx = ".deliberately-broken"
        assert widget_errors(page, bx) == []
        press_slider(page, bx, 0, "ArrowRight")
        page.wait_for_function("s => { const e = document.querySelector(s); return e && e.textContent.includes('ZeroDivisionError'); }",
                               arg=f"{bx} .ktsketch-error", timeout=30_000)
        shot(page, shots, folder, "broken-callback-reported", bx)
        errs = page_errors(page, console)
        assert len(errs) == 1 and errs[0].startswith("widget: ") and "ZeroDivisionError" in errs[0], errs
    assert time.perf_counter() - t0 < 300

# ---- the lesson notebooks themselves (about a minute each on 2 cores: run on demand, not in CI) ----
APPS = {"07_widgets.ipynb": (".ktsketch-dashboard", ".ktsketch-explorer", ".ktsketch-viewer", ".ktsketch-lab"),
        "07b_apps.ipynb": (".ktsketch-fsim", ".ktsketch-nlda", ".ktsketch-ablation", ".ktsketch-translate")}
ALL_APPS = tuple(a for apps in APPS.values() for a in apps)

@pytest.mark.skipif(os.environ.get("KTSKETCH_BROWSER_LESSONS") != "1",
                    reason="set KTSKETCH_BROWSER_LESSONS=1 to run the lesson notebooks in JupyterLab (about a minute each)")
@pytest.mark.parametrize("name", ["07_widgets.ipynb", "07b_apps.ipynb", "10_walkthrough.ipynb"])
def test_lesson_notebook_in_jupyterlab(tmp_path, name):
    src = Path(__file__).resolve().parents[1] / "nbs" / name
    if not src.exists(): pytest.skip(f"nbs/{name} does not exist yet")
    root = tmp_path / "lab"; root.mkdir()
    shutil.copy(src, root / name)   # the notebook names its kernel (python3): Lab opens it without asking
    with lab_page(root, name) as (page, console, shots, folder):
        wait_idle(page, 300_000)
        shot(page, shots, folder, name.replace(".ipynb", ""))
        present = [a for a in ALL_APPS if page.locator(a).count() > 0]
        for app in present:
            page.wait_for_function("s => [...document.querySelectorAll(s + ' img')].every(e => e.src && e.naturalWidth > 0)",
                                   arg=app, timeout=30_000)
            shot(page, shots, folder, app.strip(".").replace("ktsketch-", ""), app)
        if name in APPS: assert present == list(APPS[name])
        # the lesson's own deliberately failing toy app is the only error it may show
        errs = [e for e in page_errors(page, console) if "divide by zero" not in e and "ZeroDivisionError" not in e]
        assert errs == [], errs

# ---- ktsketch lab: every app, served by Voila without code cells ----
LAB_APPS = ("dashboard", "explorer", "viewer", "lab", "fsim", "nlda", "ablation", "translate")
FONT_CDN = "https://cdn.jsdelivr.net/npm/@fortawesome/"   # Voila's lab template links Font Awesome (button icons) from a CDN

def voila_errors(page, console: list, failed: list) -> list[str]:
    "Every error the Voila page shows: error areas, stderr or error outputs, render failures, console errors."
    errs = [f"widget: {t}" for t in widget_errors(page)]
    errs += [f"output: {t}" for t in page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']",
        "els => els.map(e => e.textContent)")]
    errs += [f"render: {t}" for t in page.eval_on_selector_all(
        ".jp-OutputArea-output", "els => els.map(e => e.textContent).filter(t => t.includes('Error displaying widget'))")]
    offline_fonts = failed and all(u.startswith(FONT_CDN) for u in failed)   # no network here: only the icons are missing
    errs += [f"console: {m}" for m in console if not (offline_fonts and m.startswith("Failed to load resource"))]
    errs += [f"request failed: {u}" for u in failed if not u.startswith(FONT_CDN)]
    return errs

def test_ktsketch_lab_in_voila(tmp_path):
    import http.client
    folder = tmp_path / "shots"; folder.mkdir()
    shots, console, failed = [], [], []
    t0 = time.perf_counter()
    try:
        with ktsketch_lab(tmp_path / "voila.log") as server, sync_playwright() as p:
            assert server.url == f"http://127.0.0.1:{server.port}/?token={server.token}"
            # no token, no page: the server answers with a redirect to its login page
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("GET", "/")
            r = conn.getresponse()
            assert r.status in (302, 403) and b"ktsketch lab" not in r.read(), r.status
            conn.close()
            browser = launch_chromium(p)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: console.append(f"page error: {e}"))
                page.on("requestfailed", lambda req: failed.append(req.url))
                page.goto(server.url, timeout=300_000)     # Voila runs the notebook, then sends the page
                for app in LAB_APPS:
                    page.wait_for_function("s => [...document.querySelectorAll(s + ' img')].some(e => e.src && e.naturalWidth > 0)",
                                           arg=f".ktsketch-{app}", timeout=120_000)
                assert page.locator(".jp-InputArea-editor").count() == 0          # no code on the page
                assert "LabApps" not in page.inner_text("body")
                assert voila_errors(page, console, failed) == []
                shot(page, shots, folder, "voila-top")

                def vwait(condition, arg=None, timeout_ms=60_000):
                    "Wait until the JS `condition(arg)` holds or an error shows; then no error may show."
                    page.wait_for_function(f"arg => ({condition})(arg) || {ANY_ERROR}", arg=arg, timeout=timeout_ms)
                    assert voila_errors(page, console, failed) == []

                def moved(app, name, action, ready=None):
                    "Screenshot the app, act on its main control, wait until its first picture changes, screenshot again."
                    root = f".ktsketch-{app}"
                    shot(page, shots, folder, f"voila-{name}-before", root)
                    old = img_src(page, f"{root} img")
                    action(root)
                    vwait("([s, old]) => { const e = document.querySelector(s); return e && e.src && e.src !== old; }",
                          [f"{root} img", old], 120_000)
                    if ready: ready(root)
                    shot(page, shots, folder, f"voila-{name}", root)

                # the dashboard: Train runs in a thread (no cell to run here), Stop ends it
                def train_and_stop(root):
                    page.locator(f"{root} button", has_text="Train 200 steps").click()
                    vwait("s => { const m = document.querySelector(s).textContent.match(/training: step (\\d+)/); return m && +m[1] >= 20; }",
                          f"{root} .ktsketch-status", 120_000)
                    page.locator(f"{root} button", has_text="Stop").click()
                def stopped(root):
                    vwait("s => document.querySelector(s).textContent.startsWith('stopped')", f"{root} .ktsketch-status")
                    step = int(re.search(r"stopped: step (\d+) / 200", text(page, f"{root} .ktsketch-status")).group(1))
                    assert 20 <= step < 200
                moved("dashboard", "dashboard", train_and_stop, stopped)
                moved("explorer", "explorer", lambda r: press_slider(page, r, 0, "ArrowRight"))
                moved("viewer", "viewer", lambda r: press_slider(page, r, 1, "ArrowRight", 2))
                def one_seed_run(root):
                    press_slider(page, root, 3, "Home")                  # seeds -> 1
                    page.locator(f"{root} button", has_text="Train students").click()
                moved("lab", "loss-weight-lab", one_seed_run,
                      lambda r: vwait("s => document.querySelectorAll(s).length === 1", f"{r} table.ktsketch-runs tbody tr"))
                moved("fsim", "fsim-playground", lambda r: press_slider(page, r, 1, "ArrowRight", 2))
                moved("nlda", "nlda-explorer", lambda r: press_slider(page, r, 1, "ArrowRight"))
                moved("ablation", "ablation-browser",
                      lambda r: page.locator(f"{r} select").first.select_option(label="photo->sketch L1 (p2s_l1)"))

                # translate-your-own-image: a file that is not an image is a message in the app; a photo is translated
                def upload(root, path):
                    "What a student does: click the upload button, pick a file in the dialog."
                    with page.expect_file_chooser() as chooser:
                        page.locator(f"{root} .widget-upload").click()
                    chooser.value.set_files(str(path))
                tr = ".ktsketch-translate"
                (tmp_path / "notes.txt").write_text("not an image")
                upload(tr, tmp_path / "notes.txt")
                page.wait_for_function("s => document.querySelector(s).textContent.includes('notes.txt: not an image')",
                                       arg=f"{tr} .ktsketch-error", timeout=60_000)
                shot(page, shots, folder, "voila-translate-bad-upload", tr)
                assert [e for e in voila_errors(page, console, failed) if "notes.txt: not an image" not in e] == []
                from ktsketch.synthetic import synthetic_splits
                synthetic_splits(seed=3, n_train=0, n_val=0, n_test=1, n_pool=0).test.get(0).photo.save(tmp_path / "face.png")
                upload(tr, tmp_path / "face.png")
                page.wait_for_function("s => document.querySelector(s).textContent.includes('face.png')",   # (the old message
                                       arg=f"{tr} .ktsketch-status", timeout=60_000)                        # shows until then)
                page.wait_for_function("s => !document.querySelector(s).textContent.trim()", arg=f"{tr} .ktsketch-error")
                shot(page, shots, folder, "voila-translate", tr)
                assert voila_errors(page, console, failed) == []          # the good upload cleared the message
                shot(page, shots, folder, "voila-page")
            finally:
                browser.close()
        assert server.proc.returncode == 0 and "ktsketch lab: stopped" in server.output, server.output
        with contextlib.suppress(OSError):
            import socket
            with socket.create_connection(("127.0.0.1", server.port), timeout=2): pytest.fail("Voila still listens after Ctrl-C")
    finally:
        keep = os.environ.get("KTSKETCH_SHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for s in shots: shutil.copy(s, Path(keep) / s.name)
            if (tmp_path / "voila.log").exists(): shutil.copy(tmp_path / "voila.log", Path(keep) / "voila.log")
    assert time.perf_counter() - t0 < 400
