"""ktsketch.data on fake CUFS/CUFSF trees (no real faces): layouts (the generic ones and those of three copies
that circulate), standard splits, pairing, copies found by content, bad input, the joint transforms, and
`ktsketch data` on the command line. The real copies are read only when KTSKETCH_CUFS / KTSKETCH_CUFSF name them."""
from __future__ import annotations
import contextlib, hashlib, io, json, os, shutil, sys, types, warnings
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
from conftest import run_cli
from ktsketch.core import UserError, IMG_H, IMG_W, EYES, image_to_tensor, tensor_to_uint8, crop_from_square
from ktsketch import data as D
from ktsketch.data import (PRESETS, load_dataset, make_fake_tree, FilePairSource, FolderImageSource, PairSideSource,
                           PairedDataset, UnpairedDataset, PairRecord, shift_image, square_to_original, align_face,
                           fit_to_frame, data_cmd)

CUFS_COUNTS = {"CUHK": (88, 100), "AR": (80, 43), "XM2VTS": (100, 195)}

def quiet_load(*args, **kw):
    "load_dataset, returning (splits, [warning messages])."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = load_dataset(*args, **kw)
    return d, [str(w.message) for w in caught]

def counts(d): return {k: (v["train"], v["test"]) for k, v in d.report.subsets.items()}

def save_random(path: Path, mode="RGB", size=(IMG_H, IMG_W), value=None, seed=0):
    "A random (or constant `value`) image of `size` (h, w) written to `path`."
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = size + ((3,) if mode == "RGB" else ())
    a = (np.full(shape, value, np.uint8) if value is not None
         else np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))
    Image.fromarray(a).save(path)
    return path

# ------------------------------------------------------------------ the field's splits, in every layout

@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("trees")
    out = {}
    for layout in ("presplit", "lists", "folders"):
        out["cufs", layout] = make_fake_tree(base / f"cufs_{layout}", layout, "cufs")
        out["cufsf", layout] = make_fake_tree(base / f"cufsf_{layout}", layout, "cufsf")
    return out

def test_preset_totals():
    assert D.preset_totals("cufs") == (268, 338) and D.preset_totals("cufsf") == (250, 944)
    assert sum(sum(v) for v in PRESETS["cufs"].values()) == 606

@pytest.mark.parametrize("layout", ["presplit", "lists", "folders"])
@pytest.mark.parametrize("preset,sizes", [("cufs", (268, 338)), ("cufsf", (250, 944))])
def test_standard_split_in_every_layout(trees, layout, preset, sizes):
    root = trees[preset, layout]
    for args in ((preset, root), (root,)):            # named, and inferred from the names on disk
        d, warned = quiet_load(*args)
        assert (len(d.train), len(d.test)) == sizes
        assert d.report.splits == dict(zip(("train", "test"), sizes))
        assert d.report.layout == layout and d.report.problems == [] and warned == []
    if layout != "presplit":
        assert counts(d) == {k: v for k, v in PRESETS[preset].items()}
    if layout == "presplit" and args == (root,):
        assert d.report.preset is None                 # a pre-split folder does not say what it is: nothing compared

def test_lists_and_folders_give_the_same_split(trees):
    a, b = load_dataset(trees["cufs", "lists"]), load_dataset(trees["cufs", "folders"])
    for split in ("train", "test"):
        names_a = [r[3] for r in getattr(a, split).records]
        names_b = [r[3] for r in getattr(b, split).records]
        assert sorted(names_a) == sorted(names_b)
    assert "AR_1" in [r[3] for r in a.train.records] and "AR_80" in [r[3] for r in a.train.records]
    assert "AR_81" in [r[3] for r in a.test.records]

def test_99_xm2vts_training_pairs_are_reported_not_fixed(tmp_path):
    root = make_fake_tree(tmp_path / "c", "lists", counts=dict(CUFS_COUNTS, XM2VTS=(99, 195)))
    d, warned = quiet_load(root)
    assert d.report.preset == "cufs" and d.report.splits == {"train": 267, "test": 338}
    assert counts(d)["XM2VTS"] == (99, 195)
    assert any("XM2VTS: 99 train / 195 test" in p for p in d.report.problems)
    assert len(warned) == 1 and "XM2VTS" in warned[0]

def test_wrong_data_set_name_is_reported(trees):
    d, warned = quiet_load("cufsf", trees["cufs", "lists"])
    assert any("not a cufsf subset" in p for p in d.report.problems) and warned

# ------------------------------------------------------------------ pairing, by hand-made trees

