"""Measure the real peak memory of one CPU forward pass of bench's three generators against `forward_memory`.

`python tools/measure_forward_memory.py 1024` runs each model in a fresh process (Linux only: the peak RSS is
VmHWM from /proc/self/status, reset through /proc/self/clear_refs just before the pass) and prints the
measured activation peak next to the estimate. Notebook 04 quotes the ratios to choose bench's margin.
"""
from __future__ import annotations
import gc, json, subprocess, sys

def _one(size: int, name: str) -> dict:
    import torch
    from ktsketch.students import bench_models, forward_memory, in_channels
    torch.set_num_threads(1)
    model = bench_models(size)[name].eval()
    with torch.inference_mode(): model(torch.randn(1, in_channels(model), 256, 256))   # load the libraries, warm up
    x = torch.randn(1, in_channels(model), size, size)
    gc.collect()
    status = lambda key: int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) * 1024
    open("/proc/self/clear_refs", "w").write("5")          # reset VmHWM to the current RSS
    before = status("VmRSS:")
    with torch.inference_mode(): model(x)
    measured = status("VmHWM:") - before
    fixed = sum(p.numel() * p.element_size() for p in model.parameters()) + x.numel() * x.element_size()
    return dict(model=name, size=size, estimated_activations=forward_memory(model, size) - fixed, measured_activations=measured)

if __name__ == "__main__":
    if len(sys.argv) > 2: print(json.dumps(_one(int(sys.argv[1]), sys.argv[2]))); sys.exit()
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    for name in ("teacher", "student", "pix2pix"):
        r = json.loads(subprocess.run([sys.executable, __file__, str(size), name], capture_output=True, text=True, check=True).stdout)
        print(f"{name:<8} {size}x{size}: estimated {r['estimated_activations'] / 2**20:7.0f} MiB, measured {r['measured_activations'] / 2**20:7.0f} MiB, "
              f"ratio {r['measured_activations'] / r['estimated_activations']:.2f}")
