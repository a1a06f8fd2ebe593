"""Sweeps: an Optuna study over hyperparameters, runs in the run store, persistence across calls,
several worker processes sharing one study, diverging trials, and errors for bad spaces."""

from __future__ import annotations

import math
import multiprocessing

import optuna
import pytest

from optimlab.lab.store import RunStore
from optimlab.lab.sweep import check_space, default_study_storage, parse_space, sweep

QUAD = {"dim": 20}
STEPS = 30
SPACE = {"lr": ("log", 1e-3, 1.5)}  # SGD on a quadratic with lambda_max 1 is stable below lr 2


def _sweep(tmp_path, **kw):
    args = dict(trials=4, steps=STEPS, task_options=QUAD, store=tmp_path / "runs.db")
    args.update(kw)
    return sweep("quadratic", "sgd", SPACE, **args)


def test_sweep_finds_a_better_lr_and_records_runs(tmp_path):
    res = _sweep(tmp_path, trials=6)
    assert res.new_trials == 6 and len(res.trials) == 6
    assert [t.number for t in res.trials] == list(range(6))
    assert all(t.state == "complete" for t in res.trials)
    values = [t.value for t in res.trials]
    assert res.best_value == min(values) < max(values)
    best = res.best_trial
    assert res.best_params == {"lr": best.params["lr"]}
    assert 1e-3 <= best.params["lr"] <= 1.5
    assert res.metric == "eval_loss" and res.maximize is False and res.steps == STEPS
    with RunStore(tmp_path / "runs.db") as store:
        runs = store.find_runs(task="quadratic", optimizer="sgd")
        assert sorted(r["id"] for r in runs) == sorted(i for t in res.trials for i in t.run_ids)
        for t in res.trials:
            (run_id,) = t.run_ids
            row = store.get_run(run_id)
            assert row["hparams"] == t.params and row["steps"] == STEPS and row["status"] == "finished"
            assert store.metrics(run_id)["eval_loss"][-1][1] == pytest.approx(t.value)
    text = str(res)
    assert "quadratic-sgd" in text and "eval_loss" in text and f"trial {best.number}" in text
    assert (tmp_path / "sweeps.db").exists()  # the default study storage, next to the run store


def test_sweep_continues_the_study_and_checks_its_objective(tmp_path):
    first = _sweep(tmp_path, trials=3, seeds=2)
    assert len(first.trials) == 3 and all(len(t.run_ids) == 2 for t in first.trials)
    assert all(t.value == pytest.approx(sum(t.seed_values) / 2) for t in first.trials)
    second = _sweep(tmp_path, trials=2, seeds=2)
    assert second.new_trials == 2 and len(second.trials) == 5
    assert [t.number for t in second.trials] == list(range(5))
    assert second.trials[0].params == first.trials[0].params  # the same stored trials
    third = _sweep(tmp_path, trials=10, seeds=2, total_trials=6)  # a shared budget
    assert third.new_trials == 1 and len(third.trials) == 6
    with pytest.raises(ValueError, match="another objective.*steps"):
        _sweep(tmp_path, trials=1, seeds=2, steps=STEPS + 1)
    other = _sweep(tmp_path, trials=1, steps=STEPS + 1, study_name="longer")
    assert len(other.trials) == 1


def test_same_sampler_seed_same_points():
    a = sweep("quadratic", "sgd", SPACE, trials=3, steps=5, task_options=QUAD, store=None)
    b = sweep("quadratic", "sgd", SPACE, trials=3, steps=5, task_options=QUAD, store=None)
    c = sweep("quadratic", "sgd", SPACE, trials=3, steps=5, task_options=QUAD, store=None,
              sampler_seed=1)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.params for t in a.trials] != [t.params for t in c.trials]
    assert len({t.params["lr"] for t in a.trials}) == 3


def test_diverging_trials_are_pruned_and_runs_reused(tmp_path):
    res = sweep("quadratic", "sgd", {"lr": ("choice", [100.0])}, trials=2, steps=STEPS,
                task_options=QUAD, store=tmp_path / "runs.db")
    assert [t.state for t in res.trials] == ["pruned", "pruned"]
    assert all(t.error and "failed" in t.error for t in res.trials)
    assert res.trials[0].run_ids == res.trials[1].run_ids  # the identical run is reused
    assert res.best_params is None and math.isnan(res.best_value)
    assert "no trial completed" in str(res)


def _worker(args):
    root, n = args
    res = sweep("quadratic", "sgd", SPACE, trials=n, steps=STEPS, task_options=QUAD,
                store=f"{root}/runs.db", study_storage=f"sqlite:///{root}/shared.db",
                study_name="shared")
    return res.new_trials


