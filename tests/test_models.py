"""The models of notebooks 03 and 04: shapes at every level, frozen teachers, files, VGG weights, `ktsketch bench`."""
from __future__ import annotations
import json
from pathlib import Path
import pytest
import torch
import torch.nn as nn
from conftest import run_cli
from ktsketch.core import UserError
from ktsketch.teachers import (Teacher, train_teacher, pretrain_teachers, freeze, save_teacher, load_teacher,
                               load_vgg19_encoder, default_vgg19_path, vgg19_conv_indices, FULL_WIDTHS, SMALL_WIDTHS,
                               VGG19_FILE, VGG19_FILES)
from ktsketch.students import Student, Adapter, UNetGenerator, PatchDiscriminator, model_cost, count_macs, STUDENT_WIDTHS

TINY = (4, 8, 8, 16)

@pytest.fixture(autouse=True)
def one_thread():
    "2 torch threads on 2 shared cores run up to 20x slower than 1."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

class Pool(torch.utils.data.Dataset):
    "A stand-in unpaired pool of dict(image=...) items."
    def __init__(self, n=8, channels=3, size=16):
        self.x = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return dict(image=self.x[i], name=str(i))

def _check_levels(model, x, widths):
    y, enc, dec = model.features(x)
    B, _, H, W = x.shape
    assert y.shape == (B, model.out_ch, H, W)
    assert len(enc) == len(dec) == 4
    assert model.enc_channels == model.dec_channels == list(widths)
    for l in range(4):
        assert enc[l].shape == (B, widths[l], H >> l, W >> l), (l, enc[l].shape)
        assert dec[l].shape == enc[l].shape, (l, dec[l].shape)
    assert torch.equal(model(x), y)

@pytest.mark.parametrize("in_ch,out_ch", [(3, 3), (1, 1), (3, 1)])
def test_teacher_levels(in_ch, out_ch):
    with torch.no_grad(): _check_levels(Teacher(in_ch, out_ch, SMALL_WIDTHS).eval(), torch.randn(2, in_ch, 32, 32), SMALL_WIDTHS)

def test_full_teacher_levels_and_vgg_layout():
    t = Teacher(3, 3)
    convs = [c.conv for blk in t.encoder.blocks for c in blk]
    assert [c.out_channels for c in convs] == [64] * 2 + [128] * 2 + [256] * 4 + [512] * 4
    with torch.no_grad(): _check_levels(t.eval(), torch.randn(1, 3, 32, 32), FULL_WIDTHS)

def test_three_channel_teacher_reads_sketches():
    t = Teacher(3, 3, TINY).eval()
    s = torch.rand(1, 1, 16, 16)
    with torch.no_grad(): torch.testing.assert_close(t(s), t(s.expand(-1, 3, -1, -1)))
    with pytest.raises(ValueError): Teacher(1, 1, TINY)(torch.rand(1, 3, 16, 16))

@pytest.mark.parametrize("in_ch,out_ch", [(3, 1), (1, 3)])
def test_student_levels(in_ch, out_ch):
    _check_levels(Student(in_ch, out_ch).eval(), torch.randn(2, in_ch, 32, 32), STUDENT_WIDTHS)
    _check_levels(Student(in_ch, out_ch, SMALL_WIDTHS).eval(), torch.randn(1, in_ch, 16, 16), SMALL_WIDTHS)
    _check_levels(Student(in_ch, out_ch, TINY, n_res=1, skips=False).eval(), torch.randn(1, in_ch, 16, 16), TINY)

def test_adapters_map_student_to_teacher_shapes():
    G, T_P, T_S = Student(3, 1, TINY), Teacher(3, 3, SMALL_WIDTHS), Teacher(1, 1, SMALL_WIDTHS)
    photo = torch.randn(2, 3, 32, 32)
    _, g_enc, g_dec = G.features(photo)
    with torch.no_grad():
        _, tp_enc, _ = T_P.features(photo)
        _, _, ts_dec = T_S.features(torch.randn(2, 1, 32, 32))
    assert [a.shape for a in Adapter(G.enc_channels, T_P.enc_channels)(g_enc)] == [t.shape for t in tp_enc]
    assert [a.shape for a in Adapter(G.dec_channels, T_S.dec_channels)(g_dec)] == [t.shape for t in ts_dec]
    with pytest.raises(UserError): Adapter([1, 2], [1, 2, 3])

