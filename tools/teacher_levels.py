"""The teacher term level by level: the normalised loss of each transfer stream at each level, before and after a
`teacher`-arm run at the synthetic grid's settings (N = 4 pairs of seed 0, 64x64, the shipped teachers, widths
8-64, batch 8), on 100 held-out faces; and the teachers' own mean square per level (the normaliser).

    python tools/teacher_levels.py [--steps 1000]

Notebook 11 quotes it ("What the teacher term mostly does for G"). About 4 CPU-minutes for 1000 steps.
"""
from __future__ import annotations
import os
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"): os.environ.setdefault(_v, "1")
import argparse

def per_level(trainer, teachers, photos, sketches) -> dict:
    "stream -> [normalised loss at levels 0..3], and stream_teacher_ms -> the target's mean square per level."
    import torch
    from ktsketch.transfer import feature_loss, teacher_features, transfer_streams, TEACHER_TARGET
    trainer.G.eval(); trainer.F.eval()
    with torch.no_grad():
        streams = transfer_streams(trainer.config)["teacher"]
        tf = teacher_features(*teachers, photos, sketches, sorted({TEACHER_TARGET[k] for k in streams}))
        _, G_enc, G_dec = trainer.G.features(photos); _, F_enc, F_dec = trainer.F.features(sketches)
        feats, out = dict(G_enc=G_enc, G_dec=G_dec, F_enc=F_enc, F_dec=F_dec), {}
        for k in streams:
            adapted, target = trainer.adapters[k](feats[k]), tf[TEACHER_TARGET[k]]
            out[k] = [round(float(feature_loss([adapted[l]], [target[l]])), 2) for l in range(4)]
            out[f"{k}_teacher_ms"] = [round(float(target[l].pow(2).mean()), 4) for l in range(4)]
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000, help="training steps of the run")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    from ktsketch.ablation import ablation_data, seed_pairs
    from ktsketch.runs import student_config, train_students
    from ktsketch.teachers import pretrained
    from ktsketch.transfer import pair_tensors, Trainer
    data = ablation_data(pairs=[4], n_val=8, n_test=100, n_pool=0, train_pool=256)
    train, test = pair_tensors(seed_pairs(data, 0, 4), 64), pair_tensors(data.test, 64)
    teachers = (pretrained("photo", 64), pretrained("sketch", 64))
    cfg = lambda n: student_config("teacher", n, size=64, widths=(8, 16, 32, 64), batch_size=8, seed=0, device="cpu", progress=False)
    for name, tr in (("before training", Trainer(cfg(1), train, teachers=teachers)),
                     (f"after {a.steps} steps", train_students(cfg(a.steps), train, teachers))):
        print(name)
        for k, v in per_level(tr, teachers, *test).items(): print(f"  {k:<18s} {v}")

if __name__ == "__main__":
    main()
