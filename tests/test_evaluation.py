"""Evaluation: metric invariants, the MATLAB references, NLDA sanity cases, evaluate(), and every bad input of `ktsketch eval`."""
from __future__ import annotations
import hashlib, json
from fractions import Fraction
from pathlib import Path
from collections import namedtuple
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image
import skimage.data
from conftest import run_cli
from ktsketch.core import UserError, pad_to_square, tensor_to_uint8
from ktsketch import evaluation as ev

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    "piq's FSIM is many small FFTs: on 2 shared cores one thread is faster than two fighting for them."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

CAM = skimage.data.camera()[40:290, 160:360]
AST = skimage.data.astronaut()[20:270, 140:340]

# ---------------------------------------------------------------- grayscale
def test_gray_levels_survive_and_truncation_would_not():
    levels = np.arange(256, dtype=np.uint8)
    rgb = np.stack([np.tile(levels, (2, 1))] * 3, -1)
    assert (ev.to_gray_uint8(rgb) == np.tile(levels, (2, 1))).all()
    assert (rgb.astype(np.float64) @ ev.RGB2GRAY).astype(np.uint8).max() == 254

def test_gray_matches_octave_rgb2gray():
    assert hashlib.md5(ev.to_gray_uint8(AST).tobytes()).hexdigest() == "485bebec7d521c8485109628a5ec74eb"

def test_gray_rounds_half_away_from_zero_exactly():
    "Against exact rational arithmetic on the stated decimal weights, for a sample of pixels."
    w = [Fraction(s) for s in ("0.298936021293775", "0.587043074451121", "0.114020904255103")]
    px = AST.reshape(-1, 3)[::97]
    exact = [int(sum(Fraction(int(v)) * wi for v, wi in zip(p, w)) + Fraction(1, 2)) for p in px]  # floor(x + 1/2)
    assert (ev.to_gray_uint8(px[None]) [0] == np.array(exact)).all()

def test_gray_inputs():
    assert ev.to_gray_uint8(Image.fromarray(CAM)) is not None and (ev.to_gray_uint8(Image.fromarray(CAM)) == CAM).all()
    assert (ev.to_gray_uint8(Image.fromarray(AST)) == ev.to_gray_uint8(AST)).all()
    t = torch.from_numpy(AST).permute(2, 0, 1).float() / 127.5 - 1
    assert (ev.to_gray_uint8(t) == ev.to_gray_uint8(AST)).all()
    with pytest.raises(UserError, match="uint8"): ev.to_gray_uint8(CAM.astype(np.float32))
    with pytest.raises(UserError, match="shape"): ev.to_gray_uint8(np.zeros((4, 4, 2), np.uint8))

def test_every_mode_in_memory_is_read_for_what_it_means():
    "PIL images handed to the metrics (not only files) go through core.to_8bit: 16-bit, alpha, palette, CMYK."
    deep = Image.fromarray(CAM.astype(np.uint16) * 257)
    assert deep.mode == "I;16" and (ev.to_gray_uint8(deep) == CAM).all()
    assert ev.fsim_gray(deep, CAM) == pytest.approx(1.0, abs=1e-6) and ev.ssim_gray(deep, CAM) == pytest.approx(1.0)
    clear = Image.fromarray(np.dstack([np.zeros_like(AST), np.zeros(AST.shape[:2], np.uint8)]))   # RGBA, all transparent
    assert (ev.to_gray_uint8(clear) == 255).all()
    assert not ev._is_rgb(Image.fromarray(CAM).convert("LA")) and ev._is_rgb(Image.fromarray(AST).convert("CMYK"))
    df = ev.score_pairs([Image.fromarray(AST).convert("CMYK")], [AST])             # both colour: FSIMc too
    assert df.loc["0", "fsimc"] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(UserError, match="mode F with values"): ev.to_gray_uint8(Image.fromarray(CAM.astype(np.float32) - 300))

