"""ktsketch.align on synthetic faces moved out of place (their true eye positions are known): the eyes are
found, the faces come back to the CUFS geometry, failures are listed, and `ktsketch align` on the command line.
Needs the align extra (OpenCV); without it, only the one-line install message is checked."""
from __future__ import annotations
import json, math, sys
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from conftest import run_cli
from ktsketch.core import UserError, EYES, IMG_H, IMG_W
from ktsketch.data import unalign_face, align_face, load_dataset

def test_missing_opencv_is_one_line_saying_how_to_install(monkeypatch):
    from ktsketch import align
    monkeypatch.setitem(sys.modules, "cv2", None)          # import fails as if it were not installed
    with pytest.raises(UserError, match=r'pip install "ktsketch\[align\]"'): align.opencv()

cv2 = pytest.importorskip("cv2", reason='the align extra is not installed: pip install "ktsketch[align]"')
from ktsketch import align as A
from ktsketch.synthetic import face_params, render_photo, render_sketch

def moved(i, kind):
    "A synthetic face put into a larger picture, scaled, turned and moved; also its true eyes and scale."
    p = face_params(3, i)
    img = render_photo(p) if kind == "photo" else render_sketch(p)
    scale = 1.15 + 0.1 * (i % 3)
    raw, eyes = unalign_face(img, 420, 330, scale=scale, angle=-6 + 3 * (i % 5), shift=(12 * (i % 3) - 12, -15))
    return raw, eyes, scale

@pytest.mark.parametrize("kind,at_least", [("photo", 8), ("sketch", 5)])
def test_eyes_of_moved_synthetic_faces_are_found_where_they_are(kind, at_least):
    misses = []
    for i in range(10):
        raw, true, scale = moved(i, kind)
        e = A.find_eyes(raw)
        if e is not None: misses.append(max(math.dist(e.left, true[0]), math.dist(e.right, true[1])) / scale)
    assert len(misses) >= at_least, f"only {len(misses)} of 10 {kind}s"
    assert np.median(misses) < 5 and max(misses) < 10, misses         # pixels, at the CUFS scale

def test_aligned_faces_have_their_eyes_near_the_cufs_positions():
    errors = []
    for i in range(6):
        raw, true, _ = moved(i, "photo")
        e = A.find_eyes(raw)
        if e is None: continue
        out = align_face(raw, e.left, e.right)
        assert out.size == (IMG_W, IMG_H)
        err = A.eye_error(out)
        if err is not None: errors.append(err)
    assert len(errors) >= 4 and np.median(errors) < 5, errors

def test_nothing_found_in_a_blank_or_a_face_free_picture():
    assert A.find_eyes(Image.new("RGB", (300, 400), (120, 120, 120))) is None
    assert A.find_eyes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8))) is None

def test_align_command_aligns_a_tree_lists_failures_and_the_result_reads(tmp_path):
    raw = tmp_path / "raw"
    for d in ("photos", "sketches"): (raw / d).mkdir(parents=True)
    kept = []
    for i in range(4):
        p, s = moved(i, "photo")[0], moved(i, "sketch")[0]
        if A.find_eyes(p) and A.find_eyes(s): kept.append(i)
        p.save(raw / f"photos/{i}.png"); s.save(raw / f"sketches/{i}.png")
    Image.new("RGB", (256, 384), (128, 128, 128)).save(raw / "photos/blank.jpg")
    r = run_cli("align", "--in", raw, "--out", tmp_path / "aligned", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert "photos/blank.jpg" in info["failed"] and info["aligned"] == 2 * len(kept) >= 4    # pairs kept whole
    i = kept[0]
    out = Image.open(tmp_path / f"aligned/photos/{i}.png")
    assert out.size == (IMG_W, IMG_H) and out.mode == "RGB" and Image.open(tmp_path / f"aligned/sketches/{i}.png").mode == "L"
    saved = json.loads((tmp_path / "aligned/alignment.json").read_text())
    assert set(saved["eyes"]) >= {f"photos/{i}.png" for i in kept}
    d = load_dataset(tmp_path / "aligned")                                        # the result reads as pairs
    assert len(d.train) + len(d.test) == len(kept)
    r = run_cli("align", "--in", raw, "--out", tmp_path / "aligned")            # never over what is there
    assert r.returncode == 2 and "not empty" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("align", "--in", tmp_path / "nowhere", "--out", tmp_path / "x")
    assert r.returncode == 2 and "no such folder" in r.stderr
