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
                              PairList, STREAM_LABELS, error_html)

PNG = b"\x89PNG\r\n\x1a\n"
TINY = dict(size=64, widths=(4, 8, 8, 8), n_res=1, batch_size=2, n_augs=2, lr=2e-3, mutual_ramp=3, n_samples=2,
            ckpt_every=0, sample_every=0, progress=False, device="cpu")

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture(scope="module")
def world():
    return tiny_world(n_train=6, n_test=3)

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

def test_the_apps_teachers_come_from_one_function(monkeypatch):
    import ktsketch.widgets as wmod
    calls = []
    def fake(size, source, splits, *args):
        calls.append((size, source))
        return wmod.Teacher(3, 3, (4, 4, 4, 4)), wmod.Teacher(1, 1, (4, 4, 4, 4))
    monkeypatch.setattr(wmod, "app_teachers", fake)
    w = tiny_world(seed=7, n_train=2, n_test=2)
    assert calls == [(64, "shipped")] and w.photo_teacher.enc_channels[0] == 4
    wmod._WORLDS.pop(next(k for k in wmod._WORLDS if k[0] == 7))

def test_the_apps_use_the_shipped_teachers(world):
    from ktsketch.teachers import pretrained
    assert world.size == 64 and world.teacher_source == "shipped"
    for k, (teacher, domain) in enumerate(zip(world.teachers, ("photo", "sketch"))):
        shipped = pretrained(domain, 64)
        assert teacher.manifest == shipped.manifest and not teacher.training
        assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), shipped.state_dict().values()))
        x = world.test_tensors[k]
        with torch.no_grad(): l1 = float((teacher(x) - x).abs().mean())
        assert l1 < 1.5 * shipped.manifest["heldout"]["l1"]    # they know these unseen faces (600-step teachers: about 0.09)
    with pytest.raises(UserError, match="ships teachers for sizes 64, 128"): tiny_world(size=32, n_train=2, n_test=2)
    with pytest.raises(UserError, match="expected one of shipped, pretrain"): tiny_world(teachers="vgg", n_train=2, n_test=2)

def test_the_apps_can_pretrain_their_teachers_live():
    from ktsketch.widgets import app_teachers
    w = tiny_world(seed=3, size=32, n_train=2, n_test=2, teachers="pretrain", n_pool=8, teacher_steps=3, teacher_batch=4)
    assert w.teacher_source == "pretrain" and [len(t.history) for t in w.teachers] == [3, 3]
    assert w.train_tensors[0].shape == (2, 3, 32, 32) and all(not p.requires_grad for t in w.teachers for p in t.parameters())
    assert tiny_world(seed=3, size=32, n_train=2, n_test=2, teachers="pretrain", n_pool=8, teacher_steps=3, teacher_batch=4) is w
    with pytest.raises(UserError, match="give splits="): app_teachers(64, "pretrain")

def test_tiny_world(world):
    assert world.train_tensors[0].shape == (6, 3, 64, 64) and world.train_tensors[1].shape == (6, 1, 64, 64)
    assert world.test_tensors[0].shape == (3, 3, 64, 64) and len(world.test) == 3
    assert isinstance(world.train, PairList) and world.train.get(0).photo.size == (200, 250)
    assert tiny_world(n_train=6, n_test=3) is world                                 # cached
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
    toy.fail = False
    toy.button.click()                            # the next action that works hides the area; the history stays
    assert toy.error_area.value == "" and toy.error_area.layout.display == "none" and len(toy.errors) == 2

def test_user_errors_are_one_line_messages():
    msg = error_html(UserError("notes.txt: not an image"))
    assert "notes.txt: not an image" in msg and "Traceback" not in msg and "<details>" not in msg
    try: 1 / 0
    except ZeroDivisionError as e: bug = error_html(e)
    assert "ZeroDivisionError: division by zero" in bug and "<details>" in bug and "Traceback" in bug

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