def test_images_under_the_ssim_window_are_refused_by_name():
    with pytest.raises(UserError, match="tiny: 10x200 is smaller than SSIM's 11x11 window"):
        ev.score_pairs([CAM[:10]], [CAM[:10]], names=["tiny"])
    with pytest.raises(UserError, match="10x10 is smaller"): ev.ssim_gray(CAM[:10, :10], CAM[:10, :10])
    assert ev.ssim_gray(CAM[:11, :11], CAM[:11, :11]) == pytest.approx(1.0)

# a CMYK profile: Debian's libgs-common has one (not shipped by us: AGPL); KTSKETCH_CMYK_ICC names another
CMYK_PROFILE = Path(__import__("os").environ.get("KTSKETCH_CMYK_ICC", "/usr/share/color/icc/ghostscript/default_cmyk.icc"))

@pytest.mark.skipif(not CMYK_PROFILE.exists(), reason="no CMYK ICC profile on this machine (apt-get install libgs-common)")
def test_cmyk_jpeg_is_read_through_its_icc_profile(tmp_path):
    from PIL import ImageCms
    import io
    icc = CMYK_PROFILE.read_bytes()
    cmyk = ImageCms.profileToProfile(Image.fromarray(AST), ImageCms.createProfile("sRGB"),
                                     ImageCms.ImageCmsProfile(io.BytesIO(icc)), outputMode="CMYK")
    cmyk.save(tmp_path / "with.jpg", icc_profile=icc, quality=95); cmyk.save(tmp_path / "without.jpg", quality=95)
    from ktsketch.core import load_image
    err = lambda f: np.abs(np.asarray(load_image(tmp_path / f), dtype=float) - AST).mean()
    assert err("with.jpg") < 8 and err("without.jpg") > 1.5 * err("with.jpg")   # measured 5.9 and 11.6: the profile brings the colours back

# ---------------------------------------------------------------- FSIM / SSIM
def test_fsim_invariants():
    blur = ev._box3(CAM)
    assert ev.fsim_gray(CAM, CAM) == pytest.approx(1.0, abs=1e-6)
    assert ev.fsim_gray(blur, CAM) == pytest.approx(ev.fsim_gray(CAM, blur), abs=1e-6)
    many = ev.fsim_gray([blur, CAM], [CAM, CAM])
    assert many.shape == (2,) and many[0] == pytest.approx(ev.fsim_gray(blur, CAM), abs=1e-6)
    assert 0 < ev.fsim_gray(ev.to_gray_uint8(AST), CAM) < many[0] < 1
    assert ev.fsimc(AST, AST) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(UserError, match="RGB"): ev.fsimc(CAM, CAM)
    with pytest.raises(UserError, match="size"): ev.fsim_gray(CAM, CAM[:200])

def test_fsim_matches_featuresim_m_under_octave():
    for name, (ref, dis) in ev.fsim_reference_cases().items():
        m_fsim, m_fsimc = ev.FSIM_MATLAB_REFERENCE[name]
        t = lambda a: torch.from_numpy(a).float()[None, None] if a.ndim == 2 else torch.from_numpy(a).float().permute(2, 0, 1)[None]
        import piq
        assert piq.fsim(t(dis), t(ref), data_range=255, chromatic=False).item() == pytest.approx(m_fsim, abs=1e-4), name
        if ref.ndim == 3 and name != "astronaut_rgb_tint":   # the tint flips chroma signs: piq's |.|^0.03 vs MATLAB's real(.^0.03)
            assert ev.fsimc(dis, ref) == pytest.approx(m_fsimc, abs=1e-4), name
        if ref.ndim == 2:
            assert ev.fsim_gray(dis, ref) == pytest.approx(m_fsim, abs=1e-4), name

