"""The CUDA path of ktsketch, checked in one run of at most 8 minutes on one GPU; one summary table at the end.

    tools/gpu_check.sh [--dry-run] [--only amp,ddp,bench,demo,train] [--out DIR] [--json FILE]

Five parts, each in its own process (its own CUDA context and memory counters), each timed and bounded:

  amp    a few student training steps (`transfer.Trainer`, preset kt, random teachers) with the Trainer's own
         AMP (float16 autocast + GradScaler, which it turns on for CUDA): the loss stays finite, the pixel
         loss falls, the students' convolutions really ran in float16
  ddp    `torchrun --nproc_per_node 1`: a process group with NCCL, an all-reduce, three DistributedDataParallel
         steps of a teacher (`pretrain.Reconstruction` + `teachers.teacher_step`) that must equal three plain
         steps, then `ktsketch pretrain` in the same torchrun process
  bench  `ktsketch bench --device cuda --json` at 256x256
  demo   `ktsketch demo --size 256 --teachers train` with bounded steps, pools and test pairs
  train  a CUFS-sized run: what `ktsketch train --pairs 268` runs (`runs.train_run`, 268 synthetic training
         pairs, VGG-width teachers pre-trained in the run, preset kt) at 256x256 for a bounded number of
         steps, with a callback that times the student steps and reads torch.cuda.max_memory_allocated

Without CUDA it refuses in one line (exit 2). `--dry-run` runs the same five parts on the CPU at 32x32 with
2-3 steps (gloo instead of NCCL; no AMP, since the Trainer's AMP is CUDA-only), so CI tests the plumbing.
Exit status: 0 every part passed, 1 a part failed, 2 nothing ran (no CUDA, no torch, a missing package).
"""
from __future__ import annotations
import argparse, json, math, os, shutil, signal, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
PARTS = ("amp", "ddp", "bench", "demo", "train")
MARK = "GPUCHECK_RESULT "          # a worker's last line: MARK + one JSON object
NEEDED = ("torch", "torchvision", "numpy", "PIL", "scipy", "skimage", "pandas", "matplotlib", "tqdm", "fastcore", "piq")

# Sizes: `gpu` fits the five parts in 8 minutes on one GPU (each part's timeout is its share; they add up to 460 s);
# `dry` is the CPU version for CI (32x32, 2-3 steps, 24 training pairs instead of 268: on a CPU the teachers' features
# of 268 x 8 augmented pairs alone take 13 s); about a minute of CPU time.
SIZES = {
    "gpu": dict(
        amp=dict(size=256, steps=60, batch=8, pairs=16, widths="full", timeout=45),
        ddp=dict(probe_size=128, probe_steps=3, size=128, steps=300, batch=16, pool=1000, timeout=75),
        bench=dict(size=256, timeout=50),
        demo=dict(size=256, steps=200, teacher_steps=200, pool=400, pairs=32, test_pairs=100, timeout=145),
        train=dict(size=256, steps=400, batch=4, pairs=268, test_pairs=100, teacher_steps=200, widths="full", warmup=20,
                   timeout=145)),
    "dry": dict(
        amp=dict(size=32, steps=12, batch=4, pairs=8, widths="small", timeout=120),
        ddp=dict(probe_size=32, probe_steps=3, size=32, steps=3, batch=4, pool=64, timeout=180),
        bench=dict(size=32, timeout=120),
        demo=dict(size=32, steps=3, teacher_steps=3, pool=32, pairs=8, test_pairs=8, timeout=180),
        train=dict(size=32, steps=3, batch=4, pairs=24, test_pairs=8, teacher_steps=3, widths="small", warmup=1,
                   timeout=180)),
}

def _say(*a): print(*a, flush=True)

def _result(**kw):
    "A worker's verdict: the last line of its output, read by the parent."
    _say(MARK + json.dumps(kw))

def _widths(name):
    from ktsketch.teachers import FULL_WIDTHS, SMALL_WIDTHS
    return FULL_WIDTHS if name == "full" else SMALL_WIDTHS

def _gib(n): return n / 2**30

# ---------------------------------------------------------------- workers (each runs in its own process)

