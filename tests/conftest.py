"""Shared fixtures for the tests that notebooks cannot do well: the command line, the package, the browser."""
from __future__ import annotations
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT

def ktsketch_exe() -> list[str]:
    "The installed console script, or `python -m`-style fallback through the same interpreter."
    exe = Path(sys.executable).parent / "ktsketch"
    if exe.exists(): return [str(exe)]
    return [sys.executable, "-c", "import sys; from ktsketch.cli import main; sys.exit(main())"]

def run_cli(*args, timeout=600, env=None, cwd=None) -> subprocess.CompletedProcess:
    "Run `ktsketch ARGS` in a subprocess, capturing text output."
    e = dict(os.environ, **(env or {}))
    return subprocess.run(ktsketch_exe() + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=cwd)