def test_ssim_invariants_and_piq_agreement():
    import piq
    preds = [ev._box3(CAM), (CAM // 32 * 32).astype(np.uint8), ev.to_gray_uint8(AST)]
    sk = ev.ssim_gray(preds, [CAM] * 3)
    t = lambda a: torch.from_numpy(np.stack(a)).double()[:, None]
    pq = piq.ssim(t(preds), t([CAM] * 3), data_range=255, kernel_size=11, kernel_sigma=1.5, k1=0.01, k2=0.03,
                  downsample=False, reduction="none").numpy()
    assert np.abs(sk - pq).max() < 1e-10
    assert ev.ssim_gray(CAM, CAM) == pytest.approx(1.0, abs=1e-12)
    assert ev.ssim_gray(preds[0], CAM) == pytest.approx(ev.ssim_gray(CAM, preds[0]), abs=1e-12)
    assert sk[0] > sk[2]

def test_score_pairs_table():
    df = ev.score_pairs([CAM, ev._box3(CAM)], [CAM, CAM], names=["a", "b"])
    assert list(df.index) == ["a", "b", "mean"] and list(df.columns) == ["fsim", "ssim"]
    assert df.loc["mean", "fsim"] == pytest.approx(df.loc[["a", "b"], "fsim"].mean())
    df = ev.score_pairs([Image.fromarray(AST)], [AST])
    assert list(df.columns) == ["fsim", "ssim", "fsimc"]
    mixed = ev.score_pairs([CAM, ev.to_gray_uint8(AST)[:200]], [CAM, ev.to_gray_uint8(AST)[:200]])  # two sizes
    assert np.allclose(mixed.fsim, 1.0, atol=1e-6)
    with pytest.raises(UserError, match="nothing to score"): ev.score_pairs([], [])
    with pytest.raises(UserError, match="ground truth is"): ev.score_pairs([CAM], [CAM[:100]])
    with pytest.raises(UserError, match="2 predictions but 1"): ev.score_pairs([CAM, CAM], [CAM])

# ---------------------------------------------------------------- NLDA
def toy(n=40, seed=0, style=0.7, noise=25.0, size=(30, 24)):
    rng = np.random.default_rng(seed)
    smooth = lambda: np.stack([np.asarray(Image.fromarray(z.astype(np.float32)).resize(size[::-1], Image.BICUBIC))
                               for z in rng.normal(size=(n, 6, 5))])
    base = 40 * smooth()
    u8 = lambda a: np.clip(a, 0, 255).round().astype(np.uint8)
    real = u8(128 + base + 40 * style * smooth() + rng.normal(0, noise, base.shape))
    synth = u8(140 + 0.7 * base + 40 * style * smooth() + rng.normal(0, noise, base.shape))
    return real, synth, [f"p{i}" for i in range(n)]

def test_nlda_identical_is_perfect_and_strangers_are_chance():
    real, synth, ids = toy()
    assert ev.nlda_recognition(real, real, ids, n_splits=5)["curve"].min() == 1.0
    # the test identities are few, so one run's rate is noisy: average galleries of four sets of strangers
    runs = [ev.nlda_recognition(real, toy(seed=s)[1], ids, n_splits=10, seed=s) for s in (7, 8, 9, 10)]
    assert np.mean([r["curves"].mean() for r in runs]) == pytest.approx(runs[0]["chance"], abs=0.015)
    good = ev.nlda_recognition(real, synth, ids, n_splits=5)
    assert good["rate"] > 0.3 and good["curve"].shape == (good["n_train"] - 1,)
    assert good["dims"] == int(np.argmax(good["curve"])) + 1

def test_nlda_defaults_and_errors():
    assert ev.nlda_defaults(338) == (150, 300) and ev.nlda_defaults(944) == (300, 600)
    assert ev.nlda_defaults(60) == (26, 52) and ev.nlda_defaults(4) == (2, 4)
    with pytest.raises(UserError, match="at least 4"): ev.nlda_defaults(3)
    real, synth, ids = toy(n=12)
    with pytest.raises(UserError, match="null space"): ev.nlda_recognition(real, synth, ids, n_train=5, pca_dims=4)
    with pytest.raises(UserError, match="leave at least 2"): ev.nlda_recognition(real, synth, ids, n_train=11)
    with pytest.raises(UserError, match="must match"): ev.nlda_recognition(real, synth[:5], ids)

def _nlda_pixel_space(real, synth, ids, train_ids, pca_dims):
    "The textbook version, in pixel space with an SVD: the Gram-matrix version must give the same rates."
    ids = np.asarray(ids); tr = np.isin(ids, train_ids)
    X = np.concatenate([real[tr], synth[tr]]).reshape(2 * tr.sum(), -1).astype(np.float64)
    lab = np.concatenate([ids[tr]] * 2)
    mu = X.mean(0); _, s, vt = np.linalg.svd(X - mu, full_matrices=False)
    p = min(pca_dims, int((s ** 2 > 1e-9 * s[0] ** 2).sum())); P = vt[:p].T
    Y = (X - mu) @ P
    cls, inv = np.unique(lab, return_inverse=True)
    M = np.stack([Y[inv == c].mean(0) for c in range(len(cls))])
    Sw = (Y - M[inv]).T @ (Y - M[inv])
    w, v = np.linalg.eigh(Sw); N0 = v[:, w <= 1e-9 * s[0] ** 2]
    Mb = (M - Y.mean(0)) @ N0; b, vb = np.linalg.eigh(Mb.T @ Mb * 2)
    W = P @ N0 @ vb[:, ::-1][:, :len(cls) - 1]
    q = (real[~tr].reshape((~tr).sum(), -1) - mu) @ W; g = (synth[~tr].reshape((~tr).sum(), -1) - mu) @ W
    return ev.rank1_curve(q, g, ids[~tr], ids[~tr])

def test_gram_trick_equals_pixel_space_nlda():
    real, synth, ids = toy(n=30)
    rng = np.random.default_rng(0)
    train_ids = rng.choice(np.unique(ids), 13, replace=False)
    res = ev.nlda_recognition(real, synth, ids, n_train=13, pca_dims=26, n_splits=1, seed=0)
    ref = _nlda_pixel_space(real, synth, ids, train_ids, 26)
    assert np.allclose(res["curves"][0], ref[: res["curves"].shape[1]])

# ---------------------------------------------------------------- evaluate, plots, cost, optional metrics
Pair = namedtuple("Pair", "photo sketch identity name")
class Pairs:
    def __init__(self, n=3): self.n = n
    def __len__(self): return self.n
    def get(self, i):
        p = skimage.data.astronaut()[10 + 8 * i:260 + 8 * i, 130 + 5 * i:330 + 5 * i]
        return Pair(Image.fromarray(p), Image.fromarray(ev.to_gray_uint8(p)), f"id{i}", f"sub/face{i}")

def _gray_net():
    g = nn.Conv2d(3, 1, 1, bias=False)
    g.weight.data[:] = torch.tensor(ev.RGB2GRAY, dtype=torch.float32).view(1, 3, 1, 1) / ev.RGB2GRAY.sum()
    return g

def test_evaluate_writes_png_and_crops_exactly(tmp_path):
    G, F = _gray_net(), nn.Conv2d(1, 3, 1, bias=False)
    F.weight.data[:] = 1.0
    G.train()
    df = ev.evaluate(G, F, Pairs(), out_dir=tmp_path, device="cpu")
    assert G.training                                        # mode restored
    assert list(df.columns) == ["identity", "p2s_fsim", "p2s_ssim", "s2p_fsim", "s2p_ssim", "s2p_fsimc"]
    assert df.loc["mean", "p2s_fsim"] > 0.999 and df.loc["mean", "s2p_ssim"] > 0.999
    pngs = sorted(p.name for p in (tmp_path / "sketches").iterdir())
    assert pngs == ["sub_face0.png", "sub_face1.png", "sub_face2.png"]
    img = Image.open(tmp_path / "sketches" / "sub_face0.png"); assert (img.format, img.size) == ("PNG", (200, 250))
    assert (tmp_path / "metrics.csv").read_text().startswith("name,identity")

def test_evaluate_small_size_and_no_F():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Tanh(), nn.Conv2d(2, 1, 3, padding=1), nn.Tanh())
    df, imgs = ev.evaluate(G, None, Pairs(2), device="cpu", size=64, return_images=True)
    assert list(df.columns) == ["identity", "p2s_fsim", "p2s_ssim"]
    assert imgs["fake_sketches"][0].shape == (250, 200)
    with pytest.raises(UserError, match="empty"): ev.evaluate(G, None, Pairs(0), device="cpu")

def test_plots_return_figures():
    import matplotlib; matplotlib.use("Agg")
    import pandas as pd
    real, synth, ids = toy(n=12)
    res = ev.nlda_recognition(real, synth, ids, n_splits=3)
    assert len(ev.plot_nlda_curve(res).axes) == 1
    table = pd.DataFrame({"p2s_fsim": [0.7, 0.72], "p2s_ssim": [0.5, 0.52]}, index=pd.Index(["pixel", "kt"], name="preset"))
    assert len(ev.plot_metric_bars(table).axes[0].containers) == 2
    df = ev.score_pairs([CAM, ev._box3(CAM), CAM[::-1]], [CAM] * 3)
    fig = ev.show_best_worst(df, {"pred": [CAM, ev._box3(CAM), CAM[::-1]]}, k=1)
    assert len(fig.axes) == 2

def test_cost_table_any_module():
    c = ev.cost_table({"conv": nn.Conv2d(1, 8, 3, padding=1)}, size=64, repeats=1)
    assert c.loc["conv", "params (M)"] * 1e6 == pytest.approx(80) and c.loc["conv", "GMACs"] * 1e9 == pytest.approx(294_912)

def test_optional_metrics_say_where_weights_go(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError, match="lpips_weights.pt"): ev.lpips_score([AST], [AST])
    with pytest.raises(UserError, match="feature_extractor"): ev.fid_score([AST], [AST])
    feats = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())   # 4 features, 16 images
    crops = [AST[i:i + 32, j:j + 32] for i in range(0, 160, 40) for j in range(0, 160, 40)]
    assert ev.fid_score(crops, crops, feature_extractor=feats) == pytest.approx(0.0, abs=1e-3)

