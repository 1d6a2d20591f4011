"""Re-make the MATLAB FSIM reference values stored in ktsketch.evaluation.FSIM_MATLAB_REFERENCE.

    python tools/fsim_octave_reference.py PATH/TO/FeatureSIM.m

Needs GNU Octave with the image package (Debian: `apt-get install octave octave-image`) and the authors'
FeatureSIM.m (Zhang et al. 2011, version 1.0; not shipped with ktsketch). Builds the reference image pairs
from skimage.data exactly as `fsim_reference_cases()` does, writes them as PNG, runs FeatureSIM on each
under Octave, and prints Octave's FSIM/FSIMc beside the stored values and piq's.
"""
from __future__ import annotations
import shutil, subprocess, sys, tempfile
from pathlib import Path
from PIL import Image

def main(featuresim: str):
    import numpy as np, torch, piq
    from ktsketch.evaluation import fsim_reference_cases, FSIM_MATLAB_REFERENCE
    if not shutil.which("octave"): sys.exit("octave not found: apt-get install octave octave-image")
    src = Path(featuresim)
    if not src.is_file(): sys.exit(f"{src}: no such file (the authors' FeatureSIM.m)")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); shutil.copy(src, d / "FeatureSIM.m")
        cases = fsim_reference_cases()
        for name, (ref, dis) in cases.items():
            Image.fromarray(ref).save(d / f"{name}_ref.png"); Image.fromarray(dis).save(d / f"{name}_dis.png")
        names = "{" + ",".join(f'"{n}"' for n in cases) + "}"
        script = (f"pkg load image; names = {names};\n"
                  "for n = 1:numel(names)\n"
                  "  [f, fc] = FeatureSIM(imread([names{n} '_ref.png']), imread([names{n} '_dis.png']));\n"
                  "  printf('%s %.10f %.10f\\n', names{n}, f, fc);\nend\n")
        (d / "run_reference.m").write_text(script)
        r = subprocess.run(["octave", "--no-gui", "-q", "run_reference.m"], cwd=d, capture_output=True, text=True)
        if r.returncode: sys.exit(r.stderr)
    t = lambda a: torch.from_numpy(a).float()[None, None] if a.ndim == 2 else torch.from_numpy(a).float().permute(2, 0, 1)[None]
    print(f"{'case':22s} {'octave fsim':>12s} {'stored':>12s} {'piq':>12s} {'octave fsimc':>13s} {'piq fsimc':>12s}")
    for line in r.stdout.split("\n"):
        if len(line.split()) != 3: continue
        name, f, fc = line.split(); ref, dis = cases[name]
        p = piq.fsim(t(dis), t(ref), data_range=255, chromatic=False).item()
        pc = piq.fsim(t(dis), t(ref), data_range=255, chromatic=True).item() if ref.ndim == 3 else p
        print(f"{name:22s} {float(f):12.7f} {FSIM_MATLAB_REFERENCE[name][0]:12.7f} {p:12.7f} {float(fc):13.7f} {pc:12.7f}")

if __name__ == "__main__":
    if len(sys.argv) != 2: sys.exit(__doc__)
    main(sys.argv[1])
