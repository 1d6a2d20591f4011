"""The command line end to end, as a user runs it: the demo, train, translate, and every user error."""
from __future__ import annotations
import html, json, os
from pathlib import Path
import pytest
from conftest import run_cli

TINY = ["--size", "32", "--teachers", "train", "--steps", "2", "--teacher_steps", "2", "--pool", "16", "--pairs", "4",
        "--test_pairs", "8", "--device", "cpu"]   # 32x32: no teachers are shipped at that size, so they are pre-trained here

@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    r = run_cli("demo", "--quick", "--out", out, *TINY)
    return out, r

def test_demo_writes_metrics_report_checkpoints_and_pngs(demo_run):
    out, r = demo_run
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["variants"]) == {"pixel", "kt"}
    for v in m["variants"].values():
        for d in ("p2s", "s2p"):
            assert {"fsim", "ssim", "nlda"} <= set(v[d])
            assert 0 < v[d]["fsim"] <= 1 and -1 <= v[d]["ssim"] <= 1 and 0 <= v[d]["nlda"] <= 1
    assert m["train_pairs"] == 4 and m["test_pairs"] == 8 and m["device"] == "cpu" and m["seconds"] > 0
    page = (out / "report.html").read_text()
    assert page.count('<img src="data:image/png;base64,') >= 2 and "pixel" in page and "kt" in page
    assert (out / "teachers" / "photo_teacher.pt").is_file() and (out / "kt" / "checkpoint.pt").is_file()
    assert len(list((out / "kt" / "test" / "sketches").glob("*.png"))) == 8
    assert "report:" in r.stdout and "kt" in r.stdout
    # the report quotes the controlled experiment (the pairs-curve grid that ships), not just this one seed
    from ktsketch.claim import shipped_conclusion
    assert m["ablation_finding"] == shipped_conclusion() and "What the controlled experiment found" in page
    assert html.escape(shipped_conclusion()) in page

