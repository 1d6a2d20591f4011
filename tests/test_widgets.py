"""ktsketch.widgets from Python: construct each app, set values and click buttons as a student would, and check
that pictures, tables and states follow (no browser needed; tests/test_browser.py drives a real JupyterLab)."""
from __future__ import annotations
import base64, threading
import pytest
import torch
import ipywidgets as W
from matplotlib.figure import Figure
from ktsketch.core import UserError
from ktsketch.transfer import Callback, Trainer, TrainConfig
from ktsketch.widgets import (WidgetApp, TrainingDashboard, SampleExplorer, FeatureViewer, LossWeightLab, tiny_world,
                              figure_png, new_figure, image_widget, release_comm_route, loss_terms, run_generator,
                              PairList, STREAM_LABELS)

PNG = b"\x89PNG\r\n\x1a\n"
TINY = dict(size=32, widths=(4, 8, 8, 8), n_res=1, batch_size=2, n_augs=2, lr=2e-3, mutual_ramp=3, n_samples=2,
            ckpt_every=0, sample_every=0, progress=False, device="cpu")

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture(scope="module")
def world():
    return tiny_world(n_train=6, n_test=3, n_pool=24, teacher_steps=4)

@pytest.fixture(scope="module")
def trained(world):
    kt = Trainer(TrainConfig.from_preset("kt", steps=4, **TINY), world.train_tensors, teachers=world.teachers).fit()
    pixel = Trainer(TrainConfig.from_preset("pixel", steps=4, **TINY), world.train_tensors).fit()
    return kt, pixel

def test_figures_are_pngs_outside_pyplot():
    import matplotlib.pyplot as plt
    before = plt.get_fignums()
    fig = new_figure(2, 1)
    fig.subplots().plot([0, 1])
    assert figure_png(fig).startswith(PNG)
    assert plt.get_fignums() == before           # nothing left for a notebook to show twice
    img = image_widget()
    assert isinstance(img, W.Image) and img.layout.align_self == "flex-start"

def test_tiny_world(world):
    assert world.train_tensors[0].shape == (6, 3, 32, 32) and world.train_tensors[1].shape == (6, 1, 32, 32)
    assert world.test_tensors[0].shape == (3, 3, 32, 32) and len(world.test) == 3
    assert isinstance(world.train, PairList) and world.train.get(0).photo.size == (200, 250)
    assert tiny_world(n_train=6, n_test=3, n_pool=24, teacher_steps=4) is world       # cached
    assert all(not p.requires_grad for t in world.teachers for p in t.parameters())     # frozen
    train_ids = {world.train.get(i).identity for i in range(len(world.train))}
    assert not train_ids & {world.test.get(i).identity for i in range(len(world.test))}

class Toy(WidgetApp):
    def __init__(self):
        super().__init__()
        self.button = W.Button(description="go")
        self.button.on_click(self.guard(self.go))
        self.ui = W.VBox([self.button, self.error_area])
        self.fail = False
    def go(self, b=None):
        if self.fail: raise ValueError("boom")
    def figure(self):
        fig = new_figure(1, 1); fig.text(0.5, 0.5, "toy"); return fig

def test_guard_shows_and_reraises():
    toy = Toy()
    toy.button.click()
    assert toy.errors == [] and toy.error_area.layout.display == "none"
    toy.fail = True
    with pytest.raises(ValueError, match="boom"): toy.guard(toy.go)()
    assert len(toy.errors) == 1 and "ValueError: boom" in toy.error_area.value
    assert toy.error_area.layout.display is None and "ktsketch-error" in toy.error_area._dom_classes
    toy.button.click()                            # ipywidgets swallows a click handler's exception: the app keeps it
    assert len(toy.errors) == 2

def test_mimebundle_has_widget_and_png_fallback():
    bundle = Toy()._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "text/plain" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(PNG)
    assert isinstance(Toy().static(), Figure)

def test_release_comm_route():
    class FakeComm: pass
    comm = FakeComm(); comm._reply_subshell_id = None; comm._reply_subshell_lock = threading.Lock()
    class FakeWidget: pass
    w = FakeWidget(); w.comm = comm
    assert release_comm_route(w) is w and not hasattr(comm, "_reply_subshell_id")
    release_comm_route(w)                          # nothing to forget: no error
    release_comm_route(W.Button())                 # a real widget outside a kernel: no error

