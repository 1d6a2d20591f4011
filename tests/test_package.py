"""The package as a user installs it: light import, a working console script, a wheel that installs."""
from __future__ import annotations
import json, os, subprocess, sys, venv, zipfile, sysconfig
from pathlib import Path
import pytest
from conftest import ROOT, run_cli

HEAVY = ["jupyterlab", "playwright", "notebook", "nbdev"]

def _modules_after(stmt: str) -> set:
    code = f"import sys; {stmt}; import json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    return set(json.loads(out.stdout))

def test_import_is_light():
    mods = _modules_after("import ktsketch")
    assert "torch" not in mods, "import ktsketch must not import torch (it must stay instant)"
    assert not [m for m in HEAVY if m in mods]

def test_core_imports_no_heavy_optional_module():
    mods = _modules_after("import ktsketch.core, ktsketch.cli")
    assert not [m for m in HEAVY if m in mods], [m for m in HEAVY if m in mods]
    assert "matplotlib" not in mods, "matplotlib is imported only when a figure is drawn"

def test_info_command():
    r = run_cli("info", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "device   cpu" in r.stdout and "torch" in r.stdout

@pytest.mark.parametrize("args,needle", [
    (["no-such-command"], "unknown command"),
    (["info", "--device", "tpu"], "not a device name"),
    (["info", "--bogus"], "unrecognized arguments"),
])
def test_user_errors_are_one_line_exit_2(args, needle):
    r = run_cli(*args)
    assert r.returncode == 2
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr

def test_help_exits_0():
    r = run_cli("info", "--help")
    assert r.returncode == 0 and "--device" in r.stdout
    r = run_cli("--help")
    assert r.returncode == 0 and "info" in r.stdout and "--version" in r.stdout

def test_wheel_installs_into_a_clean_venv(tmp_path):
    "Build the wheel, install it (no deps) into a new venv that borrows the dependencies, run the script."
    dist = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(dist), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    wheel = next(dist.glob("ktsketch-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "ktsketch/core.py" in names and "ktsketch/cli.py" in names
    assert "ktsketch/results/ablation.csv" in names   # the demo report quotes notebook 11's table
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: torch" in meta and "Requires-Dist: piq" in meta
    env_dir = tmp_path / "venv"
    # the new venv must see its own ktsketch only: a PYTHONPATH pointing at a checkout (whose build left an
    # egg-info there) would make pip think ktsketch is installed already, and imports find the checkout
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # borrow the dependencies (torch is 5 GB) from this environment, but not its ktsketch
    (Path(site) / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                       capture_output=True, text=True, timeout=300, env=clean)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(env_dir / "bin" / "ktsketch"), "info", "--device", "cpu"], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path, env=clean)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(py), "-c", "import ktsketch; print(ktsketch.__file__)"], capture_output=True,
                       text=True, cwd=tmp_path, env=clean)
    assert r.stdout.strip().startswith(str(env_dir)), r.stdout
    r = subprocess.run([str(py), "-c", "from ktsketch.ablation import published_finding; print(published_finding())"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120, env=clean)
    assert r.returncode == 0 and "Data-limited check" in r.stdout, r.stderr[-2000:]
    r = subprocess.run([str(py), "-c", "from ktsketch.claim import shipped_conclusion; print(shipped_conclusion())"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120, env=clean)
    assert r.returncode == 0 and r.stdout.startswith("On synthetic faces"), (r.stdout, r.stderr[-2000:])