def test_pairing_by_name_with_natural_order_and_sketch_tags(tmp_path):
    "Photo i and sketch i carry the value i; the loader must pair them whatever the order on disk."
    root = tmp_path / "faces"
    names = [10, 2, 1, 33, 7, 4]
    for i in names:
        save_random(root / "photos" / f"p{i}.png", value=i * 5)
        save_random(root / "sketches" / f"P{i}-sz1.png", "L", value=i * 5)
    d = load_dataset(root, train_fraction=0.5)
    assert (len(d.train), len(d.test)) == (3, 3)
    for src in (d.train, d.test):
        for i in range(len(src)):
            rec = src.get(i)
            assert np.asarray(rec.photo)[0, 0, 0] == np.asarray(rec.sketch)[0, 0]
            assert rec.name.startswith("p") and rec.identity == rec.name
    assert d.report.rules["all"].startswith("random: 3 of 6")

def test_list_file_format_comments_extra_fields_and_split(tmp_path):
    root = tmp_path / "data"
    for k, sub in enumerate(("AR", "CUHK")):
        for i in (1, 2, 3):
            save_random(root / sub / "photos" / f"{i}.png", value=10 * k + i)
            save_random(root / sub / "sketches" / f"{i}.png", "L", value=10 * k + i)
    (root / "my_train_list.txt").write_text("# photo||sketch\nAR/photos/1.png||AR/sketches/1.png||extra\n\n"
                                            "CUHK/photos/2.png || CUHK/sketches/2.png\n")
    (root / "my_test_list.txt").write_text("AR/photos/3.png||AR/sketches/3.png\r\nCUHK\\photos\\3.png||CUHK\\sketches\\3.png\n")
    d, warned = quiet_load(root)
    assert d.report.layout == "lists" and d.report.preset == "cufs"
    assert counts(d) == {"AR": (1, 1), "CUHK": (1, 1)}
    assert [r[3] for r in d.train.records] == ["CUHK_2", "AR_1"]           # the standard order: CUHK, AR, XM2VTS
    assert any("AR: 1 train" in p for p in d.report.problems)     # counts differ from CUFS: said so

def test_several_data_sets_lists_need_a_name(tmp_path, trees):
    root = tmp_path / "both"
    shutil.copytree(trees["cufs", "lists"], root)
    (root / "cufsf_train.txt").write_text("AR/photos/1.jpg||AR/sketches/1.jpg\n")
    (root / "cufsf_test.txt").write_text("AR/photos/2.jpg||AR/sketches/2.jpg\n")
    with pytest.raises(UserError, match="several data sets"): load_dataset(root)
    d, _ = quiet_load("cufs", root)
    assert d.report.splits == {"train": 268, "test": 338}
    assert any("cufsf_train.txt" in n for n in d.report.notes)

def test_flat_cufs_folder_keeps_the_overall_fraction_and_says_so(tmp_path):
    root = make_fake_tree(tmp_path / "src", "folders", counts={"x": (268, 338)}) / "x"   # photos/ + sketches/
    d, warned = quiet_load("cufs", root)
    assert d.report.splits == {"train": 268, "test": 338}
    assert any("per-subset split cannot be applied" in p for p in d.report.problems) and warned
    d1, _ = quiet_load("cufsf", root)                 # a one-subset data set: the flat folder is that subset...
    assert list(d1.report.subsets) == ["CUHK_FERET"] and d1.report.splits["train"] == round(606 * 250 / 1194)
    assert any("not the 1194 of the standard split" in p for p in d1.report.problems)   # ...but not all of it
    full = make_fake_tree(tmp_path / "f", "folders", counts={"x": (250, 944)}) / "x"
    d2, _ = quiet_load("cufsf", full)
    assert d2.report.rules["CUHK_FERET"].startswith("standard") and d2.report.splits["train"] == 250

def test_seeded_split_is_repeatable(tmp_path):
    root = make_fake_tree(tmp_path / "mine", "folders", counts={"faces": (15, 15)})
    train = lambda seed: sorted(r[3] for r in load_dataset(root, split_seed=seed).train.records)
    assert train(3) == train(3) and train(3) != train(4)
    assert len(load_dataset(root, train_fraction=0.2).train) == 6

