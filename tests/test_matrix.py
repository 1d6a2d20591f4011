"""Issue 18's matrix: the bad inputs and interruptions a user can hit, every command, one table that grows.

A case is a command line, the files it needs, the exit status, the text its one-line message holds, and a
check that nothing was lost and nothing is silently wrong. Every case also gets the generic checks: an
error is one line on stderr with exit 2 and no traceback, and leaves every file under its folder as it was
(nothing lost, nothing half-written, no temporary file); a success keeps every file that was there and gives
each new file the umask's mode (0644 under 022).

Cases run in-process through `ktsketch.cli.main` (the console script is `sys.exit(main())`); the few that
must see the real exit path run as a subprocess. Known gaps are `xfail(strict=True)`: they fail today and
turn the suite red on the day they pass, so the mark goes with the fix. Those that would train (seconds to
minutes) or use all memory before failing while the gap is open are `run=False` until then.
"""
from __future__ import annotations
import hashlib, os, re, shutil, stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
import numpy as np
import pytest
import torch
from PIL import Image
import skimage.data
from conftest import run_cli
import ktsketch
from ktsketch import evaluation as ev
from ktsketch.cli import main, REQUIRED, COMMANDS

@dataclass
class Case:
    id: str
    args: list                              # after `ktsketch`; {tmp} is the case's folder, {run} its copy of a tiny trained run
    status: int = 2                         # the exit status
    err: str | None = None                  # text in stderr: the error line (status 2) or a warning line
    out: str | None = None                  # text in stdout
    setup: Callable | None = None           # setup(tmp): make the files the case reads
    check: Callable | None = None           # check(tmp, out): nothing lost, nothing silently wrong
    patch: Callable | None = None           # patch(monkeypatch): e.g. the memory a machine has
    needs_run: bool = False                 # copy the tiny trained run to {run}
    subprocess: bool = False                # through the console script, not main()
    marks: tuple = field(default=())        # pytest marks (xfail for known gaps)

PHASE_B = "issue 18 phase B (after the run orchestration moved out of cli.py)"
def gap(reason=PHASE_B, run=True): return (pytest.mark.xfail(strict=True, reason=reason, run=run),)

def _grid_at_32(tmp):
    "A grid folder holding one finished 32x32 run (the defaults otherwise)."
    from ktsketch.ablation import COLUMNS, write_results
    row = dict.fromkeys(COLUMNS, 0.5) | dict(variant="pixel", pairs=8, seed=0, steps=1000, source="paper", data="synthetic",
                                             size=32, device="cpu", teachers="trained", teacher_steps=600, pool=2000,
                                             val_pairs=32, test_pairs=100)
    write_results([row], tmp / "abl" / "ablation.csv")

# ---------------------------------------------------------------- images every Pillow mode can hold
TRUTH = skimage.data.camera()[60:108, 200:240]                                  # (48, 40) uint8: a real image, fast to score
COLOUR = skimage.data.astronaut()[30:78, 180:220]                               # (48, 40, 3)
HOLE = (slice(10, 30), slice(5, 25))                                            # a fully transparent patch

def _with_hole(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    "(pixels with black under the hole, alpha): how editors store a transparent background."
    alpha = np.full(a.shape[:2], 255, np.uint8); alpha[HOLE] = 0
    a = a.copy(); a[HOLE] = 0
    return a, alpha

def _white_hole(a): a = a.copy(); a[HOLE] = 255; return a                       # the same, composited on white paper

def _one_bit(): return Image.fromarray(TRUTH).convert("1")                      # dithered

def _palette_with_hole() -> Image.Image:
    "A gray palette image whose index 0 (black, used only in the hole) is the transparent colour."
    idx = TRUTH.copy(); idx[HOLE] = 0                                           # TRUTH's darkest level is 15: index 0 is free
    im = Image.frombytes("P", idx.shape[::-1], idx.tobytes())
    im.putpalette([v for i in range(256) for v in (i, i, i)])
    return im

def _exif_rotated(p: Path):
    "The truth stored on its side, with the EXIF orientation (6: turn 90 degrees clockwise) that stands it upright."
    exif = Image.Exif(); exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(TRUTH))).save(p / "face.png", exif=exif)