def test_dashboard_train_button(world):
    tr = Trainer(TrainConfig.from_preset("pixel", steps=3, **TINY), world.train_tensors)
    dash = TrainingDashboard(tr, refresh_s=0, train_steps=3)
    assert dash.train_button.layout.display is None and dash.train_button.description == "Train 3 steps"
    dash.train_button.click()
    dash.wait(60)
    assert (dash.state, tr.step, dash.progress.max, dash.train_button.disabled) == ("finished", 3, 3, False)
    dash.train_more().wait(60)
    assert tr.step == 6 and dash.errors == []
    plain = TrainingDashboard(Trainer(TrainConfig.from_preset("pixel", steps=3, **TINY), world.train_tensors))
    assert plain.train_button.layout.display == "none"
    with pytest.raises(UserError, match="no Train button"): plain.train_more()

# ---- the sample explorer ----
def test_explorer(world, trained):
    kt, pixel = trained
    ex = SampleExplorer(world.test, {"pixel": (pixel.G, pixel.F), "kt": (kt.G, kt.F)}, teachers=world.teachers, size=64)
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
    ex = SampleExplorer(world.test, {"kt": (kt.G, kt.F)}, size=64, index=1)
    assert ex.face.value == 1 and list(ex.scores().index) == ["kt"]
    with pytest.raises(UserError, match="at least one variant"): SampleExplorer(world.test, {}, size=64)
    with pytest.raises(UserError, match="empty"): SampleExplorer(PairList([]), {"kt": (kt.G, kt.F)}, size=64)

def test_explorer_reports_a_failing_callback(world, trained):
    kt, _ = trained
    ex = SampleExplorer(world.test, {"kt": (kt.G, kt.F)}, size=64)
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
    assert m["teacher"][3].shape == m["student"][3].shape == (world.photo_teacher.dec_channels[3], 8, 8)
    fv.level.value = 0                             # fewer channels at level 0: the channel is clamped
    assert fv.channel.value <= fv.channel.max == world.photo_teacher.dec_channels[0] - 1
    assert fv.errors == []
    with pytest.raises(UserError, match="uses the teachers"): FeatureViewer(pixel)
    with pytest.raises(UserError, match="stream"): FeatureViewer(kt, stream="X_enc")

# ---- the loss-weight lab ----
def test_loss_weight_lab(world):
    lab = LossWeightLab(world, steps=3, widths=(4, 8, 8, 8), n_seeds=2, n_faces=2)
    assert lab.results.empty and lab.summary.empty and "no runs yet" in lab.table.value
    assert bytes(lab.plot.value).startswith(PNG) and bytes(lab.faces.value).startswith(PNG)
    assert list(lab.n_pairs.options) == [1, 2, 4, 6] and lab.preset.value == "kt"
    assert (lab.lambda_teacher.value, lab.lambda_mutual.value) == (1.0, 0.1)       # the kt preset's weights
    empty_plot, empty_faces = lab.plot.value, lab.faces.value
    lab.train_button.click()
    assert len(lab.results) == 2 and lab.errors == [] and not lab.train_button.disabled
    assert list(lab.results.seed) == [0, 1] and list(lab.summary.seeds) == [2]
    assert lab.summary.test_p2s_l1_sd.iloc[0] > 0                                   # two seeds, two numbers
    assert lab.plot.value != empty_plot and lab.faces.value != empty_faces and lab.table.value.count("<tr") == 2
    assert "±" in lab.table.value
    lab.preset.value = "pixel"
    assert (lab.lambda_teacher.value, lab.lambda_mutual.value) == (0.0, 0.0)
    lab.preset.value = "teacher"
    lab.teacher_parts.value = "decoder"
    lab.levels[0].value = False
    lab.seed.value, lab.n_seeds.value, lab.n_pairs.value = 5, 1, 2
    faces = lab.faces.value
    lab.train_button.click()
    r = lab.results
    assert list(r.run) == [1, 1, 2] and list(r.seed) == [0, 1, 5]
    last = r.iloc[-1]
    assert (last.preset, last.lambda_teacher, last.lambda_mutual, last.levels, last.teacher_parts, last.pairs) == \
           ("teacher", 1.0, 0.0, "123", "decoder", 2)
    assert (r[["test_p2s_l1", "train_p2s_l1", "test_s2p_l1", "train_s2p_l1"]] > 0).all().all()
    assert lab.faces.value != faces and set(lab.run_faces) == {1, 2}
    assert lab.run_faces[2]["G"].shape == (2, 64, 64) and lab.run_faces[2]["F"].shape == (2, 64, 64, 3)
    for box in lab.levels: box.value = False                                        # an impossible choice
    lab.train_button.click()
    assert len(lab.results) == 3 and "at least one level" in lab.error_area.value and "Traceback" not in lab.error_area.value
    for box in lab.levels: box.value = True
    new = lab.run(preset="mutual", lambda_teacher=0.0, lambda_mutual=0.1, seeds=(3,))   # the same from Python
    assert list(new.seed) == [3] and list(new.lambda_mutual) == [0.1]
    lab.clear_button.click()
    assert lab.results.empty and lab.run_faces == {} and "at least one level" in lab.errors[-1]
    assert lab.error_area.value == ""                                               # an action that worked

