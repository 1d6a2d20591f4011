"""Drive a real JupyterLab in headless Chromium (Playwright), the way a student uses the notebooks.

`jupyter_lab(root_dir)` starts JupyterLab on 127.0.0.1 with a random free port and a token and always stops
it; `open_and_run(page, lab, notebook)` opens a notebook, runs all cells and waits until the kernel is idle.
"""
from __future__ import annotations
import contextlib, json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]

def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p: return p
    return None

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path
    def notebook_url(self, name: str) -> str: return f"{self.url}/lab/tree/{name}?token={self.token}"

@contextlib.contextmanager
def jupyter_lab(root_dir: Path, timeout: float = 90):
    "Start JupyterLab serving `root_dir` on loopback; yield a `Lab`; stop it whatever happens."
    port, token = free_port(), secrets.token_hex(16)
    root_dir = Path(root_dir)
    settings = root_dir / ".lab-settings"; settings.mkdir(exist_ok=True)
    # user settings: no "get notified about news?" toast, no update checks, no toasts at all
    user = settings / "user" / "@jupyterlab" / "apputils-extension"; user.mkdir(parents=True, exist_ok=True)
    (user / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True}))
    log = root_dir / "jupyterlab.log"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(settings / "config"), JUPYTERLAB_WORKSPACES_DIR=str(settings / "ws"),
               MPLBACKEND="module://matplotlib_inline.backend_inline", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}", "--ServerApp.allow_root=True",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           f"--LabApp.workspaces_dir={settings / 'ws'}", f"--LabApp.user_settings_dir={settings / 'user'}"]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None: raise RuntimeError(f"JupyterLab exited early:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200: break
            except OSError: pass
            if time.time() > deadline: raise RuntimeError(f"JupyterLab did not start in {timeout}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Lab(url, token, root_dir, log)
    finally:
        with contextlib.suppress(ProcessLookupError): os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError): os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

def open_and_run(page, lab: Lab, notebook: str, timeout_ms: int = 300_000):
    "Open `notebook`, wait for its kernel, run all cells, and wait until every cell has run."
    open_notebook(page, lab, notebook)
    run_all(page)
    wait_idle(page, timeout_ms)

def open_notebook(page, lab: Lab, notebook: str):
    "Open `notebook` and wait until its kernel is idle."
    page.goto(lab.notebook_url(notebook))
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                           timeout=120_000)

def run_all(page):
    "Start running every cell of the current notebook (returns at once, not when the cells have run)."
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return true; }")

def wait_idle(page, timeout_ms: int = 300_000):
    "Wait until no cell shows `[*]` and the kernel is idle."
    page.wait_for_timeout(500)
    page.wait_for_function("() => { const p = [...document.querySelectorAll('.jp-InputArea-prompt')];"
                           " const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;"
                           " return p.length > 0 && !p.some(e => e.textContent.includes('*')) && k.status === 'idle'; }",
                           timeout=timeout_ms)

def error_outputs(page) -> list[str]:
    "Texts of the error outputs (tracebacks) and stderr shown in the notebook."
    return page.eval_on_selector_all(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                                     "els => els.map(e => e.textContent)")

def launch_chromium(p):
    exe = chromium_path()
    return p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)

@dataclass
class LabServer:
    url: str            # the address `ktsketch lab` printed
    port: int
    token: str
    proc: subprocess.Popen
    output: list        # its stdout lines so far

@contextlib.contextmanager
def ktsketch_lab(log: Path, timeout: float = 120):
    """Start `ktsketch lab` on a free loopback port with a fresh token; yield a `LabServer` once it printed its
    address; stop it with Ctrl-C (SIGINT) whatever happens, and check that this stops it (returncode 0)."""
    import threading
    port, token = free_port(), secrets.token_hex(16)
    exe = Path(sys.executable).parent / "ktsketch"
    cmd = ([str(exe)] if exe.exists() else [sys.executable, "-c", "import sys; from ktsketch.cli import main; sys.exit(main())"])
    env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd + ["lab", "--port", str(port), "--token", token], stdout=subprocess.PIPE,
                                stderr=err, text=True, env=env, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))   # Ctrl-C works even when pytest runs in the background (SIGINT ignored)
    lines = []
    reader = threading.Thread(target=lambda: [lines.append(l.rstrip("\n")) for l in proc.stdout], daemon=True)
    reader.start()
    server = LabServer("", port, token, proc, lines)
    try:
        deadline = time.time() + timeout
        while not any(l.startswith("ktsketch lab: the apps are at ") for l in lines):
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"ktsketch lab did not print its address (exit {proc.poll()}):\n"
                                   + "\n".join(lines) + "\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        server.url = next(l for l in lines if l.startswith("ktsketch lab: the apps are at ")).split(" at ", 1)[1]
        yield server
    finally:
        if proc.poll() is None: proc.send_signal(signal.SIGINT)     # what Ctrl-C does
        try: proc.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError): os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        reader.join(5)