MODES = {   # mode: (write the ground truth to a file, the 8-bit gray it means)
    "1":     (lambda p: _one_bit().save(p / "face.png"), lambda: np.asarray(_one_bit().convert("L"))),
    "L":     (lambda p: Image.fromarray(TRUTH).save(p / "face.png"), lambda: TRUTH),
    "LA":    (lambda p: Image.fromarray(np.dstack(_with_hole(TRUTH))).save(p / "face.png"), lambda: _white_hole(TRUTH)),
    "P-transparent": (lambda p: _palette_with_hole().save(p / "face.png", transparency=0), lambda: _white_hole(TRUTH)),
    "L-exif-rotated": (_exif_rotated, lambda: TRUTH),
    "P":     (lambda p: Image.fromarray(TRUTH).convert("P", palette=Image.Palette.ADAPTIVE).save(p / "face.png"), lambda: TRUTH),
    "RGB":   (lambda p: Image.fromarray(COLOUR).save(p / "face.png"), lambda: ev.to_gray_uint8(COLOUR)),
    "RGBA":  (lambda p: Image.fromarray(np.dstack(_with_hole(COLOUR))).save(p / "face.png"), lambda: _white_hole(ev.to_gray_uint8(COLOUR))),
    "I;16":  (lambda p: Image.fromarray(TRUTH.astype(np.uint16) * 257).save(p / "face.png"), lambda: TRUTH),
    "I;16-tiff": (lambda p: Image.fromarray(TRUTH.astype(np.uint16) * 257).save(p / "face.tif"), lambda: TRUTH),
    "I-16bit": (lambda p: Image.fromarray(TRUTH.astype(np.int32) * 257).save(p / "face.tif"), lambda: TRUTH),
    "I-8bit":  (lambda p: Image.fromarray(TRUTH.astype(np.int32)).save(p / "face.tif"), lambda: TRUTH),
    "F-0..1":  (lambda p: Image.fromarray(TRUTH.astype(np.float32) / 255).save(p / "face.tif"), lambda: TRUTH),
    "F-0..255": (lambda p: Image.fromarray(TRUTH.astype(np.float32)).save(p / "face.tif"), lambda: TRUTH),
    "CMYK":  (lambda p: Image.fromarray(COLOUR).convert("CMYK").save(p / "face.tif"), lambda: ev.to_gray_uint8(COLOUR)),
}

def _eval_mode_case(mode: str) -> Case:
    write, meaning = MODES[mode]
    def setup(tmp):
        (tmp / "gt").mkdir(); (tmp / "pred").mkdir()
        write(tmp / "gt")
        Image.fromarray(ev._box3(meaning())).save(tmp / "pred" / "face.png")   # a blurred guess, 8-bit
        assert Image.open(next((tmp / "gt").iterdir())).mode == mode.split("-")[0]   # the file holds the mode the case is about
    def check(tmp, out):
        import json
        want = ev.fsim_gray(ev._box3(meaning()), meaning())                       # scored against what the file means
        assert json.loads(out)["fsim"] == pytest.approx(want, abs=1e-6), (mode, json.loads(out)["fsim"], want)
    return Case(f"eval-reads-{mode}", ["eval", "--pred", "{tmp}/pred", "--gt", "{tmp}/gt", "--json"], status=0, setup=setup, check=check)

def _write(path: Path, img: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True); img.save(path)

def _eval_pair(gt_img: Image.Image, name="face.tif", pred: np.ndarray | None = None):
    def setup(tmp):
        _write(tmp / "gt" / name, gt_img)
        _write(tmp / "pred" / "face.png", Image.fromarray(TRUTH if pred is None else pred))
    return setup

