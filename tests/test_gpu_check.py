"`tools/gpu_check.sh`: its --dry-run passes on the CPU; without CUDA (or torch) it refuses in one line; a failed or hung part fails the check."
import importlib.util, json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.sh"

def _env(**extra) -> dict:
    # no GPU even on a developer's machine that has one; this python (with torch) for the script
    return dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", **extra)

def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

def test_dry_run_passes_every_part(tmp_path):
    summary = tmp_path / "summary.json"
    r = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(tmp_path / "work"), "--json", str(summary)],
                       capture_output=True, text=True, timeout=900, env=_env(), cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    s = json.loads(summary.read_text())
    rows = {row["part"]: row for row in s["rows"]}
    assert list(rows) == ["amp", "ddp", "bench", "demo", "train"] and s["dry_run"]
    assert all(row["result"] == "pass" and row["seconds"] > 0 for row in rows.values()), rows
    amp, ddp, train = rows["amp"]["details"], rows["ddp"]["details"], rows["train"]["details"]
    assert amp["amp"] is False and amp["conv_dtypes"] == ["float32"] and amp["pixel_last"] < amp["pixel_first"]
    assert ddp["backend"] == "gloo" and ddp["world"] == 1 and ddp["ddp_max_diff"] <= 1e-5 and ddp["pretrain_device"] == "cpu"
    assert train["metrics"]["train_pairs"] == 24 and train["steps_per_s"] > 0 and train["run_peak_gib"] is None
    assert rows["bench"]["details"]["device"] == "cpu" and (tmp_path / "work" / "demo" / "report.html").is_file()
    table = r.stdout[r.stdout.index("part "):]                           # the summary table closes the output
    assert all(f"{p} " in table for p in rows) and "5/5 parts passed" in table

def test_refuses_without_cuda(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=300, env=_env(), cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.startswith("gpu_check: no CUDA GPU here") and "--dry-run" in r.stderr and r.stderr.count("\n") == 1

def test_refuses_without_torch(tmp_path):
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no torch in this test')\n")
    r = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=300,
                       env=_env(PYTHONPATH=str(tmp_path / "fake")), cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1, (r.stdout, r.stderr)
    assert r.stderr.startswith("gpu_check: torch cannot be imported")

def test_a_failed_or_hung_part_fails_the_check(tmp_path, monkeypatch, capsys):
    gc = _gpu_check()
    def commands(name, dry, device, work):   # amp exits 3; ddp hangs past its (shortened) limit
        cmd = [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"] if name == "amp" else \
              [sys.executable, "-c", "import time; time.sleep(60)"]
        return cmd, 2, work / name
    monkeypatch.setattr(gc, "part_commands", commands)
    assert gc.main(["--dry-run", "--only", "amp,ddp", "--out", str(tmp_path / "w"), "--json", str(tmp_path / "s.json")]) == 1
    rows = {r["part"]: r for r in json.loads((tmp_path / "s.json").read_text())["rows"]}
    assert rows["amp"]["result"] == "FAIL" and rows["amp"]["exit"] == 3 and "no result line" in rows["amp"]["figure"]
    assert rows["ddp"]["result"] == "FAIL" and rows["ddp"]["figure"] == "timed out after 2 s" and rows["ddp"]["seconds"] < 30
    out = capsys.readouterr().out
    assert "| boom" in out and "0/2 parts passed" in out and "failed: amp, ddp" in out

def test_bad_part_name_is_refused(capsys):
    assert _gpu_check().main(["--dry-run", "--only", "amp,warp"]) == 2
    assert capsys.readouterr().err.strip() == "gpu_check: --only amp,warp: expected some of amp, ddp, bench, demo, train"

def test_gpu_sizes_fit_eight_minutes_and_use_cuda(tmp_path):
    gc = _gpu_check()
    gpu = gc.SIZES["gpu"]
    assert sum(p["timeout"] for p in gpu.values()) <= 8 * 60 - 15      # the parts' limits, with room to start python
    cmds = {name: gc.part_commands(name, False, "cuda", tmp_path)[0] for name in gc.PARTS}
    ddp = " ".join(cmds["ddp"])
    assert "torch.distributed.run --standalone --nproc_per_node 1" in ddp and "--backend nccl" in ddp and "--device cuda" in ddp
    assert cmds["bench"][-5:] == ["--size", "256", "--device", "cuda", "--json"]
    demo = " ".join(cmds["demo"])
    assert "--cli demo" in demo and "--size 256" in demo and "--device cuda" in demo and "--teachers train" in demo
    train = " ".join(cmds["train"])
    assert "--pairs 268" in train and "--size 256" in train and "--widths full" in train and "--device cuda" in train
    dry = " ".join(gc.part_commands("ddp", True, "cpu", tmp_path)[0])
    assert "--backend gloo" in dry and "--device cpu" in dry and "--size 32" in dry