def worker_amp(a):
    "Student steps through the Trainer on `a.device`: finite loss, falling pixel loss, float16 convolutions on CUDA."
    import torch
    from ktsketch.synthetic import synthetic_splits
    from ktsketch.teachers import Teacher
    from ktsketch.transfer import TrainConfig, Trainer
    dev = torch.device(a.device)
    splits = synthetic_splits(0, n_train=a.pairs, n_val=0, n_test=0, n_pool=0)
    torch.manual_seed(0)
    teachers = (Teacher(3, 3, _widths(a.widths)), Teacher(1, 1, _widths(a.widths)))   # untrained: the check is the plumbing
    cfg = TrainConfig.from_preset("kt", steps=a.steps, size=a.size, batch_size=a.batch, device=a.device, amp=True,
                                  sample_every=0, ckpt_every=0, ckpt_seconds=0, progress=False,
                                  mutual_ramp=max(1, a.steps // 4))
    tr = Trainer(cfg, splits.train, teachers=teachers)
    seen = set()
    conv = next(m for m in tr.G.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: seen.add(str(o.dtype).replace("torch.", "")))
    if dev.type == "cuda": torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    tr.fit()
    if dev.type == "cuda": torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    h = tr.history
    pix = [r["pix_G"] + r["pix_F"] for r in h]
    k = max(1, len(pix) // 4)
    first, last = sum(pix[:k]) / k, sum(pix[-k:]) / k
    finite = all(math.isfinite(r["loss"]) for r in h)
    amp_on = bool(tr.amp and tr.scaler.is_enabled())
    want_amp = dev.type == "cuda"
    ok = finite and last < first and len(h) == a.steps and amp_on == want_amp and (not want_amp or seen == {"float16"})
    figure = (f"pixel L1 {first:.3f}->{last:.3f}, conv {'/'.join(sorted(seen))}, "
              + (f"scale {tr.scaler.get_scale():.0f}, {a.steps / secs:.1f} steps/s" if amp_on else "AMP off (CPU)"))
    _result(ok=ok, figure=figure, amp=amp_on, conv_dtypes=sorted(seen), pixel_first=first, pixel_last=last,
            finite=finite, steps=len(h), seconds=secs,
            peak_gib=_gib(torch.cuda.max_memory_allocated()) if dev.type == "cuda" else None)

def worker_ddp(a):
    "Under torchrun: NCCL (gloo on the CPU) process group, all-reduce, DDP steps equal to plain steps; then `ktsketch pretrain`."
    import copy
    import torch, torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from ktsketch.teachers import Teacher, SMALL_WIDTHS, teacher_step
    from ktsketch.pretrain import Reconstruction
    from ktsketch.cli import main as ktsketch_main
    if "LOCAL_RANK" not in os.environ: raise SystemExit("the ddp part runs under torchrun (LOCAL_RANK is not set)")
    cuda = a.device == "cuda"
    dev = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    if cuda:   # the same kernels for the plain and the DDP teacher, so that their weights can be compared tightly
        torch.cuda.set_device(dev)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    dist.init_process_group(a.backend)
    backend, world, rank = dist.get_backend(), dist.get_world_size(), dist.get_rank()
    t = torch.full((1,), float(rank + 1), device=dev)
    dist.all_reduce(t)
    reduced = t.item() == world * (world + 1) / 2
    # three DDP steps of a teacher against three plain steps from the same weights and batches (world size 1: equal)
    torch.manual_seed(0)
    plain = Teacher(3, 3, SMALL_WIDTHS).to(dev)
    wrapped, start = copy.deepcopy(plain), copy.deepcopy(plain.state_dict())
    batches = [torch.rand(4, 3, a.probe_size, a.probe_size, generator=torch.Generator().manual_seed(i)).mul(2).sub(1).to(dev)
               for i in range(a.probe_steps)]
    loss_fn = DDP(Reconstruction(wrapped, 1.0), device_ids=[dev] if cuda else None)
    opt_p = torch.optim.Adam(plain.parameters(), lr=1e-3)
    opt_w = torch.optim.Adam(wrapped.parameters(), lr=1e-3)
    for x in batches:
        teacher_step(plain, opt_p, x)
        teacher_step(wrapped, opt_w, x, loss_fn=loss_fn)
    diff = max((p - q).abs().max().item() for p, q in zip(plain.state_dict().values(), wrapped.state_dict().values())
               if p.is_floating_point())
    moved = any((p - q).abs().max().item() > 0 for p, q in zip(start.values(), plain.state_dict().values()) if p.is_floating_point())
    del loss_fn
    dist.destroy_process_group()
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    # ktsketch pretrain, launched by the same torchrun (one process: it trains without a process group of its own)
    out = Path(a.out)
    t0 = time.perf_counter()
    rc = ktsketch_main(["pretrain", "--out", str(out), "--domain", "photo", "--size", str(a.size), "--steps", str(a.steps),
                        "--batch_size", str(a.batch), "--pool", str(a.pool), "--device", a.device])
    secs = time.perf_counter() - t0
    manifest = out / f"photo_teacher_{a.size}.json"
    m = json.loads(manifest.read_text()) if manifest.is_file() else {}
    trained = m.get("training_seconds") or float("nan")
    on_device = m.get("machine", {}).get("device", "").split(":")[0] == a.device
    ok = reduced and backend == a.backend and diff <= 1e-5 and moved and rc == 0 and on_device \
         and m.get("curve", [{}])[-1].get("step") == a.steps
    figure = (f"{backend}, world {world}, DDP=plain to {diff:.0e}; pretrain {a.size}px "
              f"{a.steps / trained:.1f} steps/s, held-out L1 {m.get('heldout', {}).get('l1', float('nan')):.3f}")
    _result(ok=ok, figure=figure, backend=backend, world=world, all_reduce=reduced, ddp_max_diff=diff, weights_moved=moved,
            pretrain_rc=rc, pretrain_seconds=secs, pretrain_training_seconds=trained, pretrain_device=m.get("machine", {}).get("device"),
            heldout=m.get("heldout"))

class _StepMeter:
    "A Trainer callback: wall-clock time of every student step, and CUDA's peak memory over the student phase."
    def __init__(self, cuda: bool): self.cuda, self.ends, self.peak = cuda, [], None
    def on_train_begin(self, trainer):
        if self.cuda: import torch; torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        self.t0 = time.perf_counter()
    def on_step_end(self, trainer, step, logs):
        if self.cuda: import torch; torch.cuda.synchronize()
        self.ends.append(time.perf_counter())
    def on_train_end(self, trainer):
        if self.cuda: import torch; self.peak = torch.cuda.max_memory_allocated()

def worker_train(a):
    "A CUFS-sized run (268 synthetic pairs) as `ktsketch train` runs it, with the student steps timed."
    import torch
    from ktsketch.runs import train_run, TrainTeachers
    cuda = a.device == "cuda"
    meter = _StepMeter(cuda)
    t0 = time.perf_counter()
    run = train_run(a.out, "synthetic", preset="kt", teachers=TrainTeachers(_widths(a.widths), a.teacher_steps, seed=0),
                    steps=a.steps, size=a.size, batch_size=a.batch, pairs=a.pairs, test_pairs=a.test_pairs,
                    device=a.device, callbacks=[meter], ckpt_seconds=120)
    secs = time.perf_counter() - t0
    ends, w = meter.ends, min(a.warmup, max(0, len(meter.ends) - 2))
    rate = (len(ends) - 1 - w) / (ends[-1] - ends[w]) if len(ends) - 1 - w > 0 else float("nan")
    m = run.metrics or {}
    peak_all = _gib(torch.cuda.max_memory_allocated()) if cuda else None
    ok = bool(run.metrics) and m.get("train_pairs") == a.pairs and m.get("steps") == a.steps \
         and math.isfinite(rate) and math.isfinite(m.get("p2s", {}).get("fsim", float("nan"))) \
         and str(m.get("device", "")).split(":")[0] == a.device
    figure = (f"{rate:.1f} steps/s (batch {a.batch}), "
              + (f"peak {_gib(meter.peak):.2f} GiB students / {peak_all:.2f} GiB run" if cuda else "peak n/a (CPU)")
              + f", p2s FSIM {m.get('p2s', {}).get('fsim', float('nan')):.3f}")
    _result(ok=ok, figure=figure, steps_per_s=rate, timed_steps=len(ends) - 1 - w, student_peak_gib=_gib(meter.peak) if cuda else None,
            run_peak_gib=peak_all, seconds=secs, metrics=m, amp=bool(run.trainer.amp))

def cli_main(argv):
    "`ktsketch ARGS` through this interpreter and this checkout's package (no console script needed)."
    from ktsketch.cli import main
    return main(argv)

# ---------------------------------------------------------------- the parent: parts, timing, table

def _env(dry: bool) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if dry: env["OMP_NUM_THREADS"] = "1"
    else: env.setdefault("OMP_NUM_THREADS", str(max(1, min(8, (os.cpu_count() or 2) // 2))))
    return env

def _worker_cmd(name: str, device: str, out: Path, p: dict) -> list:
    args = [sys.executable, str(HERE), "--worker", name, "--device", device, "--out", str(out)]
    for k, v in p.items():
        if k != "timeout": args += [f"--{k}", str(v)]
    return args

def part_commands(name: str, dry: bool, device: str, work: Path) -> tuple:
    "(command, timeout, folder it writes) of one part."
    p = SIZES["dry" if dry else "gpu"][name]
    out = work / name
    me = [sys.executable, str(HERE)]
    if name == "amp": cmd = _worker_cmd("amp", device, out, p)
    elif name == "train": cmd = _worker_cmd("train", device, out, p)
    elif name == "ddp":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", str(HERE),
               "--worker", "ddp", "--backend", "gloo" if dry else "nccl"] + _worker_cmd("ddp", device, out, p)[4:]
    elif name == "bench": cmd = me + ["--cli", "bench", "--size", str(p["size"]), "--device", device, "--json"]
    elif name == "demo":
        cmd = me + ["--cli", "demo", "--out", str(out), "--device", device, "--teachers", "train", "--seed", "0",
                    "--size", str(p["size"]), "--steps", str(p["steps"]), "--teacher_steps", str(p["teacher_steps"]),
                    "--pool", str(p["pool"]), "--pairs", str(p["pairs"]), "--test_pairs", str(p["test_pairs"])]
    return cmd, p["timeout"], out

def judge(name: str, rc: int, text: str, out: Path, device: str) -> tuple:
    "(passed, key figure, details) of a finished part, from its exit status, its output and the files it wrote."
    if name in ("amp", "ddp", "train"):
        lines = [l for l in text.splitlines() if l.startswith(MARK)]
        if not lines: return False, f"exit {rc}, no result line", {}
        r = json.loads(lines[-1][len(MARK):])
        return bool(r.pop("ok")) and rc == 0, r.pop("figure"), r
    if name == "bench":
        try: r = json.loads(text[text.index("{"):text.rindex("}") + 1])
        except ValueError: return False, f"exit {rc}, no JSON", {}
        m = r["models"]
        ok = rc == 0 and r["device"].split(":")[0] == device and all(v["img_per_s"] > 0 for v in m.values())
        return ok, (f"img/s at {r['size']}px: student {m['student']['img_per_s']:.0f}, teacher {m['teacher']['img_per_s']:.0f}, "
                    f"pix2pix {m['pix2pix']['img_per_s']:.0f}"), r
    if name == "demo":
        f = out / "metrics.json"
        if not f.is_file(): return False, f"exit {rc}, no metrics.json", {}
        r = json.loads(f.read_text())
        fs = {v: r["variants"][v]["p2s"]["fsim"] for v in r["variants"]}
        ok = rc == 0 and (out / "report.html").is_file() and r["device"].split(":")[0] == device \
             and all(math.isfinite(v) for v in fs.values())
        return ok, f"{r['seconds']:.0f} s inside, p2s FSIM pixel {fs.get('pixel', float('nan')):.3f} kt {fs.get('kt', float('nan')):.3f}", \
               dict(seconds=r["seconds"], fsim=fs, settings=r["settings"])
    raise ValueError(name)

def run_part(name: str, dry: bool, device: str, work: Path, env: dict) -> dict:
    cmd, timeout, out = part_commands(name, dry, device, work)
    log = work / f"{name}.log"
    _say(f"== {name}: {' '.join(Path(c).name if c in (sys.executable, str(HERE)) else c for c in cmd)}  (at most {timeout} s)")
    t0 = time.perf_counter()
    with open(log, "w") as f:   # its own process group: a timeout ends torchrun's workers too, not only the launcher
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True)
        try: rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL); proc.wait(); rc = None
    text = log.read_text(errors="replace")
    secs = time.perf_counter() - t0
    if rc is None: ok, figure, details = False, f"timed out after {timeout} s", {}
    else:
        try: ok, figure, details = judge(name, rc, text, out, device)
        except Exception as e: ok, figure, details = False, f"exit {rc}; result unreadable ({e.__class__.__name__}: {e})", {}
    if not ok:
        _say("\n".join(f"   | {l}" for l in text.splitlines()[-15:]))
        _say(f"   (whole output: {log})")
    return dict(part=name, seconds=round(secs, 1), result="pass" if ok else "FAIL", figure=figure, exit=rc, details=details)

def table(rows: list) -> str:
    head = ("part", "seconds", "result", "key figure")
    cells = [head] + [(r["part"], f"{r['seconds']:.1f}", r["result"], r["figure"]) for r in rows]
    w = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = [f"{c[0]:<{w[0]}}  {c[1]:>{w[1]}}  {c[2]:<{w[2]}}  {c[3]}" for c in cells]
    lines.insert(1, "-" * max(len(l) for l in lines))
    return "\n".join(lines)

def missing_modules() -> list:
    import importlib.util
    return [m for m in NEEDED if importlib.util.find_spec(m) is None]

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="gpu_check", description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="the same parts on the CPU, tiny (32x32, 2-3 steps, gloo): tests the plumbing")
    ap.add_argument("--only", default=",".join(PARTS), help=f"parts to run, comma-separated (default: all of {','.join(PARTS)})")
    ap.add_argument("--out", default=None, help="keep every part's files and logs in this folder (default: a temporary one, "
                                                "kept only when a part fails)")
    ap.add_argument("--json", default=None, help="also write the summary (rows and machine) to this JSON file")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        print(f"gpu_check: --only {args.only}: expected some of {', '.join(PARTS)}", file=sys.stderr); return 2
    try: import torch
    except ImportError as e:
        print(f"gpu_check: torch cannot be imported by {sys.executable} ({e}): run it with a python that has torch", file=sys.stderr)
        return 2
    if not args.dry_run and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU here (torch {torch.__version__}, torch.cuda.is_available() is False): "
              "run it on a machine with an NVIDIA GPU, or add --dry-run for the CPU version", file=sys.stderr)
        return 2
    miss = missing_modules()
    if miss:
        print(f"gpu_check: python packages missing for {sys.executable}: {', '.join(miss)} (install them, or put their "
              "wheels in .whl/ at the repository root for tools/gpu_check.sh to install offline)", file=sys.stderr)
        return 2
    device = "cpu" if args.dry_run else "cuda"
    if args.out: work = Path(args.out); work.mkdir(parents=True, exist_ok=True)
    else: work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    taken = [p for p in parts if (work / p).exists()]
    if taken:
        print(f"gpu_check: --out {work}: holds {', '.join(taken)} from an earlier check: choose another folder", file=sys.stderr)
        return 2
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        nccl = ".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else "?"
        machine = (f"{props.name}, {_gib(props.total_memory):.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}, "
                   f"NCCL {nccl}, {os.cpu_count()} CPUs")
    else:
        machine = f"CPU only (dry run), torch {torch.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    _say(f"gpu_check{' --dry-run' if args.dry_run else ''}: {machine}; files in {work}")
    env = _env(args.dry_run)
    t0 = time.perf_counter()
    rows = [run_part(p, args.dry_run, device, work, env) for p in parts]
    total = time.perf_counter() - t0
    _say("")
    _say(table(rows))
    failed = [r["part"] for r in rows if r["result"] != "pass"]
    _say(f"{len(rows) - len(failed)}/{len(rows)} parts passed in {total:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(machine=machine, dry_run=args.dry_run, seconds=round(total, 1), rows=rows,
                                                   load_average=os.getloadavg()), indent=1, default=str))
    if not args.out and not failed: shutil.rmtree(work, ignore_errors=True)
    elif not args.out: _say(f"files of the failed check kept in {work}")
    return 1 if failed else 0

def worker_main(argv) -> int:
    ap = argparse.ArgumentParser(prog="gpu_check --worker")
    ap.add_argument("--worker", choices=("amp", "ddp", "train"), required=True)
    ap.add_argument("--device", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--backend", default="nccl")
    for k in ("size", "steps", "batch", "pairs", "test_pairs", "teacher_steps", "pool", "probe_size", "probe_steps", "warmup"):
        ap.add_argument(f"--{k}", type=int, default=0)
    ap.add_argument("--widths", default="small")
    a = ap.parse_args(argv)
    import torch
    if a.device == "cpu": torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    dict(amp=worker_amp, ddp=worker_ddp, train=worker_train)[a.worker](a)
    return 0

if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--cli"]: sys.exit(cli_main(argv[1:]))
    if argv == ["--missing"]: print(" ".join(missing_modules())); sys.exit(0)   # for gpu_check.sh
    if "--worker" in argv: sys.exit(worker_main(argv))
    sys.exit(main(argv))