def test_demo_is_repeatable_on_cpu(demo_run, tmp_path):
    out, _ = demo_run
    r = run_cli("demo", "--quick", "--out", tmp_path / "again", *TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    a = json.loads((out / "metrics.json").read_text())["variants"]
    b = json.loads((tmp_path / "again" / "metrics.json").read_text())["variants"]
    assert a == b

def test_demo_never_overwrites_a_run(demo_run):
    out, _ = demo_run
    before = (out / "metrics.json").read_bytes()
    r = run_cli("demo", "--quick", "--out", out, *TINY)
    assert r.returncode == 2 and "holds an earlier run" in r.stderr
    assert (out / "metrics.json").read_bytes() == before

def test_translate_a_folder_with_the_demo_run(demo_run, tmp_path):
    out, _ = demo_run
    src = out / "kt" / "test" / "photos"     # the demo's synthesized photos make handy inputs
    r = run_cli("translate", src, "--checkpoint", out / "kt", "--direction", "p2s", "--out", tmp_path / "sk", "--device", "cpu")
    assert r.returncode == 0, r.stderr[-2000:]
    made = sorted(p.name for p in (tmp_path / "sk").glob("*.png"))
    assert made == sorted(p.name for p in src.glob("*.png"))
    from PIL import Image
    im = Image.open(tmp_path / "sk" / made[0])
    assert im.size == (200, 250) and im.mode == "L"

@pytest.mark.parametrize("args,needle", [
    (["demo", "--device", "cuda"] if not __import__("torch").cuda.is_available() else ["demo", "--device", "tpu"], "device"),
    (["demo", "--size", "30"], "divisible by 8"),
    (["demo", "--test_pairs", "2"], "at least 4"),
    (["demo", "--steps", "many"], "invalid int value"),
    (["demo", "--size", "96"], "--teachers train"),        # no teachers are shipped at 96x96: say so, never train silently
    (["demo", "--teachers", "borrowed"], "--teachers 'borrowed': expected shipped or train"),
    (["demo", "--teacher_steps", "10"], "--teacher_steps: only with --teachers train"),
    (["demo", "--pairs", "0"], "--pairs 0: must be at least 1"),
    (["translate", "a.png", "--checkpoint", "x", "--out", "o", "--threads", "0"], "--threads 0: must be at least 1"),
    (["train", "--teachers", "shipped", "--size", "96", "--out", "x"], "--teachers shipped: this installation ships teachers at 64x64"),
    (["train", "--preset", "kt"], "--out is required"),
    (["train", "--preset", "magic", "--out", "x"], "expected one of"),
    (["train", "--data", "/no/such/folder", "--out", "x"], "/no/such/folder"),
    (["train", "--preset", "pixel", "--out", "x", "--epochs", "2", "--steps", "3"], "not both"),
    (["train", "--out", "/tmp/ktsketch-no-run-here", "--resume"], "nothing to resume"),
    (["translate", "a.png", "--out", "o"], "--checkpoint is required"),
    (["translate", "a.png", "--checkpoint", "/no/run", "--out", "o"], "/no/run"),
    (["translate", "a.png", "--checkpoint", ".", "--direction", "up", "--out", "o"], "expected p2s or s2p"),
    (["ablate", "--variants", "pixel"], "--out is required"),
    (["ablate", "--variants", "pixel,kd", "--out", "o"], "unknown kd"),
    (["ablate", "--seeds", "0", "--out", "o"], "--seeds 0"),
    (["ablate", "--data", "/no/such/folder", "--out", "o"], "/no/such/folder"),
    (["ablate", "--teachers", "/no/teachers", "--variants", "kt", "--out", "o", "--pool", "4"], "/no/teachers"),
])
def test_user_errors(args, needle, tmp_path, monkeypatch, capsys):
    "In-process (the console script is `sys.exit(main())`, checked by subprocess in test_package.py)."
    from ktsketch.cli import main
    monkeypatch.chdir(tmp_path)
    status = main(args)
    err = capsys.readouterr().err
    assert status == 2, err[-2000:]
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err

def test_translate_reports_a_demo_folder_with_two_runs(demo_run, tmp_path):
    out, _ = demo_run
    r = run_cli("translate", out / "kt" / "test" / "photos", "--checkpoint", out, "--out", tmp_path / "o")
    assert r.returncode == 2 and "holds 2 runs; pass one of" in r.stderr

def test_every_command_explains_itself(capsys):
    from ktsketch.cli import COMMANDS, main
    for name in COMMANDS:
        assert main([name, "--help"]) == 0, name
        out = capsys.readouterr().out
        assert "usage: ktsketch " + name in out and "--" in out, (name, out[-500:])

ABLATE_TINY = ["--size", "32", "--steps", "2", "--teacher_steps", "2", "--pool", "8", "--pairs", "1", "--val_pairs", "2",
               "--test_pairs", "4", "--device", "cpu"]

def test_ablate_writes_the_table_and_continues_where_it_stopped(tmp_path):
    import csv
    out = tmp_path / "abl"
    r = run_cli("ablate", "--variants", "pixel,kt", "--seeds", "1", "--out", out, *ABLATE_TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "ablation.csv")))
    assert [(x["variant"], x["seed"]) for x in rows] == [("pixel", "0"), ("kt", "0")]
    assert {"variant", "pairs", "seed", "steps", "p2s_fsim", "p2s_ssim", "p2s_l1", "s2p_fsim", "s2p_ssim", "s2p_l1"} <= set(rows[0])
    assert all(0 < float(x["p2s_fsim"]) <= 1 and float(x["s2p_l1"]) > 0 for x in rows)
    assert (out / "teachers" / "photo_teacher.pt").is_file()
    r = run_cli("ablate", "--variants", "pixel,pixel_10x,kt", "--seeds", "2", "--out", out, *ABLATE_TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    rows2 = list(csv.DictReader(open(out / "ablation.csv")))
    assert rows2[:2] == rows                      # the first runs were kept, not redone
    assert sorted((x["variant"], x["seed"]) for x in rows2) == sorted((v, s) for v in ("pixel", "pixel_10x", "kt") for s in "01")
    assert "Data-limited check" in r.stdout and "ablation.csv" in r.stdout

def test_train_resume_is_the_run_that_never_stopped(tmp_path, capsys):
    "kt through the command line: 2 steps, then --resume to 4 (teachers loaded from the run, not retrained) == 4 steps at once."
    from ktsketch.cli import main
    tiny = ["--preset", "kt", "--size", "32", "--pairs", "4", "--test_pairs", "6", "--small_teachers", "--teacher_steps", "2",
            "--device", "cpu"]
    assert main(["train", "--out", str(tmp_path / "a"), "--steps", "2", *tiny]) == 0
    teacher = (tmp_path / "a" / "teachers" / "photo_teacher.pt").read_bytes()
    assert main(["train", "--out", str(tmp_path / "a"), "--steps", "4", "--resume", *tiny]) == 0
    assert (tmp_path / "a" / "teachers" / "photo_teacher.pt").read_bytes() == teacher
    assert main(["train", "--out", str(tmp_path / "b"), "--steps", "4", *tiny]) == 0
    capsys.readouterr()
    a, b = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in "ab")
    assert a["steps"] == 4 and a == b
    assert (tmp_path / "a" / "history.csv").read_text() == (tmp_path / "b" / "history.csv").read_text()

