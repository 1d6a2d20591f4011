"`ktsketch pretrain` and `ktsketch train` launched by torchrun: two CPU processes (gloo) train as one process would, the first writes."
import csv, json, os, shutil, subprocess, sys
from pathlib import Path
import pytest
import torch

def _torchrun():
    exe = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    return exe if Path(exe).exists() else None

needs_torchrun = pytest.mark.skipif(_torchrun() is None, reason="torchrun is not installed beside this python")

@needs_torchrun
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

@needs_torchrun
def test_batch_must_split_evenly(tmp_path):
    ktsketch = shutil.which("ktsketch") or str(Path(sys.executable).with_name("ktsketch"))
    r = subprocess.run([_torchrun(), "--standalone", "--nproc_per_node", "2", "--no-python", ktsketch, "pretrain",
                        "--out", str(tmp_path / "t"), "--domain", "photo", "--size", "32", "--steps", "2", "--batch_size", "3",
                        "--pool", "64", "--device", "cpu", "--threads", "1"],
                       capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=tmp_path)
    assert r.returncode != 0 and "--batch_size 3: expected a multiple of the 2 processes" in r.stderr, r.stderr[-2000:]
    assert "ktsketch/pretrain.py" not in r.stderr and "photo pool" not in r.stderr   # refused before any work, no traceback of ours

# `ktsketch train`: tiny kt runs (32x32, 4 pairs, teachers pre-trained 2 steps in the run), global batch 4
TRAIN = ["--preset", "kt", "--size", "32", "--pairs", "4", "--test_pairs", "6", "--small_teachers", "--teacher_steps", "2",
         "--batch_size", "4", "--checkpoint_seconds", "0", "--device", "cpu", "--threads", "1"]

def _train(out, *args, processes=1):
    "`python -m ktsketch.cli train`, in one process or under torchrun (the command the docs give)."
    launch = [sys.executable] if processes == 1 else [_torchrun(), "--standalone", "--nproc_per_node", str(processes)]
    return subprocess.run([*launch, "-m", "ktsketch.cli", "train", "--out", str(out), *TRAIN, *args], capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=Path(out).parent)

@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    "The reference: 4 steps in one process."
    out = tmp_path_factory.mktemp("one") / "run"
    r = _train(out, "--steps", "4")
    assert r.returncode == 0, r.stderr[-3000:]
    return out

def _history(run):
    return [{k: float(v) for k, v in row.items() if k != "processes"} for row in csv.DictReader(open(run / "history.csv"))]

def _same_students(a, b, tol=1e-5):
    "The largest weight difference of two runs, leaving out the conv biases an InstanceNorm cancels (they change no output)."
    from ktsketch.transfer import TrainConfig, build_generators, inert_biases
    sa, sb = (torch.load(r / "checkpoint.pt", map_location="cpu", weights_only=False) for r in (a, b))
    G, F = build_generators(TrainConfig(**sa["config"]))
    inert = {f"G.{n}" for n in inert_biases(G)} | {f"F.{n}" for n in inert_biases(F)}
    diffs = {f"{net}.{k}" if net != "adapters" else f"adapters.{k}": (v - sb["models"][net][k]).abs().max().item()
             for net, m in sa["models"].items() for k, v in m.items()}
    assert len(inert) > 0 and inert <= set(diffs)
    worst = max(d for k, d in diffs.items() if k not in inert)
    assert worst < tol, sorted(diffs.items(), key=lambda kv: -kv[1])[:5]
    ha, hb = _history(a), _history(b)
    assert [r["step"] for r in ha] == [r["step"] for r in hb]
    assert max(abs(x[k] - y[k]) / max(1.0, abs(x[k])) for x, y in zip(ha, hb) for k in x) < 1e-5   # the logs: the global batch's
    return worst, sb

@needs_torchrun
def test_train_two_processes_equal_one(one_process, tmp_path):
    "The same global batch of 4: two processes of 2 images each train the students to the weights one process of 4 reaches."
    out = tmp_path / "two"
    r = _train(out, "--steps", "4", processes=2)
    assert r.returncode == 0, r.stderr[-3000:]
    worst, state = _same_students(one_process, out)
    assert state["processes"] == 2 and state["step"] == 4
    results = [l for l in r.stdout.splitlines() if l.startswith("kt: p2s FSIM")]
    assert len(results) == 1 and results[0].endswith("(2 processes)"), r.stdout     # one report, from the first
    assert r.stderr.count("kt (2 processes)") >= 1                                    # one progress bar, saying so
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one_process.iterdir())
    assert [p.name for p in (out / "samples").iterdir()] == ["step_000004.png"]
    m1, m2 = (json.loads((r / "metrics.json").read_text()) for r in (one_process, out))
    assert (m1["processes"], m2["processes"]) == (1, 2) and m2["steps"] == 4
    assert abs(m1["p2s"]["fsim"] - m2["p2s"]["fsim"]) < 1e-4
    assert list(csv.DictReader(open(out / "history.csv")))[-1]["processes"] == "2"

@needs_torchrun
def test_train_resume_under_two_processes(one_process, tmp_path):
    "2 steps in two processes, then --resume to 4 in two processes: the students of the one-process 4-step run; teachers kept."
    out = tmp_path / "run"
    r = _train(out, "--steps", "2", processes=2)
    assert r.returncode == 0, r.stderr[-3000:]
    teacher = (out / "teachers" / "photo_teacher.pt").read_bytes()
    r = _train(out, "--steps", "4", "--resume", processes=2)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "teachers" / "photo_teacher.pt").read_bytes() == teacher
    _same_students(one_process, out)

@needs_torchrun
def test_train_refuses_the_gan_presets(tmp_path):
    r = _train(tmp_path / "gan", "--steps", "2", "--preset", "kt_gan", processes=2)
    assert r.returncode != 0 and "preset 'kt_gan': its discriminators" in r.stderr, r.stderr[-2000:]
    assert "ktsketch/transfer.py" not in r.stderr and not (tmp_path / "gan").exists()   # before any work, no traceback of ours
