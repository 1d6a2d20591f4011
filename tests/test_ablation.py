"`ktsketch ablate` never reuses or mixes results across settings, reruns damaged rows, refuses foreign tables (issue 18 item 2)."
import csv, hashlib
from pathlib import Path
import pytest
from ktsketch.ablation import (COLUMNS, RUN_KEY, damaged, grid_rows, run_key, run_ablation, read_results, write_results,
                               seed_pairs, ablation_data)
from ktsketch.cli import main
from ktsketch.core import UserError

SETTINGS = dict(data="synthetic", size=32, steps=2, teachers="trained", teacher_steps=2, pool=8, val_pairs=2, test_pairs=4)
TINY = dict(pairs=1, steps=2, size=32, widths=(4, 8, 16, 32), batch_size=2, teacher_widths=(8, 16, 32, 64), teacher_steps=2,
            teacher_batch=4, n_val=2, n_test=4, n_pool=8, eval_every=2, progress=False, log=lambda *a: None, nlda_splits=2)

def _row(**kw):
    return dict.fromkeys(COLUMNS, 0.5) | SETTINGS | dict(variant="pixel", pairs=1, seed=0, source="paper", device="cpu") | kw

def _sha(p): return hashlib.sha256(Path(p).read_bytes()).hexdigest()

def test_the_key_holds_every_setting_that_changes_a_result():
    assert set(RUN_KEY) >= {"data", "size", "steps", "teachers", "teacher_steps", "pool", "variant", "pairs", "seed"}
    assert run_key(_row(size=32)) != run_key(_row(size=64))
    assert run_key(_row(size="32")) == run_key(_row(size=32.0))       # how a CSV spells a number does not matter

def test_a_damaged_row_is_not_done():
    assert not damaged(_row())
    assert damaged(_row(p2s_fsim="")) and damaged(_row(s2p_l1="0.1x")) and damaged(_row(seed="")) and damaged(_row(p2s_l1="nan"))
    assert damaged(_row(cpu_seconds=None)) and damaged({**_row(), None: ["extra"]})     # a short row, a long row

def test_a_damaged_last_row_runs_again_and_the_file_is_kept_aside(tmp_path):
    rows = run_ablation(tmp_path, ["pixel"], seeds=(0, 1), **TINY)
    assert len(rows) == 2
    text = (tmp_path / "ablation.csv").read_text()
    cut = text[: text.rstrip("\n").rfind(",")] + "\n"                  # the last row cut short: its last fields are gone
    (tmp_path / "ablation.csv").write_text(cut)
    good, bad = grid_rows(tmp_path)
    assert len(good) == 1 and bad == {tmp_path / "ablation.csv": 1}
    rows = run_ablation(tmp_path, ["pixel"], seeds=(0, 1), **TINY)
    assert sorted(r["seed"] for r in rows) == ["0", "1"] and not any(damaged(r) for r in rows)
    assert (tmp_path / "ablation.csv.damaged-1").read_text() == cut   # nothing the user had is lost

@pytest.mark.parametrize("content", ["name,score\nalice,3\n", "\x00\x01binary", ",".join(COLUMNS[:25]) + "\n"])
def test_a_foreign_table_is_refused_not_replaced(tmp_path, capsys, content):
    f = tmp_path / "ablation.csv"; f.write_text(content)
    before = _sha(f)
    assert main(["ablate", "--variants", "pixel", "--out", str(tmp_path), "--size", "32", "--steps", "2"]) == 2
    assert "ablation.csv" in capsys.readouterr().err and _sha(f) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ablation.csv"]

def test_other_settings_are_refused_naming_the_option(tmp_path):
    write_results([_row()], tmp_path / "ablation.csv")
    for change, opt in ((dict(steps=3), "--steps 3"), (dict(n_pool=9), "--pool 9"), (dict(size=40), "--size 40"),
                        (dict(teachers="shipped", size=64), "--size 64"), (dict(data=str(tmp_path)), "--data")):
        with pytest.raises(UserError, match=opt): run_ablation(tmp_path, ["pixel"], seeds=(0,), **{**TINY, **change})
    assert read_results(tmp_path / "ablation.csv")[0]["size"] == "32"

def test_each_seed_draws_its_own_nested_pairs():
    d = ablation_data(pairs=[2, 6], max_factor=1, n_val=2, n_test=4, n_pool=2, train_pool=20)
    name = lambda s, n: [seed_pairs(d, s, n).get(i).name for i in range(n)]
    assert name(3, 6)[:2] == name(3, 2) and name(3, 6) != name(4, 6)

def test_real_data_validation_pairs_are_neither_drawn_nor_in_the_teachers_pools(tmp_path):
    "A folder data set without pools: the teachers learn from the training split minus its validation pairs (issue 14 item 7)."
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 6)):
        for kind in ("photos", "sketches"):
            (tmp_path / f"{split}_{kind}").mkdir()
            for i in range(n):
                a = rng.integers(0, 256, (250, 200, 3) if kind == "photos" else (250, 200), dtype=np.uint8)
                Image.fromarray(a).save(tmp_path / f"{split}_{kind}" / f"{split}{i:02d}.png")
    d = ablation_data(str(tmp_path), pairs=2, max_factor=1, n_val=4, log=lambda *a: None)
    val = {d.val.get(i).name for i in range(len(d.val))}
    train = {d.train.get(i).name for i in range(len(d.train))}
    pools = {n for pool in (d.photo_pool, d.sketch_pool) for n in (pool.get(i)[1] for i in range(len(pool)))}
    test = {d.test.get(i).name for i in range(len(d.test))}
    assert len(val) == 4 and not val & train and not val & pools and not test & (train | val)
    assert {Path(n).stem for n in pools} <= {Path(n).stem for n in train}
