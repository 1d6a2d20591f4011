"""The built-in synthetic faces: determinism (within and across processes), geometry, splits, cache, and that
the sketch is not a pixel filter of the photo."""
from __future__ import annotations
import hashlib, json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from ktsketch.core import EYES, IMG_H, IMG_W, UserError
from ktsketch import synthetic as syn

FACES = [(0, 0), (0, 7), (0, 123), (3, 2_000_005), (11, 4_001_999)]

def digest(seed, index) -> str:
    photo, sketch = syn.make_face(seed, index)
    return hashlib.sha256(photo.tobytes() + sketch.tobytes()).hexdigest()

def test_same_face_twice_in_one_process():
    for seed, index in FACES[:3]:
        a, b = syn.make_face(seed, index), syn.make_face(seed, index)
        assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    assert syn.face_params(0, 5) == syn.face_params(0, 5)

def test_same_face_in_other_processes():
    "Byte-for-byte identical in fresh interpreters, whatever their hash seed (the generator must not use hash())."
    code = ("import hashlib, json, sys; from ktsketch.synthetic import make_face\n"
            "out = {}\n"
            "for s, i in json.loads(sys.argv[1]):\n"
            "    p, k = make_face(s, i); out[f'{s}/{i}'] = hashlib.sha256(p.tobytes() + k.tobytes()).hexdigest()\n"
            "print(json.dumps(out))")
    here = {f"{s}/{i}": digest(s, i) for s, i in FACES}
    for hashseed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        res = subprocess.run([sys.executable, "-c", code, json.dumps(FACES)], capture_output=True, text=True, env=env, timeout=120)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout) == here

def test_different_identities_differ():
    ds = {digest(s, i) for s, i in FACES}
    assert len(ds) == len(FACES)
    assert syn.face_params(0, 1) != syn.face_params(1, 1)

def test_shapes_and_modes():
    photo, sketch = syn.make_face(0, 3)
    assert (photo.mode, photo.size) == ("RGB", (IMG_W, IMG_H))
    assert (sketch.mode, sketch.size) == ("L", (IMG_W, IMG_H))
    p = syn.face_params(0, 3)
    assert syn.render_photo(p).tobytes() == photo.tobytes()     # the renderers alone give what make_face gives
    assert syn.render_sketch(p).tobytes() == sketch.tobytes()

def test_bad_arguments():
    with pytest.raises(UserError, match="must be >= 0"): syn.face_params(0, -1)
    with pytest.raises(UserError, match="expected 'photo' or 'sketch'"): syn.SyntheticImageSource(0, 0, 3, "drawing")
    with pytest.raises(UserError, match="n_train"): syn.synthetic_splits(n_train=-3)
    with pytest.raises(IndexError): syn.SyntheticPairSource(0, 0, 2).get(2)

def test_eyes_where_cufs_puts_them():
    "Geometry: within 2 px of core.EYES; in the sketch, the ink round each eye is centred within a few px of it."
    for i in range(60):
        p = syn.face_params(0, i)
        g = syn.face_geometry(p)
        assert np.abs(np.array(g["eyes"]) - np.array(EYES)).max() <= 2
        if i >= 20: continue
        ink = (255 - np.asarray(syn.render_sketch(p), float)) ** 2
        yy, xx = np.mgrid[-8:9, -14:15]
        for ex, ey in EYES:
            win = ink[ey - 8:ey + 9, ex - 14:ex + 15]
            assert abs((win * xx).sum() / win.sum()) < 5 and abs((win * yy).sum() / win.sum()) < 5

def test_variety():
    ps = [syn.face_params(0, i) for i in range(1500)]
    for key, table in (("hair_style", syn.HAIR_STYLES), ("expression", syn.EXPRESSIONS), ("glasses", syn.GLASSES),
                       ("beard", syn.BEARDS), ("shape", syn.SHAPES), ("hair_colour_name", syn.HAIR_COLOURS)):
        assert {p[key] for p in ps} == set(table), key
    lx = np.array([p["light"][0] for p in ps])
    assert (lx < -0.4).mean() > 0.15 and (lx > 0.4).mean() > 0.15       # light from both sides

def test_sketch_is_not_a_pixel_filter():
    "The best function of the photo's grey level at a pixel explains little of the sketch there."
    pairs = [syn.make_face(0, i) for i in range(16)]
    g = np.concatenate([np.asarray(p.convert("L")).ravel() for p, _ in pairs])
    s = np.concatenate([np.asarray(k, np.float64).ravel() for _, k in pairs])
    mean = np.bincount(g, s, 256) / np.maximum(np.bincount(g, minlength=256), 1)
    r2 = 1 - ((s - mean[g]) ** 2).mean() / s.var()
    assert r2 < 0.7
    for lo in (60, 120, 180):   # one photo grey level, sketch values spread widely
        assert s[(g >= lo) & (g < lo + 10)].std() > 25
    # skin and background colour leave no trace: the sketch's background is paper whatever the photo's colour
    bgs = [np.asarray(k, float)[:15, :15].mean() for _, k in pairs]
    assert min(bgs) > 225

