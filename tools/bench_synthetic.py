"""Time the synthetic face generator on one CPU core: faces (photo + sketch) per second, and each side alone.

    python tools/bench_synthetic.py [--n 1000] [--seed 0] [--json]

One process, one thread (the generator is numpy + Pillow and uses one core). Reports wall-clock and CPU-time
rates: on a shared machine the CPU-time rate is the closer to what one free core does. The first face
(which builds the textures, once per process) is excluded and timed separately.
"""
from __future__ import annotations
import os
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"): os.environ.setdefault(_v, "1")
import argparse, platform
from _timing import timed, report

def rate(fn, n: int) -> dict:
    "Call fn(i) for i in range(n): items per second by the wall clock and by this process's CPU time."
    _, wall, cpu = timed(lambda: [fn(i) for i in range(n)])
    return dict(per_s_wall=n / wall, per_s_cpu=n / max(cpu, 1e-9))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="faces to make for each measurement")
    ap.add_argument("--seed", type=int, default=0, help="the synthetic world")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    import numpy as np, PIL
    from ktsketch import synthetic as syn
    out = dict(machine=f"{platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
                       f"numpy {np.__version__}, Pillow {PIL.__version__}",
               n=args.n, load_avg_before=os.getloadavg()[0])
    _, out["first_face_s"], _ = timed(syn.make_face, args.seed, 10**7)
    base = 10**6   # identities not used by the warm-up
    r = rate(lambda i: syn.make_face(args.seed, base + i), args.n)
    out["faces_per_s_wall"], out["faces_per_s_cpu"] = r["per_s_wall"], r["per_s_cpu"]
    for kind, render in (("photo", syn.render_photo), ("sketch", syn.render_sketch)):
        r = rate(lambda i: render(syn.face_params(args.seed, base + args.n + i)), args.n)
        out[f"{kind}_only_per_s_wall"], out[f"{kind}_only_per_s_cpu"] = r["per_s_wall"], r["per_s_cpu"]
    out["load_avg_after"] = os.getloadavg()[0]
    report(out, args.json, digits=1)

if __name__ == "__main__":
    main()