# ---------------------------------------------------------------- a tiny trained run (7 s) for translate and train cases
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "run"
    status = main(["train", "--preset", "pixel", "--steps", "1", "--size", "32", "--batch_size", "2", "--pairs", "2",
                   "--test_pairs", "4", "--device", "cpu", "--out", str(out)])
    assert status == 0 and (out / "checkpoint.pt").is_file()
    return out

def _face(mode="RGB", size=(250, 200), i=0):
    a = skimage.data.astronaut()[7 * i:7 * i + size[0], 100 + 5 * i:100 + 5 * i + size[1]]   # a different crop per i
    return Image.fromarray(a).convert(mode)

def _translate_16bit_setup(tmp):
    gray = np.asarray(_face("L"))
    _write(tmp / "in8" / "face.png", Image.fromarray(gray))
    _write(tmp / "in16" / "face.png", Image.fromarray(gray.astype(np.uint16) * 257))

def _translate_16bit_check(tmp, out):
    assert main(["translate", str(tmp / "in8" / "face.png"), "--checkpoint", str(tmp / "run"), "--out", str(tmp / "o8"),
                 "--device", "cpu"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp / "o16" / "face.png")), np.asarray(Image.open(tmp / "o8" / "face.png")))

def _odd_size_data(tmp):
    "A presplit data folder whose images are 64x64, not CUFS's 250x200: a problem `load_dataset` warns about."
    for split, n, first in (("train", 2, 0), ("test", 8, 40)):   # distinct faces: the reader drops content copies
        for i in range(first, first + n):
            _write(tmp / "data" / f"{split}_photos" / f"f{i}.png", _face("RGB", (64, 64), i))
            _write(tmp / "data" / f"{split}_sketches" / f"f{i}.png", _face("L", (64, 64), i + 20))

def _faces_and_a_full_folder(tmp):
    _write(tmp / "faces" / "photos" / "f0.png", _face("RGB", (250, 200), 0))
    (tmp / "mine").mkdir(); (tmp / "mine" / "notes.txt").write_text("the user's own file\n")

def _warning_is_one_plain_line(command):
    def check(tmp, out, err):
        lines = [l for l in err.splitlines() if "warning" in l.lower()]
        assert lines and all(l.startswith(f"ktsketch {command}: warning: ") for l in lines), err[-2000:]
        assert "UserWarning" not in err and "warnings.warn" not in err and ".py:" not in err
    return check

def _noisy_command():
    "A command that warns (registered for one case)."
    import warnings
    warnings.warn("3 sketches are\nsmaller than 250x200")
    return 0

def _register_noisy(monkeypatch):
    import ktsketch.cli as cli
    monkeypatch.setitem(cli.COMMANDS, "noisy", ("test_matrix", "_noisy_command"))

def _memory(gib):
    def patch(monkeypatch):
        import ktsketch.students as students
        monkeypatch.setattr(students, "available_memory", lambda device: gib * 2**30)
    return patch

def _help_marks_required(command, options):
    def check(tmp, out):
        usage = " ".join(out.split("\n\n")[0].split())      # argparse wraps it at the terminal's width
        for o in options:
            assert re.search(rf"(?<!\[)--{o} {o.upper()}", usage), (o, usage)                 # no brackets: required
            described = re.search(rf"\n  --{o} {o.upper()}(.*?)(\n  -|\Z)", out, re.S).group(1)
            assert "required" in described, (o, described)
    return check

def _n_files(folder, n):
    def check(tmp, out): assert len(list((tmp / folder).glob("*.png"))) == n, sorted(p.name for p in (tmp / folder).iterdir())
    return check

def _clashing_inputs(tmp):
    for sub, name in (("a", "x_2"), ("b", "x"), ("c", "x")): _write(tmp / sub / f"{name}.png", _face())