def test_pix2pix_shapes_and_sizes():
    netG, netD = UNetGenerator(3, 1).eval(), PatchDiscriminator(4).eval()
    assert round(sum(p.numel() for p in UNetGenerator(3, 3).parameters()) / 1e6, 3) == 54.414
    assert round(sum(p.numel() for p in PatchDiscriminator(6).parameters()) / 1e6, 3) == 2.769
    with torch.no_grad():
        x = torch.randn(1, 3, 256, 256)
        y = netG(x)
        assert y.shape == (1, 1, 256, 256) and y.abs().max() <= 1
        assert netD(torch.cat([x, y], 1)).shape == (1, 1, 30, 30)
        assert UNetGenerator(1, 3, ngf=8, n_downs=5)(torch.randn(1, 1, 32, 32)).shape == (1, 3, 32, 32)

def test_gradients_reach_student_and_adapter_never_frozen_teacher():
    T_S = freeze(Teacher(1, 1, TINY))
    G = Student(3, 1, TINY)
    adapter = Adapter(G.dec_channels, T_S.dec_channels)
    photo, sketch = torch.randn(2, 3, 16, 16), torch.randn(2, 1, 16, 16)
    y, _, g_dec = G.features(photo)
    _, _, t_dec = T_S.features(sketch)
    loss = (y - sketch).abs().mean() + sum(((a - t) ** 2).mean() for a, t in zip(adapter(g_dec), t_dec))
    # a loss through the frozen teacher's *input* too: gradients pass through it to G, not into it
    loss = loss + T_S.features(y)[1][3].pow(2).mean()
    loss.backward()
    assert all(p.grad is None for p in T_S.parameters())
    assert all(p.grad is not None for p in G.parameters())
    assert all(p.grad is not None for p in adapter.parameters())
    assert not T_S.training

def test_train_teacher_history_and_frozen_encoder():
    t = Teacher(3, 3, TINY)
    before = [p.clone() for p in t.encoder.parameters()]
    freeze(t.encoder)
    hist = train_teacher(t, Pool(), steps=3, batch_size=4, progress=False)
    assert [h["step"] for h in hist] == [1, 2, 3]
    assert set(hist[0]) >= {"loss", "pixel", "feature"}
    assert all(torch.equal(a, b) for a, b in zip(before, t.encoder.parameters()))
    with pytest.raises(UserError): train_teacher(freeze(Teacher(3, 3, TINY)), Pool(), steps=1, progress=False)

def test_train_teacher_is_repeatable():
    def run():
        torch.manual_seed(0)
        return [h["loss"] for h in train_teacher(Teacher(1, 1, TINY), Pool(channels=1), steps=3, batch_size=2, progress=False, seed=5)]
    assert run() == run()

def test_shared_teacher_is_one_network():
    P, S = pretrain_teachers(Pool(4, 3), Pool(4, 1), widths=TINY, steps=1, batch_size=4, progress=False, shared_teacher=True)
    assert P is S and P.in_ch == 3 and not P.training
    P, S = pretrain_teachers(Pool(4, 3), Pool(4, 1), widths=TINY, steps=1, batch_size=4, progress=False)
    assert P is not S and (P.in_ch, S.in_ch, S.out_ch) == (3, 1, 1)

