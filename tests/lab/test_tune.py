"""Grid tuning: parsing, the argmin on a deterministic task, the grid-edge flag, stored trials and decisions."""

from __future__ import annotations

import math

import pytest

from optimlab.lab.runner import run
from optimlab.lab.store import RunStore
from optimlab.lab.tune import TUNE_SEED, Grid, load_decisions, parse_grid, save_decisions, tune

QUAD = {"dim": 10}


def test_parse_grid_log_lin_list_and_choice():
    g = parse_grid("lr", "log:1e-4:1e-1:7")
    assert g.ordered and g.values == (1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2, 3.16e-2, 1e-1)
    assert parse_grid("beta", "lin:0:1:3").values == (0.0, 0.5, 1.0)
    assert parse_grid("lr", "0.1,0.01").values == (0.01, 0.1)  # sorted: the edges are the extremes
    c = parse_grid("nesterov", "choice:True,False")
    assert not c.ordered and c.values == (True, False)


@pytest.mark.parametrize("text, match", [
    ("log:0:1:3", "LOW > 0"), ("log:1:0.1:3", "LOW < HIGH"), ("log:1e-3:1:1", "N >= 2"),
    ("log:1e-3:1", "LOW:HIGH:N"), ("", "no values"), ("0.1,0.1", "repeated"),
])
def test_bad_grids_name_the_parameter(text, match):
    with pytest.raises(ValueError, match=match) as e:
        parse_grid("lr", text)
    assert "'lr'" in str(e.value)


def test_tune_picks_the_argmin_and_stores_trials_on_the_tuning_seed(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    grid = (0.003, 0.03, 0.3, 30.0)  # 30 diverges on this quadratic: it must score worst
    res = tune("quadratic", "sgd", "lr", grid, steps=25, task_options=QUAD, store=store, progress=False)
    assert res.seed == TUNE_SEED and res.grid == list(grid) and res.metric == "eval_loss"
    # each score is the final eval loss of an ordinary stored run on seed 1000
    for value, score, run_id in zip(grid, res.scores, res.run_ids):
        row = store.get_run(run_id)
        assert row["seed"] == TUNE_SEED and row["hparams"] == {"lr": value}
        again = run("quadratic", "sgd", hparams={"lr": value}, seed=TUNE_SEED, steps=25, task_options=QUAD,
                    store=store)
        assert again.cached and (again.final.get("eval_loss") == score or (math.isnan(score) and not again.ok))
    assert math.isnan(res.scores[-1])
    finite = [s for s in res.scores if math.isfinite(s)]
    assert res.best == grid[res.scores.index(min(finite))] == 0.3
    assert res.at_edge is None  # the diverged value above it is still part of the grid


def test_best_value_at_the_grid_edge_is_flagged():
    low = tune("quadratic", "sgd", "lr", (1e-4, 3e-4, 1e-3), steps=20, task_options=QUAD, progress=False)
    assert low.best == 1e-3 and low.at_edge == "high"
    assert "high edge" in low.edge_note
    interior = tune("quadratic", "sgd", "lr", (1e-3, 0.05, 5.0), steps=20, task_options=QUAD, progress=False)
    assert interior.best == 0.05 and interior.at_edge is None and interior.edge_note == ""
    unordered = tune("quadratic", "sgd", "nesterov", Grid((False, True), ordered=False), steps=5,
                     hparams={"lr": 0.05, "momentum": 0.9}, task_options=QUAD, progress=False)
    assert unordered.at_edge is None  # no edge on a list of choices


def test_bad_grid_value_is_refused_before_any_run(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(ValueError, match="momentum"):
        tune("quadratic", "sgd", "momentum", (0.5, 1.5), hparams={"lr": 0.1}, steps=5, task_options=QUAD,
             store=store, progress=False)
    assert store.find_runs() == []
    with pytest.raises(ValueError, match="both fixed"):
        tune("quadratic", "sgd", "lr", (0.1, 0.2), hparams={"lr": 0.1}, steps=5, task_options=QUAD)


def test_decisions_are_saved_beside_the_store_and_replaced_by_key(tmp_path):
    path = tmp_path / "runs.db"
    a = tune("quadratic", "sgd", "lr", (1e-3, 0.05, 5.0), steps=10, task_options=QUAD, store=str(path),
             progress=False)
    save_decisions(path, [a])
    save_decisions(path, [a])  # same key: replaced, not appended
    (d,) = load_decisions(path)
    assert d["best"] == a.best and d["grid"] == [1e-3, 0.05, 5.0] and d["run_ids"] == a.run_ids
    assert (tmp_path / "runs.db.tuning.json").exists()
    (tmp_path / "runs.db.tuning.json").write_text("{not json")
    with pytest.raises(ValueError, match="tuning.json"):
        load_decisions(path)