def _one_run_folder(tmp):
    shutil.copytree(tmp / "run", tmp / "runs" / "only")
    _write(tmp / "x.png", _face())

# ---------------------------------------------------------------- the matrix
MATRIX = [
    # 1. every Pillow mode read for what it means, or refused by name
    *[_eval_mode_case(m) for m in MODES],
    Case("eval-refuses-float-outside-0..1-and-0..255", ["eval", "--pred", "{tmp}/pred", "--gt", "{tmp}/gt"],
         err="face.tif: an image of mode F with values -0.882353..0.615686: expected 0..1 or 0..255", setup=_eval_pair(Image.fromarray((TRUTH / 127.5 - 1).astype(np.float32)))),
    Case("eval-refuses-32-bit-beyond-16-bits", ["eval", "--pred", "{tmp}/pred", "--gt", "{tmp}/gt"],
         err=f"face.tif: an image of mode I with values {15 * 65535}..{206 * 65535}: expected 0..255 or 0..65535", setup=_eval_pair(Image.fromarray(TRUTH.astype(np.int32) * 65535))),
    Case("eval-refuses-NaN", ["eval", "--pred", "{tmp}/pred", "--gt", "{tmp}/gt"], err="face.tif: an image of mode F with NaN",
         setup=_eval_pair(Image.fromarray(np.full(TRUTH.shape, np.nan, np.float32)))),
    Case("translate-16-bit-photo-as-its-8-bit-twin", ["translate", "{tmp}/in16/face.png", "--checkpoint", "{run}", "--out", "{tmp}/o16",
         "--device", "cpu"], status=0, setup=_translate_16bit_setup, check=_translate_16bit_check, needs_run=True),
    # 7. values that pass validation and then crash
    Case("eval-image-under-SSIM-window", ["eval", "--pred", "{tmp}/pred", "--gt", "{tmp}/gt"],
         err="face.tif: 10x10 is smaller than SSIM's 11x11 window", setup=_eval_pair(Image.fromarray(TRUTH[:10, :10]), pred=TRUTH[:10, :10])),
    Case("eval-image-of-11px-is-scored", ["eval", "--pred", "{tmp}/pred", "--gt", "{tmp}/gt"], status=0, out="mean",
         setup=_eval_pair(Image.fromarray(TRUTH[:11, :11]), pred=TRUTH[:11, :11])),
    Case("eval-image-under-SSIM-window-console", ["eval", "--pred", "{tmp}/pred", "--gt", "{tmp}/gt"], subprocess=True,
         err="smaller than SSIM's 11x11 window", setup=_eval_pair(Image.fromarray(TRUTH[:5, :40]), pred=TRUTH[:5, :40])),
    Case("bench-4096-on-a-24GiB-laptop", ["bench", "--size", "4096", "--device", "cpu"], patch=_memory(24),
         err="--size 4096: the teacher needs about"),
    Case("bench-4096-names-a-size-that-fits", ["bench", "--size", "4096", "--device", "cpu"], patch=_memory(24),
         err="use --size 2048 or less"),
    Case("bench-beyond-any-machine", ["bench", "--size", "65536", "--device", "cpu"], err="--size 65536"),
    Case("demo-size-8", ["demo", "--quick", "--size", "8", "--steps", "1", "--teacher_steps", "1", "--pool", "8", "--pairs", "1",
         "--test_pairs", "4", "--device", "cpu", "--out", "{tmp}/d"], err="--size 8"),
    Case("train-size-8", ["train", "--preset", "pixel", "--size", "8", "--steps", "1", "--pairs", "2", "--test_pairs", "4",
         "--device", "cpu", "--out", "{tmp}/r"], err="--size 8"),
    Case("train-steps-0", ["train", "--preset", "pixel", "--size", "32", "--steps", "0", "--pairs", "2", "--test_pairs", "4",
         "--device", "cpu", "--out", "{tmp}/r"], err="--steps 0"),
    Case("translate-batch-size-0", ["translate", "{tmp}/x.png", "--checkpoint", "{run}", "--out", "{tmp}/o", "--batch_size", "0"],
         err="--batch_size 0", setup=lambda tmp: _write(tmp / "x.png", _face()), needs_run=True),
    Case("translate-batch-size-negative", ["translate", "{tmp}/x.png", "--checkpoint", "{run}", "--out", "{tmp}/o", "--batch_size", "-1"],
         err="--batch_size -1", setup=lambda tmp: _write(tmp / "x.png", _face()), needs_run=True),
    Case("train-a-million-pairs-says-the-cost", ["train", "--pairs", "1000000", "--out", "{tmp}/r"], err="--pairs 1000000"),
    # 8. files written get the umask's mode (also the generic check on every success: train's many files below)
    Case("translate-writes-0644", ["translate", "{tmp}/x.png", "--checkpoint", "{run}", "--out", "{tmp}/o", "--device", "cpu"],
         status=0, setup=lambda tmp: _write(tmp / "x.png", _face()), needs_run=True,
         check=lambda tmp, out: _assert_mode(tmp / "o" / "x.png")),
    # 9. the command line itself
    Case("version", ["--version"], status=0, out=f"ktsketch {ktsketch.__version__}"),
    Case("version-console", ["--version"], status=0, out=f"ktsketch {ktsketch.__version__}", subprocess=True),
    Case("info-says-the-version", ["info", "--device", "cpu"], status=0, out=f"ktsketch {ktsketch.__version__}"),
    *[Case(f"{c}-help-marks-required", [c, "--help"], status=0, check=_help_marks_required(c, opts))
      for c, opts in REQUIRED.items() if c in COMMANDS],
    *[Case(f"{c}-without-{opts[0]}", [c, *(["x.png"] if c == "translate" else [])], err=f"--{opts[0]}")
      for c, opts in REQUIRED.items() if c in COMMANDS],
    Case("warning-is-one-plain-line", ["noisy"], status=0, patch=_register_noisy, err="ktsketch noisy: warning: 3 sketches are smaller than 250x200"),
    Case("train-data-warning-is-one-plain-line", ["train", "--data", "{tmp}/data", "--preset", "pixel", "--steps", "1", "--size", "32",
         "--batch_size", "2", "--device", "cpu", "--out", "{tmp}/r"], status=0, err="ktsketch train: warning: ",
         setup=_odd_size_data),
    Case("demo-errors-name-real-flags", ["demo", "--steps", "0"], err="--steps"),
    Case("ablate-help-lists-the-arms", ["ablate", "--help"], status=0, out="kt_gan"),
    Case("translate-folder-with-one-run", ["translate", "{tmp}/x.png", "--checkpoint", "{tmp}/runs", "--out", "{tmp}/o",
         "--device", "cpu"], status=0, setup=_one_run_folder, needs_run=True),
    # 3. translate never overwrites its own outputs
    Case("translate-name-clash-keeps-every-output", ["translate", "{tmp}/a/x_2.png", "{tmp}/b/x.png", "{tmp}/c/x.png",
         "--checkpoint", "{run}", "--out", "{tmp}/o", "--device", "cpu"], status=0, setup=_clashing_inputs,
         check=_n_files("o", 3), needs_run=True),
    # 4. interrupted and resumed training
    Case("resume-refuses-another-size", ["train", "--out", "{run}", "--resume", "--size", "64", "--pairs", "2", "--test_pairs", "4", "--device", "cpu"], err="--size",
         needs_run=True),
    Case("resume-refuses-another-seed", ["train", "--out", "{run}", "--resume", "--seed", "5", "--pairs", "2", "--test_pairs", "4",
         "--device", "cpu"], err="--seed", needs_run=True),
    Case("resume-refuses-another-preset", ["train", "--out", "{run}", "--resume", "--preset", "kt", "--device", "cpu"],
         err="--preset", needs_run=True),    # today it pre-trains VGG-width teachers at 256 first
    # 5. an unwritable or wrong --out, found before any work
    Case("translate-out-is-a-file", ["translate", "{tmp}/x.png", "--checkpoint", "{run}", "--out", "{tmp}/x.png", "--device", "cpu"],
         err="--out", setup=lambda tmp: _write(tmp / "x.png", _face()), needs_run=True),
    Case("train-out-is-a-file", ["train", "--preset", "pixel", "--out", "{tmp}/f"], err="--out",
         setup=lambda tmp: (tmp / "f").write_text("mine")),
    Case("demo-out-is-a-file", ["demo", "--quick", "--out", "{tmp}/f"], err="--out",
         setup=lambda tmp: (tmp / "f").write_text("mine")),
    Case("ablate-out-is-a-file", ["ablate", "--out", "{tmp}/f"], err="--out",
         setup=lambda tmp: (tmp / "f").write_text("mine")),
    # 6. threads chosen by the command line, --threads on every command that computes
    *[Case(f"{c}-has-threads", [c, "--help"], status=0, out="--threads")
      for c in ("demo", "train", "translate", "eval", "ablate", "bench")],
    # 2. ablate never reuses or mixes results across settings
    Case("ablate-other-size-is-not-done", ["ablate", "--size", "64", "--out", "{tmp}/abl"], err="--size", setup=_grid_at_32),
    # align and lab: their arguments are checked before anything is written or started
    Case("align-needs-in-dir", ["align", "--out", "{tmp}/aligned"], err="--in_dir"),
    Case("align-missing-in-dir", ["align", "--in_dir", "{tmp}/nowhere", "--out", "{tmp}/aligned"], err="nowhere"),
    Case("align-keeps-a-non-empty-out", ["align", "--in_dir", "{tmp}/faces", "--out", "{tmp}/mine"], err="--out",
         setup=_faces_and_a_full_folder),
    Case("lab-port-out-of-range", ["lab", "--port", "80"], err="--port 80"),
    Case("lab-token-with-spaces", ["lab", "--token", "not a token"], err="--token"),
]

