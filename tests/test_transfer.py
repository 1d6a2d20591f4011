"""Tests of ktsketch.transfer: the losses, gradients, every preset, checkpoints, exact resume, NaN and stop."""
from __future__ import annotations
import math
import pytest
import torch
from ktsketch.core import UserError
from ktsketch.teachers import Teacher
from ktsketch.transfer import (PRESETS, TrainConfig, Trainer, NonFiniteLossError, Callback, pixel_loss, feature_loss,
                               mutual_loss, gan_loss, translate, load_checkpoint, load_generators)

TINY = dict(size=32, widths=(4, 8, 8, 8), n_res=1, ngf=8, ndf=8, batch_size=2, n_augs=2, progress=False,
            sample_every=0, ckpt_every=0, mutual_ramp=2)

@pytest.fixture(scope="module", autouse=True)
def _threads():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture(scope="module")
def pairs():
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, 3, 32, 32, generator=g) * 2 - 1, torch.rand(6, 1, 32, 32, generator=g) * 2 - 1

@pytest.fixture(scope="module")
def teachers():
    torch.manual_seed(0)
    return (Teacher(3, 3, (4, 8, 8, 8), n_convs=(1, 1, 1, 1)), Teacher(1, 1, (4, 8, 8, 8), n_convs=(1, 1, 1, 1)))

def tiny(preset, **kw): return TrainConfig.from_preset(preset, **{**TINY, **kw})

