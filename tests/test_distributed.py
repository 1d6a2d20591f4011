"`ktsketch pretrain` launched by torchrun: two CPU processes (gloo) train one teacher, the first writes it."
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest

def _torchrun():
    exe = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    return exe if Path(exe).exists() else None

@pytest.mark.skipif(_torchrun() is None, reason="torchrun is not installed beside this python")
def test_pretrain_with_two_processes(tmp_path):
    ktsketch = shutil.which("ktsketch") or str(Path(sys.executable).with_name("ktsketch"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([_torchrun(), "--standalone", "--nproc_per_node", "2", "--no-python", ktsketch, "pretrain",
                        "--out", str(tmp_path / "t"), "--domain", "photo", "--size", "32", "--steps", "4", "--batch_size", "4",
                        "--pool", "64", "--device", "cpu", "--threads", "1"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("photo teacher 32x32") == 1 and "2 processes" in r.stdout, r.stdout   # one report, from the first
    files = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert files == ["photo_teacher_32.json", "photo_teacher_32.pt"], files                  # no checkpoint left, one teacher
    m = json.loads((tmp_path / "t" / "photo_teacher_32.json").read_text())
    assert m["machine"]["processes"] == 2 and m["recipe"]["batch_size"] == 4 and m["curve"][-1]["step"] == 4

@pytest.mark.skipif(_torchrun() is None, reason="torchrun is not installed beside this python")
def test_batch_must_split_evenly(tmp_path):
    ktsketch = shutil.which("ktsketch") or str(Path(sys.executable).with_name("ktsketch"))
    r = subprocess.run([_torchrun(), "--standalone", "--nproc_per_node", "2", "--no-python", ktsketch, "pretrain",
                        "--out", str(tmp_path / "t"), "--domain", "photo", "--size", "32", "--steps", "2", "--batch_size", "3",
                        "--pool", "64", "--device", "cpu", "--threads", "1"],
                       capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=tmp_path)
    assert r.returncode != 0 and "--batch_size 3: expected a multiple of the 2 processes" in r.stderr, r.stderr[-2000:]
    assert "ktsketch/pretrain.py" not in r.stderr and "photo pool" not in r.stderr   # refused before any work, no traceback of ours