# ---------------------------------------------------------------- ktsketch eval
def _folders(tmp_path, n=3, padded=False, ext=".png"):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(parents=True, exist_ok=True); gt.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        truth = ev.to_gray_uint8(Pairs(n).get(i).photo)
        Image.fromarray(truth).save(gt / f"face{i}.png")
        guess = ev._box3(truth)
        if padded: guess = tensor_to_uint8(pad_to_square(torch.from_numpy(guess).float()[None] / 127.5 - 1))
        Image.fromarray(guess).save(pred / f"face{i}{ext}")
    return pred, gt

def test_eval_cli_json_then_padded_table(tmp_path):
    pred, gt = _folders(tmp_path / "a")
    r = run_cli("eval", "--pred", pred, "--gt", gt, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n"] == 3 and {"fsim", "ssim", "per_image"} <= set(out)
    assert [p["name"] for p in out["per_image"]] == ["face0", "face1", "face2"]
    assert set(out["per_image"][0]) >= {"name", "fsim", "ssim"}
    truths = [ev.to_gray_uint8(Pairs(3).get(i).photo) for i in range(3)]
    assert out["fsim"] == pytest.approx(float(np.mean(ev.fsim_gray([ev._box3(t) for t in truths], truths))), abs=1e-6)   # float32, thread count may differ
    pred2, gt2 = _folders(tmp_path / "b", padded=True)          # the same predictions saved as padded 256x256
    r2 = run_cli("eval", "--pred", pred2, "--gt", gt2)
    assert r2.returncode == 0, r2.stderr
    mean_row = [l for l in r2.stdout.splitlines() if l.startswith("mean")][0].split()
    assert r2.stdout.split()[:2] == ["fsim", "ssim"] and float(mean_row[1]) == pytest.approx(out["fsim"], abs=6e-5)

def test_eval_cli_photo_with_nlda(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(); gt.mkdir()
    real, synth, ids = toy(n=8, size=(40, 32))
    for r, s, i in zip(real, synth, ids):
        Image.fromarray(np.repeat(r[..., None], 3, -1)).save(gt / f"{i}.png")
        Image.fromarray(np.repeat(s[..., None], 3, -1)).save(pred / f"{i}.bmp")
    res = run_cli("eval", "--pred", pred, "--gt", gt, "--kind", "photo", "--nlda", "--json")
    assert res.returncode == 0, res.stderr
    js = json.loads(res.stdout)
    assert {"fsim", "ssim", "fsimc"} <= set(js) and {"fsimc"} <= set(js["per_image"][0])
    assert 0 <= js["nlda"]["rate"] <= 1 and js["nlda"]["n_train"] == 4 and len(js["nlda"]["curve"]) == 3

def _bad_cases(tmp_path):
    ok_pred, ok_gt = _folders(tmp_path / "ok")
    empty = tmp_path / "empty"; empty.mkdir()
    (empty / "notes.txt").write_text("no images")
    miss_pred, miss_gt = _folders(tmp_path / "miss"); (miss_pred / "face1.png").unlink()
    extra_pred, extra_gt = _folders(tmp_path / "extra"); Image.fromarray(CAM).save(extra_pred / "stranger.png")
    size_pred, size_gt = _folders(tmp_path / "size"); Image.fromarray(CAM[:240]).save(size_pred / "face0.png")
    bad_pred, bad_gt = _folders(tmp_path / "broken"); (bad_pred / "face2.png").write_bytes(b"not a png")
    dup_pred, dup_gt = _folders(tmp_path / "dup"); Image.fromarray(CAM).save(dup_pred / "face0.jpg")
    few_pred, few_gt = _folders(tmp_path / "few", n=3)
    a_file = tmp_path / "file.png"; Image.fromarray(CAM).save(a_file)
    return [
        (["--gt", ok_gt], "--pred is required"),
        (["--pred", ok_pred], "--gt is required"),
        (["--pred", tmp_path / "nowhere", "--gt", ok_gt], "no such folder"),
        (["--pred", a_file, "--gt", ok_gt], "not a folder"),
        (["--pred", empty, "--gt", ok_gt], "no images"),
        (["--pred", ok_pred, "--gt", empty], "no images"),
        (["--pred", miss_pred, "--gt", miss_gt], "without prediction (face1)"),
        (["--pred", extra_pred, "--gt", extra_gt], "without ground truth (stranger)"),
        (["--pred", size_pred, "--gt", size_gt], "240x200 does not match its ground truth 250x200"),
        (["--pred", bad_pred, "--gt", bad_gt], "not a readable image"),
        (["--pred", dup_pred, "--gt", dup_gt], "share the name 'face0'"),
        (["--pred", ok_pred, "--gt", ok_gt, "--kind", "drawing"], "expected 'sketch' or 'photo'"),
        (["--pred", few_pred, "--gt", few_gt, "--nlda"], "at least 4"),
    ]

def test_eval_cli_every_bad_input_is_one_line_exit_2(tmp_path, capsys):
    "In-process through the dispatcher (one subprocess below proves the console script says the same)."
    from ktsketch.cli import main
    cases = _bad_cases(tmp_path)
    for args, needle in cases:
        status = main(["eval", *map(str, args)])
        err = capsys.readouterr().err
        assert status == 2, (args, err)
        assert needle in err, (needle, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    args, needle = cases[6]
    r = run_cli("eval", *args)
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
