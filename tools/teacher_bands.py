"""Where a shipped teacher's reconstruction error lies (issue 13): low-pass against high-pass, and two blur baselines.

    python tools/teacher_bands.py [--size 64] [--n 200]

For each shipped teacher, on `n` held-out synthetic faces of world 1 (faces no teacher saw): the held-out L1, the
L1 of the same faces downsampled 2x (and 4x) and blown back up (what keeping only the coarser octaves costs), and
the teacher's error split into a low-pass part (both images through that 2x down-and-up) and the high-pass rest.
"""
import argparse
import torch, torch.nn.functional as F
from ktsketch.pretrain import heldout_faces
from ktsketch.teachers import pretrained

def low(z, k=2): return F.interpolate(F.avg_pool2d(z, k), scale_factor=k, mode="bilinear", align_corners=False)

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64); ap.add_argument("--n", type=int, default=200)
    a = ap.parse_args()
    torch.set_num_threads(1)
    for domain in ("photo", "sketch"):
        x = heldout_faces(domain, a.size, worlds=(1,), n=a.n).float() / 127.5 - 1
        with torch.no_grad(): y = pretrained(domain, a.size)(x).clamp(-1, 1)
        l1 = lambda u, v: (u - v).abs().mean().item()
        print(f"{domain:6s} teacher L1 {l1(y, x):.4f} | 2x-blur L1 {l1(low(x), x):.4f}, 4x-blur L1 {l1(low(x, 4), x):.4f} | "
              f"teacher error: low-pass {l1(low(y), low(x)):.4f}, high-pass {l1(y - low(y), x - low(x)):.4f}")