# ==== the apps of notebook 07b (ktsketch.apps) ====
import io, socket
import numpy as np
import pandas as pd
from datetime import datetime, timezone
from PIL import Image
from ktsketch.apps import (fsim_maps, ssim_map, distort, DISTORTIONS, FsimPlayground, nlda_split, NldaExplorer,
                           read_ablation, ablation_metrics, paired_differences, AblationBrowser, read_upload,
                           example_photo, TranslateYourImage, lab_cmd, lab_notebook_path, voila_command, LabApps)
from ktsketch.evaluation import fsim_gray, ssim_gray, nlda_recognition, rank1_curve, to_gray_uint8

@pytest.fixture(scope="module")
def faces():
    "Six synthetic test pairs: six identities, enough for NLDA (3 train, 3 test)."
    from ktsketch.synthetic import synthetic_splits
    src = synthetic_splits(seed=0, n_train=0, n_val=0, n_test=6, n_pool=0).test
    return PairList(src.get(i) for i in range(6))

def test_fsim_maps_give_the_package_scores(faces):
    ref = to_gray_uint8(faces.get(0).sketch)
    for kind, (_, levels) in DISTORTIONS.items():
        img = distort(ref, kind, levels[3])
        assert img.shape == ref.shape and img.dtype == np.uint8 and not (img == ref).all()
        m = fsim_maps(img, ref)
        assert m["fsim"] == fsim_gray(img, ref)
        assert {k: v.shape for k, v in m.items() if k != "fsim"} == {k: ref.shape for k in m if k != "fsim"}
        score, smap = ssim_map(img, ref)
        assert score == ssim_gray(img, ref) and abs(np.nanmean(smap) - score) < 1e-12 and np.isnan(smap[0, 0])
    assert fsim_maps(ref, ref)["fsim"] == pytest.approx(1.0)
    with pytest.raises(UserError, match="differ in size"): fsim_maps(ref, ref[:100])
    with pytest.raises(UserError, match="expected one of"): distort(ref, "swirl", 1)