def test_demo_uses_the_shipped_teachers_and_says_so(tmp_path):
    "The default: no pre-training, no teachers/ folder; metrics.json and the report quote the manifests' held-out L1."
    from ktsketch.teachers import shipped_manifest
    out = tmp_path / "run"
    r = run_cli("demo", "--quick", "--out", out, "--size", "64", "--steps", "2", "--pairs", "4", "--test_pairs", "4",
                "--device", "cpu")
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["teachers"]["source"] == "shipped" and m["pool_images"] == 0 and not (out / "teachers").exists()
    for d in ("photo", "sketch"):
        assert m["teachers"][d]["heldout_l1"] == shipped_manifest(d, 64)["heldout"]["l1"]
    page = (out / "report.html").read_text()
    assert f"{shipped_manifest('photo', 64)['heldout']['l1']:.4f} (photo)" in page and "shipped teachers" in r.stdout

def test_ctrl_c_checkpoints_and_resume_continues(tmp_path):
    "Ctrl-C in `ktsketch train`: the step ends, a checkpoint holds it, one line says how to continue; --resume does."
    import signal, subprocess, time, torch
    from conftest import ktsketch_exe
    out = tmp_path / "run"
    args = ["train", "--preset", "pixel", "--size", "32", "--batch_size", "2", "--pairs", "2", "--test_pairs", "4",
            "--device", "cpu", "--steps", "100000", "--out", str(out)]
    # SIGINT back to its default in the child: a suite started in the background (no job control) ignores it, and
    # the child would inherit that
    p = subprocess.Popen(ktsketch_exe() + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while not (out / "config.json").exists() and time.time() - t0 < 120: time.sleep(0.2)   # written when training starts
    time.sleep(2)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    last = err.strip().splitlines()[-1]
    assert p.returncode == 130, err[-2000:]
    assert last.startswith("ktsketch train: interrupted at step ") and f"ktsketch train --out {out} --resume" in last, last
    step = int(last.split("at step ")[1].split(";")[0])
    assert step >= 1 and torch.load(out / "checkpoint.pt", weights_only=False)["step"] == step
    r = run_cli("train", "--out", out, "--resume", "--steps", step + 1, "--pairs", "2", "--test_pairs", "4", "--device", "cpu")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "metrics.json").read_text())["steps"] == step + 1

def _workers_of(pid: int) -> list[int]:
    "Linux: the grid's worker processes, the children of `pid` that multiprocessing spawned (not its resource tracker)."
    kids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit(): continue
        try: stat, cmd = (d / "stat").read_text(), (d / "cmdline").read_bytes().decode(errors="replace")
        except OSError: continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and "spawn_main" in cmd and "resource_tracker" not in cmd:
            kids.append(int(d.name))
    return kids

def _running(pid: int) -> bool:
    "The process exists and is not a zombie waiting to be reaped."
    try: return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError: return False

@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_ablate_workers_end_with_the_grid(tmp_path, sig):
    "`kill` or `kill -9` of `ktsketch ablate --workers 2`: no worker runs on (using the cores, writing the folder) behind the user's back."
    import signal, subprocess, time
    from conftest import ktsketch_exe
    args = ["ablate", "--variants", "pixel", "--seeds", "2", "--workers", "2", "--threads", "1", "--out", tmp_path / "g",
            *ABLATE_TINY]
    args[args.index("--steps") + 1] = "1000000"                           # runs that would not end by themselves
    p = subprocess.Popen(ktsketch_exe() + [str(a) for a in args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers = []
    try:
        deadline = time.time() + 300
        while time.time() < deadline and len(workers) < 2 and p.poll() is None:
            time.sleep(0.5); workers = _workers_of(p.pid)
        assert len(workers) == 2, (workers, p.poll())
        time.sleep(5)                                                       # both are training now
        p.send_signal(getattr(signal, sig))
        rc = p.wait(120)
        deadline = time.time() + 60
        while time.time() < deadline and any(_running(w) for w in workers): time.sleep(0.5)
        assert not any(_running(w) for w in workers), f"workers still running after {sig} of the grid"
        if sig == "SIGTERM": assert rc == 130 and "interrupted by SIGTERM" in p.stderr.read(), rc
    finally:
        if p.poll() is None: p.kill()
        for w in workers:                                                   # a failing test leaves nothing running either
            if _running(w): os.kill(w, signal.SIGKILL)
