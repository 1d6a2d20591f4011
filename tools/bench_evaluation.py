"""Time the evaluation protocol at the size of the CUFS test set: FSIM + SSIM on 338 pairs of 250x200 images,
and NLDA face recognition with 20 splits (and, with --cufsf, at CUFSF's 944 identities).

    python tools/bench_evaluation.py [--threads N] [--cufsf] [--json]

Reports wall-clock seconds and this process's CPU seconds (on shared cores the CPU time is what an idle
machine's wall time would be at one thread). The images are synthetic but structured (smooth random fields with edges and texture, and a blurred,
noisy "prediction"), since the cost of FSIM, SSIM and NLDA does not depend on what the faces look like.
"""
from __future__ import annotations
import argparse, os, platform
import numpy as np
from PIL import Image
from _timing import timed, report

def structured_pairs(n: int, seed: int = 0, h: int = 250, w: int = 200):
    "n (truth, prediction) uint8 pairs: smooth fields plus bright/dark rectangles, prediction blurred and noisy."
    rng = np.random.default_rng(seed)
    truths, preds = [], []
    for _ in range(n):
        z = rng.normal(size=(h // 10, w // 10)).astype(np.float32)
        a = 128 + 45 * np.asarray(Image.fromarray(z).resize((w, h), Image.BICUBIC))
        for _ in range(6):
            y, x = rng.integers(0, h - 40), rng.integers(0, w - 40)
            a[y:y + rng.integers(10, 40), x:x + rng.integers(10, 40)] += rng.choice([-60, 60])
        a += rng.normal(0, 6, a.shape)
        t = np.clip(a, 0, 255).round().astype(np.uint8)
        p = np.asarray(Image.fromarray(t).resize((w // 2, h // 2), Image.BILINEAR).resize((w, h), Image.BILINEAR))
        p = np.clip(p + rng.normal(0, 8, p.shape), 0, 255).round().astype(np.uint8)
        truths.append(t); preds.append(p)
    return np.stack(preds), np.stack(truths)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    ap.add_argument("--cufsf", action="store_true", help="also time NLDA at CUFSF size (944 identities, 300/600)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    import torch
    if args.threads: torch.set_num_threads(args.threads)
    from ktsketch.evaluation import score_pairs, nlda_recognition
    out = dict(machine=f"{platform.machine()}, {os.cpu_count()} logical CPUs, {platform.python_version()}, torch {torch.__version__}",
               torch_threads=torch.get_num_threads(), load_avg_before=os.getloadavg()[0])
    preds, truths = structured_pairs(338)
    df, out["score_338_pairs_s"], out["score_338_pairs_cpu_s"] = timed(score_pairs, preds, truths)
    out["score_mean_fsim"], out["score_mean_ssim"] = float(df.loc["mean", "fsim"]), float(df.loc["mean", "ssim"])
    res, out["nlda_338_ids_20_splits_s"], out["nlda_338_cpu_s"] = timed(
        nlda_recognition, truths, preds, [f"id{i}" for i in range(338)], n_splits=20)
    out["nlda_338_rate"], out["nlda_338_settings"] = res["rate"], f"{res['n_train']} train ids, PCA {res['pca_dims']}"
    if args.cufsf:
        preds, truths = structured_pairs(944, seed=1)
        res, out["nlda_944_ids_20_splits_s"], out["nlda_944_cpu_s"] = timed(
            nlda_recognition, truths, preds, [f"id{i}" for i in range(944)], n_splits=20)
        out["nlda_944_rate"], out["nlda_944_settings"] = res["rate"], f"{res['n_train']} train ids, PCA {res['pca_dims']}"
    out["load_avg_after"] = os.getloadavg()[0]
    report(out, args.json, digits=2)

if __name__ == "__main__":
    main()