def test_fsim_playground(faces):
    app = FsimPlayground(faces, distortion="noise")
    first, scores = app.image.value, app.scores.value
    assert bytes(first).startswith(PNG) and "FSIM" in scores and app.strength.value == DISTORTIONS["noise"][1][3]
    app.strength.value = DISTORTIONS["noise"][1][-1]
    assert app.image.value != first and app.scores.value != scores
    m = app.measure()
    assert (m["fsim"], m["ssim"]) == (fsim_gray(m["image"], m["reference"]), ssim_gray(m["image"], m["reference"]))
    c = app.curve()
    assert c["strength"] == list(DISTORTIONS["noise"][1]) and c["fsim"][0] == pytest.approx(1.0) and c["fsim"][-1] < c["fsim"][1]
    app.distortion.value = "jpeg"                   # its own strengths, the middle one
    assert list(app.strength.options) == list(DISTORTIONS["jpeg"][1]) and app.strength.value == 30
    app.kind.value, app.face.value = "photo", 5
    assert app.measure()["reference"].shape == (250, 200) and app.errors == []
    assert isinstance(app.static(), Figure)
    with pytest.raises(UserError, match="distortion"): FsimPlayground(faces, distortion="swirl")

@pytest.fixture(scope="module")
def nlda_data(faces, trained):
    from ktsketch.evaluation import translate_pairs
    kt, _ = trained
    return translate_pairs(kt.G, kt.F, faces, device="cpu", size=64)

def test_nlda_split_replays_nlda_recognition(nlda_data):
    d = nlda_data
    result = nlda_recognition(d["sketches"], d["fake_sketches"], d["identities"], n_splits=5)
    for s in range(5):
        f = nlda_split(d["sketches"], d["fake_sketches"], d["identities"], split=s)
        assert len(f["ids"]) == result["n_test"] == 3 and not set(f["ids"]) & set(f["train_ids"])
        curve = rank1_curve(f["query"], f["gallery"], f["ids"], f["ids"])
        assert (curve[:result["curves"].shape[1]] == result["curves"][s]).all()

def test_nlda_explorer(nlda_data):
    d = nlda_data
    app = NldaExplorer(d["sketches"], {"kt": d["fake_sketches"], "grey photos": [to_gray_uint8(p) for p in d["photos"]]},
                       d["identities"], n_splits=4, k=3)
    assert (app.n_train, app.n_test, app.split.max, app.query.max) == (3, 3, 3, 2)
    first, text = app.image.value, app.summary.value
    app.query.value = 2
    assert app.image.value != first and app.summary.value != text
    nb = app.neighbours()
    assert nb["hit"] == (nb["rank"] == 1) and sorted(nb["order"]) == [0, 1, 2] and list(nb["dist"]) == sorted(nb["dist"])
    f = nb["features"]
    assert nb["hits"].mean() == rank1_curve(f["query"], f["gallery"], f["ids"], f["ids"])[app.dims.value - 1]
    app.method.value, app.split.value, app.dims.value = "grey photos", 3, 1
    assert app.errors == [] and isinstance(app.static(), Figure)
    with pytest.raises(UserError, match="at least one method"): NldaExplorer(d["sketches"], {}, d["identities"])

def test_read_ablation(tmp_path):
    df = read_ablation()
    assert len(df) == 33 and {"p2s_fsim", "s2p_l1", "p2s_fsim_protocol"} <= set(ablation_metrics(df))
    assert not {"pairs", "seed", "steps", "seconds"} & set(ablation_metrics(df))
    grid = pd.DataFrame([dict(variant=v, pairs=n, seed=s, p2s_fsim=0.70 + 0.01 * s + (0.02 if v == "kt" else 0),
                              p2s_l1=0.2 - 0.01 * s - (0.01 if v == "kt" else 0))
                         for v in ("pixel", "kt") for n in (8, 16) for s in range(4)])
    grid.to_csv(tmp_path / "a.csv", index=False)
    grid.assign(variant=grid.variant + "_b").to_csv(tmp_path / "b.csv", index=False)
    both = read_ablation(tmp_path)                  # a folder: every CSV in it, stacked
    assert len(both) == 32 and set(both.file) == {"a.csv", "b.csv"}
    with pytest.raises(UserError, match="repeat a run"): read_ablation([tmp_path / "a.csv", tmp_path / "a.csv"])
    grid.drop(columns=["pairs"]).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(UserError, match="missing columns pairs"): read_ablation(tmp_path / "c.csv")
    with pytest.raises(UserError, match="no such file"): read_ablation(tmp_path / "nope.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no CSV files"): read_ablation(tmp_path / "empty")

