"""The cost of pre-training a teacher the way the shipped ones were made: seconds per step at 64 and 128.

    python tools/bench_pretrain.py [--steps 30] [--sizes 64 128] [--json]

One process, one torch thread, a small teacher (`teachers.SMALL_WIDTHS`), batch 16, the encoder-feature loss
on (the shipped recipe), a pool of 256 drawn faces (the pool size does not change the cost of a step).
Wall-clock and CPU-time seconds per step after two warm-up steps; on a shared machine the CPU time is the
closer to what one free core does. Multiply by a recipe's steps for a whole run.
"""
from __future__ import annotations
import os
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"): os.environ.setdefault(_v, "1")
import argparse, platform
from _timing import timed, report

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="timed steps per size")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="square sizes")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    import torch
    from ktsketch.synthetic import synthetic_splits
    from ktsketch.teachers import Teacher, SMALL_WIDTHS
    from ktsketch.pretrain import pool_uint8, train_on_pool, RECIPES
    torch.set_num_threads(1)
    out = dict(machine=f"{platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, 1 thread",
               load_avg_before=round(os.getloadavg()[0], 2))
    pools = synthetic_splits(0, n_pool=256)
    for size in args.sizes:
        for kind, channels in (("photo", 3), ("sketch", 1)):
            pool = pool_uint8(getattr(pools, f"{kind}_pool"), kind, size)
            teacher = Teacher(channels, channels, SMALL_WIDTHS)
            train_on_pool(teacher, pool, 2, batch_size=16, progress=False)                      # warm-up
            _, wall, cpu = timed(train_on_pool, teacher, pool, args.steps, batch_size=16, progress=False)
            out[f"{kind}_{size}_s_per_step_wall"] = wall / args.steps
            out[f"{kind}_{size}_s_per_step_cpu"] = cpu / args.steps
            steps = RECIPES.get(size, RECIPES[64])["steps"]
            out[f"{kind}_{size}_recipe_hours_cpu"] = cpu / args.steps * steps / 3600
    out["load_avg_after"] = round(os.getloadavg()[0], 2)
    report(out, args.json, digits=3)

if __name__ == "__main__": main()