# ---- losses ----
def test_losses_zero_for_identical_and_positive_otherwise():
    x = torch.randn(2, 3, 8, 8)
    feats = [torch.randn(2, 4 * 2**l, 8 // 2**l, 8 // 2**l) for l in range(4)]
    other = [f + 0.1 * torch.randn_like(f) for f in feats]
    assert pixel_loss(x, x).item() == 0 and pixel_loss(x, x + 0.1).item() > 0
    assert feature_loss(feats, feats).item() == 0 and feature_loss(other, feats).item() > 0
    assert mutual_loss(feats, feats).item() == 0 and mutual_loss(other, feats).item() > 0
    assert feature_loss(other, feats, levels=[3]).item() > 0
    s = torch.rand(2, 1, 4, 4)
    assert gan_loss(torch.ones_like(s), True).item() == 0 and gan_loss(torch.zeros_like(s), False).item() == 0
    assert gan_loss(s, True).item() > 0 and gan_loss(s, False).item() > 0
    # the normalisation: a zero student scores 1; the teacher's scale does not matter
    assert abs(feature_loss([torch.zeros_like(f) for f in feats], feats).item() - 1) < 1e-5
    assert abs(feature_loss([10 * o for o in other], [10 * f for f in feats]).item() - feature_loss(other, feats).item()) < 1e-4

def test_mutual_loss_learns_from_detached_features():
    a = [torch.randn(2, 4, 4, 4, requires_grad=True)]
    b = [torch.randn(2, 4, 4, 4, requires_grad=True)]
    mutual_loss(a, b).backward()
    a2 = a[0].detach().clone().requires_grad_()
    (0.5 * ((a2 - b[0].detach()) ** 2).mean() / (b[0].detach() ** 2).mean()).backward()
    assert torch.allclose(a[0].grad, a2.grad, atol=1e-7)
    assert b[0].grad is not None and b[0].grad.abs().sum() > 0

# ---- gradients ----
@pytest.mark.parametrize("cache_mb", [2048, 0])   # precomputed teacher features, and teachers run in the loop
def test_gradients_reach_students_and_adapters_never_teachers(pairs, teachers, cache_mb):
    tr = Trainer(tiny("kt", teacher_cache_mb=cache_mb, mutual_ramp=1), pairs, teachers=teachers)
    assert (tr.teacher_cache is None) == (cache_mb == 0)
    photo, sketch = pairs[0][:2], pairs[1][:2]
    from ktsketch.transfer import teacher_features
    tfeats = teacher_features(*teachers, photo, sketch)
    terms, total, _, _ = tr.compute_losses(photo, sketch, tfeats, step=0)
    total.backward()
    for net in (tr.G, tr.F, tr.adapters):
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    for t in teachers:
        assert all(not p.requires_grad and p.grad is None for p in t.parameters()) and not t.training
    before = [p.clone() for t in teachers for p in t.parameters()]
    tr.fit(2)
    assert all(torch.equal(a, b) for a, b in zip(before, [p for t in teachers for p in t.parameters()]))

def test_mutual_only_anchors_adapters_with_detached_fit(pairs, teachers):
    tr = Trainer(tiny("mutual", mutual_ramp=1), pairs, teachers=teachers)
    photo, sketch = pairs[0][:2], pairs[1][:2]
    tfeats = tr._teacher_batch(torch.tensor([0, 2]), *tr._batch_at(torch.tensor([0, 2])))
    terms, _, _, _ = tr.compute_losses(photo, sketch, tfeats, step=0)
    assert "teacher_G" not in terms and "fit" in terms
    terms["fit"].backward()   # the fit term trains the adapters only
    assert all(p.grad is None for p in tr.G.parameters())
    assert any(p.grad is not None for p in tr.adapters.parameters())

# ---- every preset ----
@pytest.mark.parametrize("preset", list(PRESETS))
def test_two_steps_of_every_preset(pairs, teachers, preset):
    tr = Trainer(tiny(preset, steps=2), pairs, teachers=teachers).fit()
    assert [h["step"] for h in tr.history] == [1, 2]
    assert all(math.isfinite(v) for h in tr.history for v in h.values())
    want = {"pixel": [], "teacher": ["teacher_G"], "mutual": ["mutual", "fit"], "kt": ["teacher_G", "mutual"],
            "kt_gan": ["adv_G", "D_S"], "pix2pix": ["adv_G", "D_P"]}[preset]
    assert all(k in tr.history[-1] for k in ["pix_G", "pix_F", "loss", *want])
    out = translate(tr.G, pairs[0][:3], batch_size=2, device="cpu")
    assert out.shape == (3, 1, 32, 32) and out.abs().max() <= 1

def test_teachers_required(pairs):
    with pytest.raises(UserError, match="teachers"): Trainer(tiny("kt"), pairs)
    Trainer(tiny("pixel", steps=1), pairs).fit()   # the pixel preset needs none

# ---- checkpoints and exact resume ----
def test_checkpoint_round_trip(pairs, teachers, tmp_path):
    tr = Trainer(tiny("kt_gan", steps=2, sample_every=1), pairs, teachers=teachers, out_dir=tmp_path).fit()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 2 and state["history"] == tr.history and state["config"]["preset"] == "kt_gan"
    assert (tmp_path / "history.csv").exists() and (tmp_path / "config.json").exists()
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000001.png", "step_000002.png"]
    G, F = load_generators(tmp_path / "checkpoint.pt", device="cpu")
    x = pairs[0][:2]
    assert torch.equal(translate(G, x, device="cpu"), translate(tr.G, x, device="cpu"))
    with pytest.raises(UserError, match="no such checkpoint"): load_checkpoint(tmp_path / "missing.pt")

@pytest.mark.parametrize("preset", ["kt", "kt_gan"])
def test_resume_continues_exactly(pairs, teachers, tmp_path, preset):
    cfg = tiny(preset, steps=6, mutual_ramp=4)
    straight = Trainer(cfg, pairs, teachers=teachers).fit()
    first = Trainer(cfg, pairs, teachers=teachers).fit(3)
    first.save_checkpoint(tmp_path / "half.pt")
    torch.manual_seed(123)   # disturb the global random state: resume must restore it
    resumed = Trainer.resume(tmp_path / "half.pt", pairs, teachers=teachers).fit()
    assert len(resumed.history) == 6
    keys = list(straight.history[0])
    assert torch.equal(torch.tensor([[h[k] for k in keys] for h in straight.history]),
                       torch.tensor([[h[k] for k in keys] for h in resumed.history]))
    for a, b in zip(straight.G.state_dict().values(), resumed.G.state_dict().values()): assert torch.equal(a, b)

# ---- NaN and stop ----
class Poison(Callback):
    "Put a NaN into G's first weight at the end of step `at`."
    def __init__(self, at): self.at, self.ended = at, False
    def on_step_end(self, trainer, step, logs):
        if step == self.at:
            with torch.no_grad(): next(trainer.G.parameters()).view(-1)[0] = float("nan")
    def on_train_end(self, trainer): self.ended = True

def test_nan_stops_and_keeps_last_good_checkpoint(pairs, tmp_path):
    cb = Poison(at=3)
    tr = Trainer(tiny("pixel", steps=8, ckpt_every=2), pairs, callbacks=[cb], out_dir=tmp_path)
    with pytest.raises(NonFiniteLossError, match="NaN") as err:
        tr.fit()
    assert err.value.step == 4 and cb.ended
    assert "checkpoint.pt" in str(err.value)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["models"]["G"].values())
    # a NaN weight is never written to disk either
    with pytest.raises(NonFiniteLossError): tr.save_checkpoint()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2

class StopAt(Callback):
    def __init__(self, at): self.at = at
    def on_step_end(self, trainer, step, logs):
        if step == self.at: trainer.stop()

def test_stop_hook_stops_after_the_step_and_keeps_a_checkpoint(pairs, tmp_path):
    tr = Trainer(tiny("pixel", steps=10), pairs, callbacks=[StopAt(3)], out_dir=tmp_path).fit()
    assert tr.stopped and tr.step == 3 and len(tr.history) == 3
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3
    tr.callbacks = []
    tr.fit()   # fit again continues to config.steps
    assert tr.step == 10 and not tr.stopped

def test_pool_extension_trains_encoders_on_unpaired_images(pairs, teachers, tmp_path):
    pools = (torch.rand(5, 3, 32, 32) * 2 - 1, [dict(image=torch.rand(1, 32, 32) * 2 - 1) for _ in range(5)])
    with pytest.raises(UserError, match="pools"): Trainer(tiny("pixel", lambda_pool=1.0), pairs, teachers=teachers)
    cfg = tiny("pixel", lambda_pool=1.0, steps=4)
    straight = Trainer(cfg, pairs, teachers=teachers, pools=pools).fit()
    assert {"pool_G", "pool_F"} <= set(straight.history[-1]) and set(straight.adapters) == {"G_enc", "F_enc"}
    half = Trainer(cfg, pairs, teachers=teachers, pools=pools, out_dir=tmp_path).fit(2)
    resumed = Trainer.resume(tmp_path / "checkpoint.pt", pairs, teachers=teachers, pools=pools).fit()
    assert resumed.history == straight.history

# ---- the parts of the trainer ----
def test_one_optimiser_holds_the_student_pair_in_checkpoint_order(pairs, teachers):
    "G, F and the adapters are one module (what DDP would wrap); Adam holds their parameters in the order checkpoints use."
    tr = Trainer(tiny("kt_gan"), pairs, teachers=teachers)
    assert tr.students.G is tr.G and tr.students.F is tr.F and tr.students.adapters is tr.adapters
    held = [p for g in tr.opt.param_groups for p in g["params"]]
    expected = [*tr.G.parameters(), *tr.F.parameters(), *tr.adapters.parameters()]
    assert len(held) == len(expected) and all(a is b for a, b in zip(held, expected))
    assert not any(p in set(held) for p in [*tr.D_S.parameters(), *tr.D_P.parameters()])

def test_build_networks_is_seeded_by_the_config(teachers):
    from ktsketch.transfer import build_networks
    cfg = tiny("kt")
    a, _, _ = build_networks(cfg, *teachers, device="cpu")
    torch.manual_seed(123)   # whatever happened before, the config's seed decides
    b, _, _ = build_networks(cfg, *teachers, device="cpu")
    c, _, _ = build_networks(tiny("kt", seed=1), *teachers, device="cpu")
    same = lambda x, y: all(torch.equal(u, v) for u, v in zip(x.state_dict().values(), y.state_dict().values()))
    assert same(a, b) and not same(a, c)