def test_paired_differences(tmp_path):
    grid = pd.DataFrame([dict(variant=v, pairs=n, seed=s, p2s_fsim=0.70 + 0.01 * s + (0.02 if v == "kt" else 0) + 0.001 * (s == 2) * (v == "kt"),
                              p2s_l1=0.2 - 0.01 * s - (0.01 if v == "kt" else 0))
                         for v in ("pixel", "kt") for n in (8, 16) for s in range(4)])
    grid = grid[~((grid.variant == "kt") & (grid.pairs == 16) & (grid.seed == 3))]   # one seed missing: paired on 3
    d = paired_differences(grid, "p2s_fsim", 8)
    assert d.loc["kt", "seeds"] == 4 and d.loc["kt", "diff"] == pytest.approx(0.02025) and d.loc["kt", "verdict"] == "better"
    assert d.loc["kt", "low"] < 0.02025 < d.loc["kt", "high"] and d.loc["kt", "seeds_ahead"] == "4/4"
    l1 = paired_differences(grid, "p2s_l1", 16)      # lower L1 is better: kt's -0.01 is +0.01
    assert l1.loc["kt", "seeds"] == 3 and l1.loc["kt", "diff"] == pytest.approx(0.01) and l1.loc["kt", "low"] == l1.loc["kt", "high"]
    one = paired_differences(grid[grid.seed == 0], "p2s_fsim", 8)
    assert one.loc["kt", "verdict"] == "one seed: no interval" and np.isnan(one.loc["kt", "low"])
    with pytest.raises(UserError, match="no 'pixel' runs at 32 pairs"): paired_differences(grid, "p2s_fsim", 32)
    shipped = paired_differences(read_ablation(), "p2s_fsim", 8)
    assert shipped.loc["pixel_10x", "pairs"] == 80 and len(shipped) == 10

def test_ablation_browser(tmp_path):
    app = AblationBrowser()
    assert app.metric.value == "p2s_fsim" and app.pairs.options == (8,) and len(app.arms.value) == 10
    first, table = app.image.value, app.table.value
    app.metric.value = "s2p_l1"
    assert app.image.value != first and app.table.value != table
    app.arms.value = ("kt",)
    assert list(app.differences().index) == ["kt"]
    app.arms.value = ()
    assert app.differences().empty and app.errors == []     # nothing chosen: an empty picture, no error
    grid = pd.DataFrame([dict(variant=v, pairs=n, seed=s, p2s_fsim=0.7 + 0.01 * s)
                         for v in ("pixel", "kt") for n in (8, 16) for s in range(3)] +
                        [dict(variant="teacher", pairs=16, seed=s, p2s_fsim=0.7) for s in range(3)])
    grid.to_csv(tmp_path / "g.csv", index=False)
    app = AblationBrowser(tmp_path / "g.csv")
    assert app.pairs.options == (8, 16) and app.arms.options == ("kt",)
    app.pairs.value = 16
    assert app.arms.options == ("kt", "teacher") and app.arms.value == ("kt", "teacher") and app.errors == []
    with pytest.raises(UserError, match="baseline"): AblationBrowser(tmp_path / "g.csv", baseline="nope")
    with pytest.raises(UserError, match="metric"): AblationBrowser(tmp_path / "g.csv", metric="nope")

def _encoded(img, fmt):
    buf = io.BytesIO(); img.save(buf, format=fmt); return buf.getvalue()