def test_worker_processes_share_one_study(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        done = pool.map(_worker, [(str(tmp_path), 3), (str(tmp_path), 3)])
    assert done == [3, 3]
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{tmp_path}/shared.db")
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.params["lr"] for t in trials}) == 6  # the workers drew different points
    run_ids = [i for t in trials for i in t.user_attrs["run_ids"]]
    with RunStore(tmp_path / "runs.db") as store:
        assert sorted(r["id"] for r in store.find_runs(status="finished")) == sorted(run_ids)


def test_parse_space():
    assert parse_space(["lr=log:1e-4:1e-1", "momentum=float:0:0.9", "nesterov=choice:True,False",
                        "ns=int:1:8", "mode=choice:polar_express,newton_schulz",
                        "betas=choice:(0.9,0.95),(0.9,0.999)"]) == {
        "lr": ("log", 1e-4, 1e-1), "momentum": ("float", 0.0, 0.9),
        "nesterov": ("choice", [True, False]), "ns": ("int", 1, 8),
        "mode": ("choice", ["polar_express", "newton_schulz"]),
        "betas": ("choice", [(0.9, 0.95), (0.9, 0.999)])}
    for bad in (["lr"], ["lr=log:1e-4"], ["lr=exp:1:2"], ["lr=log:a:b"], ["=log:1:2"],
                ["ns=int:1.5:3"], ["lr=log:1e-3:1e-1", "lr=float:0:1"], ["lr=choice:"]):
        with pytest.raises(ValueError, match="sweep space"):
            parse_space(bad)


def test_check_space_and_choices():
    assert check_space("sgd", ["lr=log:1e-3:1e-1", "nesterov=choice:True,False"]) == {
        "lr": ("log", 1e-3, 1e-1), "nesterov": ("choice", [True, False])}
    assert check_space("adamw", {"betas": [(0.9, 0.95), (0.9, 0.999)]})["betas"][0] == "choice"
    res = sweep("quadratic", "adamw", {"betas": ("choice", [(0.9, 0.95), (0.8, 0.99)])},
                trials=2, steps=5, task_options=QUAD, store=None)
    assert all(tuple(t.params["betas"]) in {(0.9, 0.95), (0.8, 0.99)} for t in res.trials)
    assert res.fixed == {"lr": 0.05, "weight_decay": 0.0}  # the task's AdamW reference settings


@pytest.mark.parametrize("space, words", [
    ({"lrr": ("log", 1e-3, 1e-1)}, ["'lrr'", "'sgd'", "did you mean 'lr'"]),
    ({"lr": ("float", -1.0, 0.1)}, ["sgd", "lr", "-1.0"]),
    ({"momentum": ("float", 0.0, 1.0)}, ["sgd", "momentum", "1.0"]),
    ({"lr": ("log", 0.0, 0.1)}, ["lr", "low > 0"]),
    ({"lr": ("float", 0.1, 0.01)}, ["lr", "low must be below high"]),
    ({"nesterov": ("float", 0.0, 1.0)}, ["nesterov", "bool"]),
    ({"nesterov": ("choice", [True, "maybe"])}, ["nesterov", "'maybe'"]),
    ({"lr": ("grid", 0.1, 0.2)}, ["lr", "expected"]),
    ({"lr": "log:1e-4"}, ["lr", "KIND:LOW:HIGH"]),
    ({}, ["non-empty"]),
])
def test_bad_space_is_refused_before_anything_runs(tmp_path, space, words):
    with pytest.raises(ValueError) as info:
        sweep("quadratic", "sgd", space, trials=1, steps=5, store=tmp_path / "runs.db")
    for word in words:
        assert word in str(info.value)
    assert not (tmp_path / "runs.db").exists() and not (tmp_path / "sweeps.db").exists()


def test_other_errors():
    with pytest.raises(ValueError, match="unknown optimizer"):
        sweep("quadratic", "sgdd", SPACE, store=None)
    with pytest.raises(ValueError, match="unknown task"):
        sweep("quadratc", "sgd", SPACE, store=None)
    with pytest.raises(ValueError, match="no final metric 'acc'"):
        sweep("quadratic", "sgd", SPACE, metric="acc", store=None)
    with pytest.raises(ValueError, match="maximize"):
        sweep("quadratic", "sgd", SPACE, metric="distance", store=None)
    with pytest.raises(ValueError, match="both swept and fixed"):
        sweep("quadratic", "sgd", SPACE, fixed={"lr": 0.1}, store=None)
    with pytest.raises(ValueError, match="momentum"):
        sweep("quadratic", "sgd", SPACE, fixed={"momentum": 2.0}, store=None)
    with pytest.raises(ValueError, match="seeds"):
        sweep("quadratic", "sgd", SPACE, seeds=0, store=None)


def test_default_study_storage(tmp_path):
    assert default_study_storage(tmp_path / "runs.db") == f"sqlite:///{tmp_path}/sweeps.db"