def test_loss_terms():
    h = [{"step": 1, "pix_G": 1.0, "w_mutual": 0.1, "loss": 2.0, "sec": 0.1, "mutual": 0.5}]
    assert loss_terms(h) == ["loss", "pix_G", "mutual"]

# ---- the training dashboard ----
class PressStop(Callback):
    def __init__(self, dash, at): self.dash, self.at = dash, at
    def on_step_end(self, trainer, step, logs):
        if step == self.at: self.dash.stop_button.click()

def test_dashboard_trains_and_updates(world):
    tr = Trainer(TrainConfig.from_preset("kt", steps=6, **{**TINY, "sample_every": 3}), world.train_tensors,
                 teachers=world.teachers)
    dash = TrainingDashboard(tr, refresh_s=0)
    assert dash in tr.callbacks and dash.state == "ready" and dash.stop_button.disabled
    first = dash.loss_image.value
    assert bytes(first).startswith(PNG) and bytes(dash.sample_image.value).startswith(PNG)
    dash.stop_button.click()                       # not training: nothing happens
    assert dash.state == "ready" and not tr._stop_requested
    dash.fit()
    assert (dash.state, tr.step, dash.progress.value, dash.progress.max) == ("finished", 6, 6, 6)
    assert dash.loss_image.value != first and dash.sample_step == 6 and dash.stop_button.disabled
    assert dash.status.value.startswith("finished: step 6 / 6") and dash.errors == []
    dash.fit(8)                                    # more steps: the progress bar follows the new total
    assert (tr.step, dash.progress.max, dash.state) == (8, 8, "finished")
    assert isinstance(dash.static(), Figure) and base64.b64decode(dash._repr_mimebundle_()["image/png"]).startswith(PNG)

def test_dashboard_stop_button_keeps_checkpoint(world, tmp_path):
    tr = Trainer(TrainConfig.from_preset("pixel", steps=50, **TINY), world.train_tensors, out_dir=tmp_path)
    dash = TrainingDashboard(tr, refresh_s=0)
    tr.callbacks.append(PressStop(dash, 3))
    dash.fit()
    assert (dash.state, tr.step, tr.stopped) == ("stopped", 3, True)
    assert (tmp_path / "checkpoint.pt").exists() and str(tmp_path / "checkpoint.pt") in dash.status.value
    assert dash.sample_step == 3                  # the final outputs are shown even without sample_every

def test_dashboard_background_and_failure(world):
    tr = Trainer(TrainConfig.from_preset("pixel", steps=5, **TINY), world.train_tensors)
    dash = TrainingDashboard(tr).fit(background=True)
    assert dash.thread is not None
    dash.wait(60)
    assert (dash.state, tr.step, dash.errors) == ("finished", 5, [])

    class Explode(Callback):
        def on_step_end(self, trainer, step, logs):
            if step == 2: raise RuntimeError("callback exploded")
    tr2 = Trainer(TrainConfig.from_preset("pixel", steps=5, **TINY), world.train_tensors, callbacks=[Explode()])
    bg = TrainingDashboard(tr2).fit(background=True)
    with pytest.raises(RuntimeError, match="exploded"): bg.wait(60)
    assert bg.state == "failed" and "exploded" in bg.error_area.value
    tr3 = Trainer(TrainConfig.from_preset("pixel", steps=5, **TINY), world.train_tensors, callbacks=[Explode()])
    fg = TrainingDashboard(tr3)
    with pytest.raises(RuntimeError, match="exploded"): fg.fit()
    assert fg.state == "failed" and tr3.step == 2

# ---- the sample explorer ----
def test_explorer(world, trained):
    kt, pixel = trained
    ex = SampleExplorer(world.test, {"pixel": (pixel.G, pixel.F), "kt": (kt.G, kt.F)}, teachers=world.teachers, size=32)
    first, table = ex.image.value, ex.table.value
    assert bytes(first).startswith(PNG) and "kt" in table and "sketch teacher" in table
    scores = ex.scores()
    assert list(scores.index) == ["sketch teacher", "pixel", "kt", "photo teacher"]
    assert list(scores.columns) == ["p2s FSIM", "p2s SSIM", "s2p FSIM", "s2p SSIM"]
    assert 0 < scores.loc["kt", "p2s FSIM"] <= 1 and 0 < scores.loc["kt", "s2p FSIM"] <= 1
    ex.face.value = 2
    assert ex.image.value != first and ex.table.value != table
    assert ex.panel(2)["name"] == world.test.get(2).name
    both = ex.image.value
    ex.direction.value = "s2p"
    assert ex.image.value != both
    p = ex.panel(2)
    assert p["p2s"][2][1].shape == (250, 200) and p["s2p"][2][1].shape == (250, 200, 3)   # back to the data's geometry
    assert ex.errors == [] and ex.png() == bytes(ex.image.value)