def test_same_pair_in_train_and_test_is_a_problem(tmp_path, trees):
    root = tmp_path / "leak"
    shutil.copytree(trees["cufs", "lists"], root)
    with open(root / "cufs_test.txt", "a") as f: f.write("AR/photos/1.jpg||AR/sketches/1.jpg\n")
    with open(root / "cufs_train.txt", "a") as f: f.write("AR/photos/2.jpg||AR/sketches/2.jpg\n")
    d, warned = quiet_load(root)
    assert any("1 pair(s) are in both train and test (AR/photos/1.jpg)" in p for p in d.report.problems)
    assert any("listed twice in the same split: AR/photos/2.jpg (train)" in p for p in d.report.problems)
    test_names, train_names = ({r[0] for r in src.records} for src in (d.test, d.train))
    assert root / "AR/photos/1.jpg" in test_names and root / "AR/photos/1.jpg" not in train_names   # kept in test only
    assert len(d.train) + len(d.test) == 606

def test_a_folder_called_like_a_data_set_is_a_folder(tmp_path, monkeypatch, capsys):
    make_fake_tree(tmp_path / "cufs", "lists", "cufs")
    monkeypatch.chdir(tmp_path)
    assert data_cmd("cufs", json=True) == 0
    assert json.loads(capsys.readouterr().out)["splits"] == {"train": 268, "test": 338}

def test_flat_list_paths_have_no_subset(tmp_path):
    root = make_fake_tree(tmp_path / "src", "folders", counts={"x": (2, 2)}) / "x"
    (root / "train.txt").write_text("photos/1.jpg||sketches/1.jpg\nphotos/2.jpg||sketches/2.jpg\n")
    (root / "test.txt").write_text("photos/3.jpg||sketches/3.jpg\n")
    d = load_dataset(root)
    assert d.report.layout == "lists" and counts(d) == {"all": (2, 1)} and d.train.records[0][3] == "1"

# ------------------------------------------------------------------ bad input: one clear UserError each

def test_missing_root(tmp_path):
    with pytest.raises(UserError, match=r"nowhere: no such folder"): load_dataset(tmp_path / "nowhere")
    with pytest.raises(UserError, match="root="): load_dataset("cufs")

def test_empty_folder(tmp_path):
    (tmp_path / "e").mkdir()
    with pytest.raises(UserError, match=r"e: the folder is empty"): load_dataset(tmp_path / "e")
    (tmp_path / "e" / "readme.md").write_text("hi")
    with pytest.raises(UserError, match="no data set layout found"): load_dataset(tmp_path / "e")
    (tmp_path / "f" / "photos").mkdir(parents=True); (tmp_path / "f" / "sketches").mkdir()
    with pytest.raises(UserError, match=r"photos: no images"): load_dataset(tmp_path / "f")

def test_photo_without_sketch_and_the_reverse_are_listed(tmp_path):
    root = make_fake_tree(tmp_path / "b", "folders", counts={"AR": (4, 4)}, ext=".png")
    (root / "AR/sketches/2.png").unlink(); (root / "AR/sketches/7.png").unlink()
    (root / "AR/photos/5.png").rename(root / "AR/photos/55.png")
    with pytest.raises(UserError) as e: load_dataset(root)
    msg = str(e.value)
    assert "2 photo(s)" not in msg and "3 photo(s)" in msg            # 2.png, 7.png and 55.png lack sketches
    for name in ("2.png", "7.png", "55.png", "5.png"): assert name in msg
    assert "without a photo: 5.png" in msg and str(root / "AR" / "photos") in msg

def test_missing_partner_folder(tmp_path):
    save_random(tmp_path / "d" / "photos" / "1.png")
    with pytest.raises(UserError, match=r"sketches: missing"): load_dataset(tmp_path / "d")
    for d in ("train_photos", "train_sketches", "test_photos"): (tmp_path / "p" / d).mkdir(parents=True)
    with pytest.raises(UserError, match="missing test_sketches/"): load_dataset(tmp_path / "p")