def test_read_upload():
    png = _encoded(example_photo(), "PNG")
    assert read_upload(png, "me.png").mode == "RGB" and read_upload(png, "me.png", "sketch").mode == "L"
    for m, fmt in (("P", "PNG"), ("RGBA", "PNG"), ("LA", "PNG"), ("CMYK", "JPEG"), ("1", "PNG"), ("L", "JPEG")):
        img = read_upload(_encoded(example_photo().convert(m), fmt), f"x.{fmt.lower()}")
        assert img.mode == "RGB" and img.size == (240, 300), m
    for data, needle in ((b"", "empty"), (b"hello", "not an image"), (png[:200], "upload.png"),
                         (_encoded(Image.new("L", (8000, 7000)), "PNG"), "too large")):
        with pytest.raises(UserError, match=needle): read_upload(data, "upload.png")

def _upload(content, name):
    return dict(name=name, type="", size=len(content), content=memoryview(content), last_modified=datetime.now(timezone.utc))

def test_translate_your_image(world, trained):
    kt, _ = trained
    app = TranslateYourImage(kt.G, kt.F, 64, example=world.train.get(0), n_train=6)
    empty = app.image.value
    assert app.source is None and "domain gap" in app.note.value and "6 synthetic" in app.note.value
    app.example_button.click()
    assert app.image.value != empty and app.source[0].startswith("astronaut") and app.errors == []
    t = app.translate()
    assert t["framed"].shape == (250, 200, 3) and t["input"].shape == (64, 64, 3) and t["output"].shape == (250, 200)
    shown = app.image.value
    with pytest.raises(UserError, match="notes.txt: not an image"): app.upload.value = (_upload(b"text", "notes.txt"),)
    assert "notes.txt: not an image" in app.error_area.value and "Traceback" not in app.error_area.value
    assert app.image.value == shown                 # the last good picture stays
    app.kind.value = "sketch"
    app.upload.value = (_upload(_encoded(world.test.get(1).sketch, "PNG"), "sketch.png"),)
    assert app.source[0] == "sketch.png" and app.error_area.value == "" and app.image.value != shown
    assert app.translate()["output"].shape == (250, 200, 3) and "sketch -> photo" in app.status.value
    assert isinstance(app.static(), Figure)

def test_lab_cmd_user_errors(monkeypatch):
    with pytest.raises(UserError, match="--token"): lab_cmd(token="bad token!")
    with pytest.raises(UserError, match="1024"): lab_cmd(port=22)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); s.listen()
        with pytest.raises(UserError, match="already listens"): lab_cmd(port=s.getsockname()[1])
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "voila" else real(name, *a))
    with pytest.raises(UserError, match="pip install voila"): lab_cmd()

def test_lab_command_is_registered():
    from conftest import run_cli
    r = run_cli("--help")
    assert r.returncode == 0 and "lab " in r.stdout and "Voila" in r.stdout
    r = run_cli("lab", "--token", "x")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--token" in r.stderr

def test_the_lab_notebook_shows_every_app():
    import nbformat
    nb = nbformat.read(lab_notebook_path(), as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code[0] == "from ktsketch.apps import LabApps\napps = LabApps()"
    names = ["dashboard", "explorer", "viewer", "lab", "fsim", "nlda", "ablation", "translate"]
    assert code[1:] == [f"apps.{n}" for n in names]          # the order of LabApps.apps (notebook 07b checks it)
    assert nb.metadata.kernelspec.name == "python3" and all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    cmd = voila_command(lab_notebook_path(), 9999, "tok-12345678")
    assert "--Voila.ip=127.0.0.1" in cmd and "--strip_sources=True" in cmd and "--Voila.port_retries=0" in cmd

def test_the_wheel_ships_the_lab_notebook_and_needs_voila(tmp_path):
    import subprocess, sys, zipfile
    from conftest import ROOT
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    z = zipfile.ZipFile(next(tmp_path.glob("ktsketch-*.whl")))
    assert "ktsketch/notebooks/ktsketch_lab.ipynb" in z.namelist() and "ktsketch/apps.py" in z.namelist()
    meta = z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: voila" in meta