def test_explorer_without_teachers_and_bad_input(world, trained):
    kt, _ = trained
    ex = SampleExplorer(world.test, {"kt": (kt.G, kt.F)}, size=32, index=1)
    assert ex.face.value == 1 and list(ex.scores().index) == ["kt"]
    with pytest.raises(UserError, match="at least one variant"): SampleExplorer(world.test, {}, size=32)
    with pytest.raises(UserError, match="empty"): SampleExplorer(PairList([]), {"kt": (kt.G, kt.F)}, size=32)

def test_explorer_reports_a_failing_callback(world, trained):
    kt, _ = trained
    ex = SampleExplorer(world.test, {"kt": (kt.G, kt.F)}, size=32)
    ex.panel = lambda i: 1 / 0
    with pytest.raises(ZeroDivisionError): ex.face.value = 1
    assert len(ex.errors) == 1 and "ZeroDivisionError" in ex.error_area.value

def test_run_generator_restores_mode(trained):
    kt, _ = trained
    kt.G.train()
    y = run_generator(kt.G, torch.zeros(3, 32, 32))
    assert y.shape == (1, 250, 200) and kt.G.training and float(y.abs().max()) <= 1

# ---- the feature viewer ----
def test_feature_viewer(world, trained):
    kt, pixel = trained
    fv = FeatureViewer(kt, world.test_tensors)
    assert [k for _, k in fv.stream.options] == list(STREAM_LABELS)
    assert fv.channel.max == world.photo_teacher.enc_channels[0] - 1
    first = fv.image.value
    fv.stream.value = "F_dec"
    fv.level.value = 3
    assert fv.channel.max == world.photo_teacher.dec_channels[3] - 1
    fv.channel.value = fv.channel.max
    fv.face.value = 2
    assert fv.image.value != first and "<b>L3:" in fv.loss_text.value
    m = fv.maps(2, "F_dec")
    assert len(m["losses"]) == 4 and all(v >= 0 for v in m["losses"])
    assert m["teacher"][3].shape == m["student"][3].shape == (world.photo_teacher.dec_channels[3], 4, 4)
    fv.level.value = 0                             # fewer channels at level 0: the channel is clamped
    assert fv.channel.value <= fv.channel.max == world.photo_teacher.dec_channels[0] - 1
    assert fv.errors == []
    with pytest.raises(UserError, match="uses the teachers"): FeatureViewer(pixel)
    with pytest.raises(UserError, match="stream"): FeatureViewer(kt, stream="X_enc")

# ---- the loss-weight lab ----
def test_loss_weight_lab(world):
    lab = LossWeightLab(world, steps=3, widths=(4, 8, 8, 8))
    assert lab.results.empty and "no runs yet" in lab.table.value and bytes(lab.plot.value).startswith(PNG)
    assert list(lab.n_pairs.options) == [1, 2, 4, 6]
    empty_plot = lab.plot.value
    lab.train_button.click()
    assert len(lab.results) == 1 and lab.errors == [] and not lab.train_button.disabled
    assert lab.plot.value != empty_plot and lab.table.value.count("<tr") == 2
    lab.lambda_teacher.value, lab.lambda_mutual.value, lab.n_pairs.value = 0.0, 0.0, 2
    lab.train_button.click()
    r = lab.results
    assert list(r.index) == [1, 2] and list(r.lambda_teacher) == [1.0, 0.0] and list(r.pairs) == [6, 2]
    assert (r[["test_p2s_l1", "train_p2s_l1", "test_s2p_l1", "train_s2p_l1"]] > 0).all().all()
    row = lab.train(0.3, 0.01, 1)                  # the same from Python, without touching the table
    assert row["pairs"] == 1 and len(lab.results) == 2
    lab.clear_button.click()
    assert lab.results.empty and lab.errors == []