def test_corrupt_and_truncated_images(tmp_path):
    root = make_fake_tree(tmp_path / "c", "folders", counts={"faces": (3, 3)}, ext=".png")
    bad = root / "faces/photos/4.png"
    bad.unlink(); bad.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(UserError, match=r"not readable images: .*4\.png"): load_dataset(root)
    good = (root / "faces/photos/5.png").read_bytes()
    bad.write_bytes(good[: len(good) // 2])            # header fine, data cut short: every image is decoded, so found now
    with pytest.raises(UserError, match=r"not readable images: .*4\.png"): load_dataset(root)
    with pytest.raises(UserError, match=r"4\.png"): load_dataset(root, verify=True)

def test_list_line_in_the_wrong_format(tmp_path, trees):
    root = tmp_path / "l"
    shutil.copytree(trees["cufs", "lists"], root)
    lines = (root / "cufs_train.txt").read_text().splitlines()
    lines[4] = lines[4].replace("||", ",")
    (root / "cufs_train.txt").write_text("\n".join(lines))
    with pytest.raises(UserError, match=r"cufs_train\.txt, line 5: .* expected 'PHOTO\|\|SKETCH'"): load_dataset(root)

def test_list_naming_a_missing_file(tmp_path, trees):
    root = tmp_path / "m"
    shutil.copytree(trees["cufs", "lists"], root)
    (root / "AR/sketches/3.jpg").unlink()
    with pytest.raises(UserError, match=r"do not exist: AR/sketches/3\.jpg \(cufs_train\.txt:"): load_dataset(root)
    (root / "cufs_test.txt").unlink()
    with pytest.raises(UserError, match="no test list file"): load_dataset(root)

def test_grey_photo_and_colour_sketch_are_converted(tmp_path):
    root = tmp_path / "g"
    for i in (1, 2):
        save_random(root / "photos" / f"{i}.png", "L", seed=i)
        save_random(root / "sketches" / f"{i}.png", "RGB", seed=i)
    d, warned = quiet_load(root)
    rec = d.train.get(0)
    assert (rec.photo.mode, rec.sketch.mode) == ("RGB", "L") and warned == []
    assert any("greyscale" in n for n in d.report.notes) and any("colour" in n for n in d.report.notes)
    item = PairedDataset(d.train)[0]
    assert item["photo"].shape == (3, 256, 256) and item["sketch"].shape == (1, 256, 256)
    assert torch.equal(item["photo"][0], item["photo"][1])

def test_split_with_zero_pairs(tmp_path):
    one = tmp_path / "one"
    save_random(one / "photos" / "1.png"); save_random(one / "sketches" / "1.png", "L")
    with pytest.raises(UserError, match="train split has zero pairs"): load_dataset(one)
    pre = make_fake_tree(tmp_path / "pre", "presplit", counts={"AR": (3, 0)})
    with pytest.raises(UserError, match="test split has zero pairs"): load_dataset(pre)
    lst = make_fake_tree(tmp_path / "lst", "lists", counts={"AR": (3, 0)})
    with pytest.raises(UserError, match="test split has zero pairs"): load_dataset(lst)

def test_bad_arguments(tmp_path, trees):
    with pytest.raises(UserError, match="layout 'flat'"): load_dataset(trees["cufs", "lists"], layout="flat")
    with pytest.raises(UserError, match="missing train_photos/"): load_dataset(trees["cufs", "lists"], layout="presplit")
    with pytest.raises(UserError, match="not a data set name"): load_dataset(str(tmp_path), root=tmp_path)
    with pytest.raises(UserError, match="synthetic data set only"): load_dataset(trees["cufs", "lists"], n_train=3)

# ------------------------------------------------------------------ sizes other than 250x200

def test_other_sizes_are_fitted_and_reported(tmp_path):
    root = tmp_path / "big"
    for i in (1, 2):
        save_random(root / "photos" / f"{i}.png", size=(300, 300), seed=i)
        save_random(root / "sketches" / f"{i}.png", "L", size=(120, 100), seed=i)
    d, warned = quiet_load(root)
    assert any("not 250x200" in p for p in d.report.problems) and warned
    rec = d.train.get(0)
    assert rec.photo.size == (IMG_W, IMG_H) and rec.sketch.size == (IMG_W, IMG_H)

def test_fit_to_frame_keeps_the_aspect_ratio():
    img = Image.fromarray(np.zeros((100, 400), np.uint8))            # 1:4, wide
    img.paste(255, (0, 0, 400, 100))
    out = np.asarray(fit_to_frame(img))
    assert out.shape == (IMG_H, IMG_W)
    assert (out == 255).all()                                         # edge padding repeats the content
    ramp = Image.fromarray(np.tile(np.arange(200, dtype=np.uint8), (50, 1)))   # 50x200 -> fits 200 wide, 50 tall
    a = np.asarray(fit_to_frame(ramp))
    assert (a[:100] == a[100]).all() and (a[150:] == a[149]).all()   # 100 rows of padding above, 100 below

def test_align_face_puts_the_eyes_on_the_cufs_positions():
    img = Image.new("L", (500, 400), 0)
    from PIL import ImageDraw
    eyes = [(150, 220), (260, 180)]
    for x, y in eyes: ImageDraw.Draw(img).ellipse((x - 4, y - 4, x + 4, y + 4), fill=255)
    out = np.asarray(align_face(img, *eyes)).astype(float)
    assert out.shape == (IMG_H, IMG_W)
    for (ex, ey), half in zip(EYES, (slice(0, 100), slice(100, 200))):
        ys, xs = np.nonzero(out[:, half] > 100)
        assert abs(xs.mean() + half.start - ex) < 1 and abs(ys.mean() - ey) < 1
    with pytest.raises(UserError): align_face(img, (1, 1), (1, 1))

# ------------------------------------------------------------------ datasets and transforms

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = make_fake_tree(tmp_path_factory.mktemp("small") / "s", "folders", counts={"faces": (4, 4)}, ext=".png")
    return load_dataset(root)

def test_test_mode_is_exact_and_deterministic(small):
    ds = PairedDataset(small.test)
    assert len(ds) == 4 and "test" in repr(ds)
    item, rec = ds[1], small.test.get(1)
    assert set(item) == {"photo", "sketch", "identity", "name"} and item["name"] == rec.name == item["identity"]
    assert item["photo"].shape == (3, 256, 256) and item["sketch"].shape == (1, 256, 256)
    assert item["photo"].dtype == torch.float32
    assert torch.equal(crop_from_square(item["photo"]), image_to_tensor(rec.photo, "photo"))
    assert torch.equal(crop_from_square(item["sketch"]), image_to_tensor(rec.sketch, "sketch"))
    assert torch.equal(ds[1]["photo"], ds[-3]["photo"])
    with pytest.raises(IndexError): ds[4]

@pytest.mark.parametrize("size", [64, 128])
def test_cpu_sizes(small, size):
    for train in (False, True):
        item = PairedDataset(small.train, train=train, size=size)[0]
        assert item["photo"].shape == (3, size, size) and item["sketch"].shape == (1, size, size)
        assert item["photo"].min() >= -1 and item["photo"].max() <= 1
    back = square_to_original(item["sketch"])
    assert back.shape == (1, IMG_H, IMG_W)
    with pytest.raises(UserError, match="multiple of 8"): PairedDataset(small.train, size=100)

def test_train_mode_shift_is_bounded_joint_and_repeatable(small):
    ds, ref = PairedDataset(small.train, train=True, flip=False, shift=8), PairedDataset(small.train)[0]
    torch.manual_seed(0)
    seen = set()
    for _ in range(6):
        item = ds[0]
        match = [(dx, dy) for dx in range(-8, 9) for dy in range(-8, 9)
                 if torch.equal(shift_image(ref["photo"], dx, dy), item["photo"])]
        assert match, "the training photo is not a shift of at most 8 pixels of the test photo"
        dx, dy = match[0]
        assert torch.equal(shift_image(ref["sketch"], dx, dy), item["sketch"]), "photo and sketch moved differently"
        seen.add((dx, dy))
    assert len(seen) > 1
    torch.manual_seed(5); a = ds[0]["photo"]
    torch.manual_seed(5); b = ds[0]["photo"]
    assert torch.equal(a, b)

def test_train_mode_flip_is_joint(small):
    ds, ref = PairedDataset(small.train, train=True, shift=0), PairedDataset(small.train)[2]
    torch.manual_seed(0)
    flips = []
    for _ in range(12):
        item = ds[2]
        flipped = torch.equal(item["photo"], ref["photo"].flip(-1))
        assert flipped or torch.equal(item["photo"], ref["photo"])
        assert torch.equal(item["sketch"], ref["sketch"].flip(-1) if flipped else ref["sketch"])
        flips.append(flipped)
    assert any(flips) and not all(flips)

def test_joint_with_a_pair_whose_sketch_is_the_grey_photo(small):
    photo = small.train.get(0).photo
    class Grey:
        def __len__(self): return 1
        def get(self, i): return PairRecord(photo, photo.convert("L"), "g", "g")
    torch.manual_seed(3)
    for _ in range(6):
        item = PairedDataset(Grey(), train=True)[0]
        grey = np.asarray(Image.fromarray(tensor_to_uint8(item["photo"])).convert("L"))
        assert np.array_equal(tensor_to_uint8(item["sketch"]), grey)

def test_dataloader_batches(small):
    dl = torch.utils.data.DataLoader(PairedDataset(small.train, train=True, size=64), batch_size=3, shuffle=True,
                                     generator=torch.Generator().manual_seed(0))
    b = next(iter(dl))
    assert b["photo"].shape == (3, 3, 64, 64) and b["sketch"].shape == (3, 1, 64, 64) and len(b["name"]) == 3

def test_image_sources_and_unpaired_dataset(tmp_path, small):
    folder = tmp_path / "pool"
    save_random(folder / "b10.png", size=(300, 200)); save_random(folder / "b2.jpg")
    save_random(folder / "._b3.png"); (folder / "notes.txt").write_text("x")
    src = FolderImageSource(folder, "sketch")
    assert [p.name for p in src.paths] == ["b2.jpg", "b10.png"] and len(src) == 2
    img, name = src.get(1)
    assert img.mode == "L" and img.size == (IMG_W, IMG_H) and name == "b10"
    ds = UnpairedDataset(src, "sketch", train=True, size=64)
    item = ds[0]
    assert item["image"].shape == (1, 64, 64) and item["name"] == "b2"
    photos = UnpairedDataset(PairSideSource(small.train, "photo"), "photo")
    assert photos[0]["image"].shape == (3, 256, 256) and len(photos) == len(small.train)
    assert torch.equal(photos[0]["image"], PairedDataset(small.train)[0]["photo"])
    (tmp_path / "empty_pool").mkdir()
    with pytest.raises(UserError, match="no images"): FolderImageSource(tmp_path / "empty_pool")
    with pytest.raises(UserError, match="'drawing'"): UnpairedDataset(src, "drawing")

# ------------------------------------------------------------------ the synthetic data set hook

def test_synthetic_is_imported_lazily(monkeypatch):
    calls = {}
    def synthetic_splits(seed=0, **kw):
        calls.update(kw, seed=seed)
        class Src:
            def __init__(self, n): self.n = n
            def __len__(self): return self.n
        return types.SimpleNamespace(train=Src(5), val=Src(2), test=Src(7), photo_pool=Src(9), sketch_pool=Src(9))
    fake = types.ModuleType("ktsketch.synthetic"); fake.synthetic_splits = synthetic_splits
    monkeypatch.setitem(sys.modules, "ktsketch.synthetic", fake)
    d = load_dataset("synthetic", split_seed=4, n_train=5)
    assert calls == {"seed": 4, "n_train": 5}
    assert d.report.layout == "synthetic" and d.report.splits == {"train": 5, "test": 7}
    assert len(d.val) == 2 and len(d.photo_pool) == 9

def test_data_does_not_import_synthetic():
    import subprocess
    code = "import sys, ktsketch.data; print('ktsketch.synthetic' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert r.stdout.strip() == "False"

def test_synthetic_missing_module_is_a_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ktsketch.synthetic", None)     # import fails as if the file were missing
    with pytest.raises(UserError, match="ktsketch.synthetic"):
        load_dataset("synthetic")

def test_real_synthetic_module_if_present():
    pytest.importorskip("ktsketch.synthetic")
    d = load_dataset("synthetic", n_train=4, n_val=2, n_test=3, n_pool=6)
    assert (len(d.train), len(d.test)) == (4, 3)
    item = PairedDataset(d.train, train=True, size=64)[0]
    assert item["photo"].shape == (3, 64, 64) and item["sketch"].shape == (1, 64, 64)

# ------------------------------------------------------------------ ktsketch data

def test_data_cmd_in_process(trees, capsys):
    assert data_cmd(str(trees["cufsf", "folders"])) == 0
    out = capsys.readouterr().out
    assert "layout   folders" in out and "CUHK_FERET" in out and "250/944" in out
    assert data_cmd(str(trees["cufs", "presplit"]), preset="cufs", json=True) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["splits"] == {"train": 268, "test": 338} and info["preset"] == "cufs" and info["problems"] == []
    with pytest.raises(UserError, match="--root"): data_cmd()
    with pytest.raises(UserError, match="--preset 'lfw'"): data_cmd(str(trees["cufs", "lists"]), preset="lfw")

def test_cli_json(tmp_path):
    root = make_fake_tree(tmp_path / "c", "lists", counts=dict(CUFS_COUNTS, XM2VTS=(99, 195)))
    r = run_cli("data", "--root", root, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["layout"] == "lists" and info["splits"] == {"train": 267, "test": 338}
    assert info["subsets"] == {"AR": {"train": 80, "test": 43}, "CUHK": {"train": 88, "test": 100},
                               "XM2VTS": {"train": 99, "test": 195}}
    assert any("XM2VTS" in p for p in info["problems"])
    assert "Warning" not in r.stderr

@pytest.mark.parametrize("case,needle", [("nowhere", "no such folder"), ("unpaired", "without a sketch"),
                                          ("noroot", "--root DIR is required")])
def test_cli_user_errors_exit_2_in_one_line(tmp_path, case, needle):
    if case == "nowhere": args = ["--root", tmp_path / "nowhere"]
    elif case == "unpaired":
        root = make_fake_tree(tmp_path / "u", "folders", counts={"AR": (2, 2)})
        (root / "AR/sketches/3.jpg").unlink()
        args = ["--root", root]
    else: args = []
    r = run_cli("data", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr

def test_cli_in_process_exit_codes(trees):
    from ktsketch.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["data", "--root", str(trees["cufs", "lists"]), "--layout", "flat"]) == 2
        assert main(["data", "--root", str(trees["cufs", "lists"]), "--preset", "lfw"]) == 2
        assert main(["data", "--root", str(trees["cufs", "lists"]), "--check"]) == 0
    assert len(err.getvalue().strip().splitlines()) == 2

# ------------------------------------------------------------------ the layouts of copies that circulate

def digest(path): return hashlib.sha1(np.asarray(Image.open(path)).tobytes()).hexdigest()

@pytest.fixture(scope="module")
def shaped(tmp_path_factory):
    base = tmp_path_factory.mktemp("shaped")
    return {name: make_fake_tree(base / name, name, first=i * 10_000) for i, name in enumerate(("ansgda", "chaofengc", "lydietoure"))}

def test_chaofengc_copies_are_counted_once_and_no_test_face_trains(shaped):
    "Its top-level photos/ repeat CUHK's and AR's training pairs and AR_test/ repeats AR/'s test pairs (522 files, 311 pairs)."
    root = shaped["chaofengc"]
    assert sum(1 for _ in root.rglob("*.png")) == 2 * 522
    d, warned = quiet_load(root)
    assert counts(d) == {"CUHK": (88, 100), "AR": (100, 23)} and len(d.train) + len(d.test) == 311
    train = [digest(r[0]) for r in d.train.records] + [digest(r[1]) for r in d.train.records]
    test = [digest(r[0]) for r in d.test.records] + [digest(r[1]) for r in d.test.records]
    assert len(set(train)) == len(train) and len(set(test)) == len(test)      # no image counted twice
    assert not set(train) & set(test)                                         # no test face trains
    assert any("211 pair(s) are copies" in p for p in d.report.problems) and warned
    assert d.report.rules["AR"] == "list files AR/test.txt, AR/train.txt"

def test_ansgda_reads_as_standard_cufs(shaped):
    d, warned = quiet_load(shaped["ansgda"])
    assert d.report.preset == "cufs" and d.report.standard and d.report.problems == [] and warned == []
    rec = {r[3]: r for r in d.test.records}["CUHK_f1-001-01"]
    assert rec[1].name == "94.jpg"                                             # CUFS's number for f1-001-01
    assert [r[3] for r in d.test.records][:2] == ["CUHK_f-039-01", "CUHK_f-040-01"] and d.test.records[100][3] == "AR_81"
    assert any("pose" in n for n in d.report.notes)                            # other folders are said, not read

def test_lydietoure_cuhk_split_by_its_names_and_squashed_copies_found(shaped):
    d, warned = quiet_load(shaped["lydietoure"])
    assert counts(d) == {"CUHK": (88, 100), "CUHK_FERET": (3, 9)}
    assert any("194 pair(s) are copies" in p for p in d.report.problems)       # 188 squashed + 6 repeated
    assert any("CUHK_FERET: 12 pairs" in p and "train.txt" in p for p in d.report.problems)
    assert any("not 250x200" in p for p in d.report.problems)
    assert d.report.rules["CUHK"] == "CUHK's file names"
    train_keys = {r[3] for r in d.train.records}
    assert "CUHK_f2-005-01" in train_keys and not any("f-039" in k for k in train_keys)

def test_folder_and_file_name_rules():
    from ktsketch.data import standard_subset, split_word, cuhk_key, cuhk_split, CUHK_TRAIN, CUHK_TEST, CUHK_NUMBER
    assert [standard_subset(n) for n in ("CUHK Students", "CUHK_student_test", "AR_test", "feret_dataset", "XM2VTS", "faces")] == \
           ["CUHK", "CUHK", "AR", "CUHK_FERET", "XM2VTS", None]
    assert [split_word(n) for n in ("Testing Sketches", "photos_train", "train_test", "AR")] == ["test", "train", None, None]
    assert (len(CUHK_TRAIN), len(CUHK_TEST)) == (88, 100) and CUHK_NUMBER["f-039-01"] == 89 and CUHK_NUMBER["m1-041-01"] == 188
    assert [cuhk_split(cuhk_key(k)) for k in ("F2-005-01", "m-062-01", "m-063-01", "f1-015-01", "f-044-01")] == \
           ["train", "train", "test", "test", None]

def test_numbered_sketches_without_a_photo_are_errors_not_guesses(shaped, tmp_path):
    root = tmp_path / "a"; shutil.copytree(shaped["ansgda"], root)
    (root / "CUHK Students/Testing/sketches/100.jpg").rename(root / "CUHK Students/Testing/sketches/300.jpg")
    report = D.scan_dataset(root)
    assert any("without a photo: 300.jpg" in e for e in report.errors) and any("without a sketch: f1-007-01.jpg" in e for e in report.errors)   # CUFS number 100

def test_all_problems_in_one_pass_and_json_even_when_exiting_2(tmp_path):
    root = make_fake_tree(tmp_path / "b", "folders", counts={"AR": (4, 4)}, ext=".png")
    (root / "AR/sketches/2.png").unlink()                                      # a photo without its sketch
    (root / "AR/photos/3.png").write_bytes(b"not an image")                     # unreadable
    Image.open(root / "AR/photos/4.png").resize((300, 300)).save(root / "AR/photos/4.png")   # another size
    shutil.copy(root / "AR/photos/5.png", root / "AR/photos/9.png"); shutil.copy(root / "AR/sketches/5.png", root / "AR/sketches/9.png")  # a copy
    r = run_cli("data", "--root", root, "--json", "--list")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    info = json.loads(r.stdout)
    assert any("without a sketch: 2.png" in e for e in info["errors"]) and any("3.png" in e for e in info["errors"])
    assert any("not 250x200" in p for p in info["problems"]) and any("copies" in p for p in info["problems"])
    assert {p["photo"] for p in info["pairs"]} >= {"AR/photos/1.png", "AR/photos/5.png"} and "AR/photos/9.png" not in {p["photo"] for p in info["pairs"]}
    assert info["dropped"] == [{"photo": "AR/photos/9.png", "sketch": "AR/sketches/9.png", "copy_of": "AR/photos/5.png"}]
    assert set(info["pairs"][0]) == {"split", "subset", "name", "photo", "sketch"}

def test_truncated_jpeg_is_not_none_without_check(tmp_path):
    root = make_fake_tree(tmp_path / "t", "folders", counts={"faces": (2, 2)})
    jpg = root / "faces/photos/2.jpg"
    jpg.write_bytes(jpg.read_bytes()[:-600])
    r = run_cli("data", "--root", root)
    assert r.returncode == 2 and "2.jpg" in r.stderr and "problems (0): none" not in r.stdout

def test_check_says_how_16_bit_images_are_read(tmp_path):
    root = make_fake_tree(tmp_path / "m", "folders", counts={"faces": (2, 2)}, ext=".png")
    sk = root / "faces/sketches/1.png"
    Image.fromarray(np.asarray(Image.open(sk)).astype(np.uint16) * 257).save(sk)  # 16-bit grey, the same picture
    assert Image.open(sk).mode.startswith("I")
    d = D.scan_dataset(root)
    assert any("modes other than 8-bit" in n and "1.png" in n for n in d.notes)
    checked = D.scan_dataset(root, verify=True)
    assert any("1.png (I" in p and "read as" in p for p in checked.problems)

def test_export_numbers_pairs_in_the_standard_order(shaped, tmp_path):
    out = tmp_path / "numbered"
    with contextlib.redirect_stdout(io.StringIO()): assert data_cmd(str(shaped["ansgda"]), export=str(out)) == 0
    assert len(list((out / "test_sketches").iterdir())) == 338 and len(list((out / "train_photos").iterdir())) == 268
    assert digest(out / "test_sketches/1.jpg") == digest(shaped["ansgda"] / "CUHK Students/Testing/sketches/89.jpg")
    assert digest(out / "test_photos/101.jpg") == digest(shaped["ansgda"] / "AR/Testing Photos/81.jpg")
    assert json.loads((out / "pairs.json").read_text())[0]["name"] == "CUHK_f-005-01"
    with pytest.raises(UserError, match="not empty"): data_cmd(str(shaped["ansgda"]), export=str(out))

# ------------------------------------------------------------------ real copies, when the user names them

@pytest.mark.skipif(not os.environ.get("KTSKETCH_CUFS"), reason="KTSKETCH_CUFS is not set (a folder holding CUFS)")
def test_real_cufs_reads_as_the_standard_split():
    d, _ = quiet_load(os.environ["KTSKETCH_CUFS"])
    assert d.report.errors == [] and d.report.splits["test"] > 0
    assert d.report.standard, d.report.text()

@pytest.mark.skipif(not os.environ.get("KTSKETCH_CUFSF"), reason="KTSKETCH_CUFSF is not set (a folder holding CUFSF)")
def test_real_cufsf_reads():
    report = D.scan_dataset(os.environ["KTSKETCH_CUFSF"])
    assert report.errors == [] and "CUHK_FERET" in report.subsets, report.text()