def test_save_load_round_trip(tmp_path):
    t = Teacher(1, 1, TINY)
    train_teacher(t, Pool(channels=1), steps=1, batch_size=2, progress=False)
    path = save_teacher(t, tmp_path / "sub" / "teacher.pt", note="hi")
    assert sorted(p.name for p in path.parent.iterdir()) == ["teacher.pt"]     # no temp file left behind
    again = load_teacher(path)
    assert again.config == t.config and again.extra == {"note": "hi"}
    assert not any(p.requires_grad for p in again.parameters())
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad(): torch.testing.assert_close(again(x), t.eval()(x))
    with pytest.raises(UserError, match="no such teacher file"): load_teacher(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(UserError): load_teacher(tmp_path / "junk.pt")

@pytest.mark.parametrize("norm", ["none", "batch"])
def test_vgg19_mapping_with_fake_local_file(tmp_path, norm):
    torchvision = pytest.importorskip("torchvision")
    bn = norm == "batch"
    vgg = (torchvision.models.vgg19_bn if bn else torchvision.models.vgg19)(weights=None).eval()   # random, no download
    for m in vgg.modules():
        if isinstance(m, nn.BatchNorm2d): m.running_mean.uniform_(-0.1, 0.1); m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / VGG19_FILES[norm]
    torch.save(vgg.state_dict(), path)
    t = load_vgg19_encoder(Teacher(3, 1, norm=norm), path)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1); std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    ends = [vgg19_conv_indices(bn)[k] + (3 if bn else 2) for k in (0, 2, 4, 8)]       # relu1_1 .. relu4_1
    with torch.no_grad():
        ours = t.encode(x)
        theirs = [vgg.features[:e]((((x + 1) / 2) - mean) / std) for e in ends]
    for a, b in zip(ours, theirs): torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert not any(p.requires_grad for p in t.encoder.parameters())
    before = {k: v.clone() for k, v in t.encoder.state_dict().items()}
    hist = train_teacher(t, Pool(4, 1, 16), steps=1, batch_size=2, progress=False)    # only the decoder trains
    assert len(hist) == 1
    assert all(torch.equal(v, t.encoder.state_dict()[k]) for k, v in before.items())   # batch-norm statistics too
    # the normalisation and the flag survive a save/load round trip
    again = load_teacher(save_teacher(t, tmp_path / "vgg_teacher.pt"))
    assert again.config.get("vgg19") is True
    torch.testing.assert_close(again.encoder.in_std, t.encoder.in_std)

def test_vgg19_missing_file_names_the_path(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / VGG19_FILE
    with pytest.raises(UserError, match="nowhere"): load_vgg19_encoder(Teacher(3, 3), missing)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(UserError) as e: load_vgg19_encoder(Teacher(3, 3, norm="none"))
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints" / VGG19_FILE) in str(e.value)
    assert default_vgg19_path() == tmp_path / "torch_home" / "hub" / "checkpoints" / VGG19_FILE
    with pytest.raises(UserError) as e: load_vgg19_encoder(Teacher(3, 3, norm="batch"))
    assert "vgg19_bn-c79401a0.pth" in str(e.value)
    with pytest.raises(UserError, match="widths"): load_vgg19_encoder(Teacher(3, 3, SMALL_WIDTHS), missing)
    with pytest.raises(UserError, match=r"Teacher\(3, 1\)"): load_vgg19_encoder(Teacher(1, 1), missing)

def test_model_cost_counts_macs():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False); conv.in_ch = 3
    c = model_cost(conv, size=16, device="cpu", repeats=2)
    assert c["macs"] == 16 * 16 * 3 * 8 * 9 and c["params"] == 3 * 8 * 9 and c["img_per_s"] > 0
    assert count_macs(Teacher(3, 3), 256) >= 10 * count_macs(Student(3, 1), 256)
    assert count_macs(UNetGenerator(3, 1), 256) >= 5 * count_macs(Student(3, 1), 256)

def test_bench_command_json():
    r = run_cli("bench", "--size", "64", "--device", "cpu", "--threads", "1", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["size"] == 64 and out["device"] == "cpu"
    for name in ("teacher", "student", "pix2pix"):
        assert set(out["models"][name]) >= {"params", "macs", "img_per_s"}
        assert out["models"][name]["macs"] > 0 and out["models"][name]["img_per_s"] > 0
    assert out["models"]["teacher"]["macs"] >= 10 * out["models"]["student"]["macs"]

def test_bench_command_rejects_bad_size():
    r = run_cli("bench", "--size", "100")
    assert r.returncode == 2 and "multiple of 8" in r.stderr