def _assert_mode(path: Path, mode=0o644):
    assert stat.S_IMODE(path.stat().st_mode) == mode, (path, oct(stat.S_IMODE(path.stat().st_mode)))

def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}

@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)

@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in MATRIX])
def test_matrix(case: Case, tmp_path, monkeypatch, capsys, request, umask_022):
    if case.needs_run: shutil.copytree(request.getfixturevalue("tiny_run"), tmp_path / "run")
    if case.setup: case.setup(tmp_path)
    args = [str(a).format(tmp=tmp_path, run=tmp_path / "run") for a in case.args]
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    if case.patch: case.patch(monkeypatch)
    if case.subprocess:
        r = run_cli(*args, cwd=tmp_path, timeout=300)
        status, out, err = r.returncode, r.stdout, r.stderr
    else:
        status = main(args)
        cap = capsys.readouterr(); out, err = cap.out, cap.err
    assert "Traceback" not in err, err[-3000:]
    assert status == case.status, err[-3000:]
    after = _snapshot(tmp_path)
    if case.status == 2:
        assert len(err.strip().splitlines()) == 1, err
        assert after == before, "an error changed, removed or left files"
    else:
        lost = {f for f in before if after.get(f) != before[f]}
        assert not lost, f"files changed or lost: {sorted(lost)}"
        for f in set(after) - set(before): _assert_mode(tmp_path / f)
    if case.err is not None: assert case.err in err, err[-3000:]
    if case.out is not None: assert case.out in out, out[-3000:]
    if "warning" in (case.err or ""): _warning_is_one_plain_line(case.args[0])(tmp_path, out, err)
    if case.check: case.check(tmp_path, out)

def test_the_matrix_covers_every_command():
    assert set(COMMANDS) <= {c.args[0] for c in MATRIX}, "a new command needs its cases in MATRIX"