def test_light_decides_where_the_hatching_goes():
    base = dict(syn.face_params(0, 3), light_strength=0.85)
    left = np.asarray(syn.render_sketch(dict(base, light=(-0.85, -0.3))), float)
    right = np.asarray(syn.render_sketch(dict(base, light=(0.85, -0.3))), float)
    # light from the left: the left cheek stays white, the right one is hatched (and the other way round)
    assert left[140:200, 55:95].mean() > right[140:200, 55:95].mean() + 5
    assert right[140:200, 105:145].mean() > left[140:200, 105:145].mean() + 5

def test_splits_are_disjoint_nested_and_stable():
    s = syn.synthetic_splits(seed=0, n_train=32, n_val=16, n_test=50, n_pool=500)
    ranges = s.ranges()
    names = list(ranges)
    for a in names:
        for b in names:
            if a < b: assert not set(ranges[a]) & set(ranges[b]), (a, b)
    assert (len(s.train), len(s.val), len(s.test), len(s.photo_pool), len(s.sketch_pool)) == (32, 16, 50, 500, 500)
    big = syn.synthetic_splits(seed=0, n_train=320, n_test=50)
    assert set(s.train.indices) < set(big.train.indices) and big.test.indices == s.test.indices
    assert s.train.get(5).sketch.tobytes() == big.train.get(5).sketch.tobytes()
    ids = [s.train.get(i).identity for i in range(3)] + [s.test.get(i).identity for i in range(3)]
    assert len(set(ids)) == 6
    assert s.photo_pool.get(0)[0].mode == "RGB" and s.sketch_pool.get(0)[0].mode == "L"

def test_cache_round_trip(tmp_path):
    s = syn.synthetic_splits(seed=2, n_train=3, n_val=1, n_test=2, n_pool=2, cache_dir=tmp_path)
    first = [s.train.get(i) for i in range(3)]
    pool = [s.sketch_pool.get(i)[0] for i in range(2)]
    files = sorted(tmp_path.rglob("*"))
    assert not [f for f in files if f.name.endswith(".tmp")]                 # written atomically, no leftovers
    pngs = [f for f in files if f.suffix == ".png"]
    assert len(pngs) == 3 * 2 + 2
    assert all(f"synthetic-v{syn.GENERATOR_VERSION}-seed2" in f.as_posix() for f in pngs)
    again = syn.synthetic_splits(seed=2, n_train=3, n_val=1, n_test=2, n_pool=2, cache_dir=tmp_path)
    for i, rec in enumerate(first):
        photo, sketch = syn.make_face(2, again.train.indices[i])
        back = again.train.get(i)                                            # read from disk now
        assert np.array_equal(np.asarray(back.photo), np.asarray(photo)) and np.array_equal(np.asarray(back.sketch), np.asarray(sketch))
        assert np.array_equal(np.asarray(rec.photo), np.asarray(photo))
        assert (back.identity, back.name) == (rec.identity, rec.name)
    for i, img in enumerate(pool):
        assert np.array_equal(np.asarray(again.sketch_pool.get(i)[0]), np.asarray(syn.make_face(2, again.sketch_pool.indices[i])[1]))
    # the cache is really read: a changed file comes back changed
    target = pngs[0]
    Image.new(Image.open(target).mode, (IMG_W, IMG_H), 0).save(target)
    kind = "photo" if "photos" in target.parts else "sketch"
    index = int(target.stem)
    assert np.asarray(syn.synthetic_image(2, index, kind, tmp_path)).max() == 0

def test_works_with_the_data_module():
    from ktsketch.data import PairedDataset, UnpairedDataset, load_dataset
    s = syn.synthetic_splits(n_train=2, n_test=2, n_pool=2)
    item = PairedDataset(s.train, train=True, size=64)[1]
    assert tuple(item["photo"].shape) == (3, 64, 64) and tuple(item["sketch"].shape) == (1, 64, 64)
    assert tuple(UnpairedDataset(s.photo_pool, "photo", size=64)[0]["image"].shape) == (3, 64, 64)
    d = load_dataset("synthetic", n_train=4, n_test=3)
    assert (len(d.train), len(d.test)) == (4, 3)
