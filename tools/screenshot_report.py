"""Screenshot the top of a report.html in headless Chromium, for the README.

    ktsketch demo --quick --out /tmp/quick
    python tools/screenshot_report.py /tmp/quick/report.html nbs/images/demo_report.png

Needs Debian's `chromium` (what .ci/run installs for the browser tests); the PNG is shrunk to 900 px wide, 256 colours.
"""
from __future__ import annotations
import shutil, subprocess, sys, tempfile
from pathlib import Path
from PIL import Image

def screenshot(report: Path, out: Path, width: int = 1100, height: int = 1700, shrink_to: int = 900) -> Path:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None: raise SystemExit("no chromium on PATH (apt install chromium)")
    if not report.is_file(): raise SystemExit(f"{report}: no such report")
    with tempfile.TemporaryDirectory() as d:
        raw = Path(d) / "shot.png"
        subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={width},{height}", f"--screenshot={raw}", report.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
        im = Image.open(raw).convert("RGB")
        im = im.resize((shrink_to, round(im.height * shrink_to / im.width)), Image.LANCZOS)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.png")
        im.quantize(256, method=Image.Quantize.MEDIANCUT).save(tmp, optimize=True)   # a palette keeps the file small
        tmp.replace(out)
    return out

if __name__ == "__main__":
    if len(sys.argv) != 3: raise SystemExit(__doc__)
    print(screenshot(Path(sys.argv[1]), Path(sys.argv[2])))
