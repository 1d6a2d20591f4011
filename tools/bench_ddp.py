"""Teacher pre-training with 1 and 2 data-parallel CPU processes (gloo): seconds per step and the speed-up, in one run.

    python tools/bench_ddp.py [--size 64] [--short 10] [--long 40] [--json]

Each setting trains a small teacher with `pretrain.train_on_pool` in P processes started by
`pretrain.spawn_processes` (what torchrun does, from Python), with the same global batch (16 images: 8 per
process with 2), one torch thread per process, on a pool of 256 drawn faces, twice: `--short` and `--long`
steps. Seconds per step are the difference of the two training times (rank 0's, as `train_on_pool` reports them)
over the difference of the steps, so the first steps' warm-up cancels out. Needs an idle machine: with P
processes on P cores any other load shows directly in the ratio (the load average is printed before and after).
"""
from __future__ import annotations
import os
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"): os.environ.setdefault(_v, "1")
import argparse, platform
from _timing import report

def train_seconds(size: int, steps: int) -> float:
    "Rank-side work: train one fresh small photo teacher for `steps` steps; its training seconds."
    import torch
    from ktsketch.synthetic import synthetic_splits
    from ktsketch.teachers import DOMAINS, Teacher, SMALL_WIDTHS
    from ktsketch.pretrain import pool_uint8, train_on_pool
    torch.set_num_threads(1); torch.manual_seed(0)
    pool = pool_uint8(synthetic_splits(0, n_pool=256).photo_pool, "photo", size)
    teacher = Teacher(DOMAINS["photo"], DOMAINS["photo"], SMALL_WIDTHS)   # the shipped teachers' architecture
    return train_on_pool(teacher, pool, steps, batch_size=16, seed=0, device="cpu", progress=False)["seconds"]

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="square size")
    ap.add_argument("--short", type=int, default=10, help="steps of the short run")
    ap.add_argument("--long", type=int, default=40, help="steps of the long run")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    import torch
    from ktsketch.pretrain import spawn_processes
    out = dict(machine=f"{platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, 1 thread per process",
               size=a.size, global_batch=16, load_avg_before=round(os.getloadavg()[0], 2))
    per_step = {}
    for p in (1, 2):
        short, long = (spawn_processes(p, train_seconds, a.size, n) for n in (a.short, a.long))
        per_step[p] = (long - short) / (a.long - a.short)
        out[f"s_per_step_{p}proc"] = round(per_step[p], 4)
    out["speedup_2_over_1"] = round(per_step[1] / per_step[2], 2)
    out["load_avg_after"] = round(os.getloadavg()[0], 2)
    report(out, a.json)

if __name__ == "__main__":
    main()
