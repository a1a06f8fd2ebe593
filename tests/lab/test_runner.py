"""The run layer: determinism, resume after an interrupt, reuse of finished runs, failed runs,
the comparison table, and errors for bad names."""

from __future__ import annotations

import math

import pytest
import torch

from optimlab.lab.compare import ComparisonTable, compare
from optimlab.lab.runner import RunResult, run
from optimlab.lab.store import RunStore
from optimlab.lab.tasks import get_task

QUAD = {"dim": 20}
TIMINGS = ("step_ms", "opt_ms", "eval_ms")


def _untimed(result: RunResult) -> dict:
    return {k: v for k, v in result.metrics.items() if k not in TIMINGS}


def _params(result: RunResult) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in result.model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_records_everything(tmp_path):
    threads = torch.get_num_threads()
    r = run("quadratic", "adamw", steps=20, task_options=QUAD, store=tmp_path / "runs.db",
            eval_every=5, threads=1)
    assert torch.get_num_threads() == threads  # restored
    assert r.status == "finished" and r.ok and not r.cached and r.error is None
    assert r.hparams == get_task("quadratic").spec.adamw  # the task's AdamW settings
    assert [s for s, _ in r.metrics["loss"]] == list(range(1, 21))
    assert [s for s, _ in r.metrics["eval_loss"]] == [0, 5, 10, 15, 20]
    assert len(r.metrics["step_ms"]) == 20 and all(v > 0 for _, v in r.metrics["step_ms"])
    assert r.final["state_bytes"] > 0 and r.final["n_params"] == 20
    assert r.final["eval_loss"] == r.metrics["eval_loss"][-1][1]
    assert all(math.isfinite(v) for v in r.final.values())
    with RunStore(tmp_path / "runs.db") as store:
        row = store.get_run(r.run_id)
        assert row["status"] == "finished" and row["threads"] == 1 and row["steps"] == 20
        assert row["task_options"]["dim"] == 20 and row["task_options"]["rotate"] is True
        assert store.load_checkpoint(r.run_id) is None  # a finished run keeps no checkpoint


def test_other_optimizers_use_their_own_defaults():
    r = run("quadratic", "sgd", steps=3, task_options=QUAD)
    assert r.hparams == {} and r.ok


def test_same_seed_same_metrics(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    a = run("digits_mlp", "adamw", steps=15, eval_every=5, store=store, resume=False)
    b = run("digits_mlp", "adamw", steps=15, eval_every=5, store=store, resume=False)
    c = run("digits_mlp", "adamw", steps=15, eval_every=5, store=store, seed=1, resume=False)
    assert a.run_id != b.run_id
    assert _untimed(a) == _untimed(b) and _same(_params(a), _params(b))
    assert _untimed(a)["loss"] != _untimed(c)["loss"]


@pytest.mark.parametrize("task, optimizer, options", [
    ("digits_mlp", "adamw", {}),
    ("digits_mlp", "muon", {}),
    ("quadratic", "sgd", {"dim": 20, "noise": 0.1}),
])
def test_resume_after_interrupt_is_bit_identical(tmp_path, task, optimizer, options):
    kw = dict(steps=12, eval_every=3, checkpoint_every=5, task_options=options)
    reference = run(task, optimizer, store=tmp_path / "ref.db", **kw)

    store = RunStore(tmp_path / "runs.db")
    def interrupt(step, loss):
        if step == 7:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run(task, optimizer, store=store, on_step=interrupt, **kw)
    (row,) = store.find_runs()
    assert row["status"] == "interrupted"
    assert store.load_checkpoint(row["id"])[0] == 5  # the last checkpoint is kept

    seen = []
    resumed = run(task, optimizer, store=store, on_step=lambda s, l: seen.append(s), **kw)
    assert resumed.run_id == row["id"] and resumed.resumed_from == 5 and resumed.ok
    assert seen == list(range(6, 13))
    assert _same(_params(resumed), _params(reference))
    assert _untimed(resumed) == _untimed(reference)


def test_finished_run_is_not_retrained(tmp_path):
    path = tmp_path / "runs.db"
    first = run("quadratic", "adamw", steps=10, task_options=QUAD, store=path)
    calls = []
    again = run("quadratic", "adamw", steps=10, task_options=QUAD, store=path,
                on_step=lambda s, l: calls.append(s))
    assert calls == [] and again.cached and again.model is None
    assert again.run_id == first.run_id and again.metrics == first.metrics
    assert again.final == first.final
    # a different budget, or resume=False, trains anew
    assert not run("quadratic", "adamw", steps=11, task_options=QUAD, store=path).cached
    fresh = run("quadratic", "adamw", steps=10, task_options=QUAD, store=path, resume=False)
    assert not fresh.cached and fresh.run_id != first.run_id


@pytest.mark.parametrize("nonfinite", ["error", "skip", "ignore"])
def test_diverging_run_is_recorded_as_failed(tmp_path, nonfinite):
    store = RunStore(tmp_path / "runs.db")
    r = run("quadratic", "sgd", hparams={"lr": 1e6}, steps=50, task_options=QUAD, store=store,
            nonfinite=nonfinite)
    assert r.status == "failed" and not r.ok
    assert "non-finite" in r.error or "NaN or Inf" in r.error
    row = store.get_run(r.run_id)
    assert row["status"] == "failed" and row["error"] == r.error
    assert r.metrics["loss"]  # what was logged before the failure is kept
    again = run("quadratic", "sgd", hparams={"lr": 1e6}, steps=50, task_options=QUAD,
                store=store, nonfinite=nonfinite)
    assert again.cached and again.status == "failed"


def test_compare_table(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    table = compare("digits_mlp", ["adamw", ("sgd", {"lr": 0.1}), ("sgd", {"lr": 1e6})],
                    seeds=2, steps=12, store=store, progress=False, eval_every=4)
    assert isinstance(table, ComparisonTable)
    labels = [row["label"] for row in table.rows]
    assert labels == ["adamw", "sgd(lr=0.1)", "sgd(lr=1000000.0)"]
    assert {k: len(v) for k, v in table.runs.items()} == {label: 2 for label in labels}
    assert [r.seed for r in table.runs["adamw"]] == [0, 1]
    assert len(store.find_runs(task="digits_mlp")) == 6
    spec = get_task("digits_mlp").spec
    assert table.columns == ["loss", *spec.metrics, "ms_per_step", "state_bytes_per_param",
                             "steps_to_target", "time_to_target"]
    for row in table.rows[:2]:
        assert row["finished"] == 2 and row["failed"] == 0
        for column in table.columns[:-2]:
            ci = row["stats"][column]
            assert ci.n == 2 and math.isfinite(ci.mean) and ci.low <= ci.mean <= ci.high, (row["label"], column)
    assert table.rows[0]["stats"]["state_bytes_per_param"].mean > table.rows[1]["stats"]["state_bytes_per_param"].mean
    # the target is the task's own, whatever the optimizers in the table
    assert table.target == spec.targets["test_accuracy"] and table.target_source == "task"
    diverged = table.rows[2]
    assert diverged["finished"] == 0 and diverged["failed"] == 2 and len(diverged["errors"]) == 2
    text = str(table)
    for label in labels:
        assert label in text
    assert "test_accuracy" in text and "0/2" in text and max(map(len, text.splitlines())) <= 120
    # a second comparison reuses every stored run
    again = compare("digits_mlp", ["adamw"], seeds=2, steps=12, store=store, progress=False,
                    eval_every=4)
    assert all(r.cached for r in again.runs["adamw"])


def test_progress_bar(capsys):
    assert run("quadratic", "adamw", steps=5, task_options=QUAD, progress=True).ok


@pytest.mark.parametrize("call, error, match", [
    (lambda: run("quadratc", "adamw"), ValueError, r"unknown task 'quadratc'.*did you mean 'quadratic'"),
    (lambda: run("quadratic", "adamx", task_options=QUAD), ValueError, r"adamx"),
    (lambda: run("quadratic", "adamw", hparams={"lrr": 0.1}, task_options=QUAD), TypeError, r"lrr"),
    (lambda: run("quadratic", "adamw", hparams={"lr": -1.0}, task_options=QUAD), ValueError, r"lr"),
    (lambda: run("quadratic", "adamw", task_options={"dimm": 3}), TypeError, r"dimm"),
    (lambda: run("quadratic", "adamw", steps=0), ValueError, r"steps must be an int >= 1, got 0"),
    (lambda: run("quadratic", "adamw", seed=-1), ValueError, r"seed must be an int >= 0, got -1"),
    (lambda: run("quadratic", "adamw", threads=0), ValueError, r"threads must be an int >= 1, got 0"),
    (lambda: compare("quadratic", ["adamw", "nope"], seeds=1, steps=2), ValueError, r"nope"),
    (lambda: compare("nope", ["adamw"]), ValueError, r"unknown task 'nope'"),
    (lambda: compare("quadratic", ["adamw", "adamw"]), ValueError, r"'adamw' is listed twice"),
    (lambda: compare("quadratic", [("sgd", 0.1)]), ValueError, r"name or a \(name, hparams\) pair"),
    (lambda: compare("quadratic", ["adamw"], seeds=0), ValueError, r"seeds must be an int >= 1, got 0"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bad_hparams_write_nothing(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(TypeError):
        run("quadratic", "adamw", hparams={"lrr": 0.1}, task_options=QUAD, store=store)
    assert store.find_runs() == []


def test_interrupt_before_first_checkpoint_starts_over(tmp_path):
    path = tmp_path / "runs.db"
    kw = dict(steps=8, checkpoint_every=5, task_options=QUAD)
    reference = run("quadratic", "adam", store=tmp_path / "ref.db", **kw)

    def interrupt(step, loss):
        if step == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run("quadratic", "adam", store=path, on_step=interrupt, **kw)
    resumed = run("quadratic", "adam", store=path, **kw)
    assert resumed.resumed_from is None and resumed.ok
    assert len(RunStore(path).find_runs()) == 1  # the same row, trained from the start
    assert _same(_params(resumed), _params(reference))
    assert _untimed(resumed) == _untimed(reference)


def test_global_rng_is_left_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run("quadratic", "adamw", steps=3, task_options=QUAD, store=tmp_path / "runs.db")
    assert torch.equal(torch.rand(3), expected)


def test_compare_with_a_path(tmp_path):
    path = str(tmp_path / "runs.db")
    table = compare("quadratic", ["adamw", "sgd"], seeds=2, steps=6, store=path,
                    task_options=QUAD, progress=False, target=1e9)
    assert all(row["reached"] == 2 for row in table.rows)  # a target every run meets at once
    # 6 steps leave room for one evaluation only (the final one): that is where the target is seen
    assert all(row["stats"]["steps_to_target"].mean == 6 and row["stats"]["steps_to_target"].n == 2
               for row in table.rows)
    assert len(RunStore(path).find_runs(task="quadratic", status="finished")) == 4


def test_sharpness_is_logged_without_changing_training(tmp_path):
    from optimlab.diagnostics import top_eigenvalues
    from optimlab.lab.runner import run

    plain = run("digits_mlp", "adamw", steps=12, seed=3, store=str(tmp_path / "a.db"), eval_every=6)
    watched = run("digits_mlp", "adamw", steps=12, seed=3, store=str(tmp_path / "b.db"), eval_every=6,
                  sharpness_every=6)
    assert watched.metrics["loss"] == plain.metrics["loss"]  # the diagnostics do not perturb training
    steps = [s for s, _ in watched.metrics["sharpness"]]
    assert steps == [0, 6, 12]
    assert [s for s, _ in watched.metrics["precond_sharpness"]] == [6, 12]  # Adam state exists after step 1
    # the last value is λ_max of the final model's Hessian on the first batch
    from optimlab.lab.tasks import get_task

    inst = get_task("digits_mlp").build(3)
    inst.model.load_state_dict(watched.model.state_dict())
    exact = top_eigenvalues(inst.model, inst.loss, inst.batch(0), tol=1e-6).value
    assert abs(watched.metrics["sharpness"][-1][1] - exact) <= 1e-2 * abs(exact)
    assert all(v > 0 for _, v in watched.metrics["sharpness"])


def test_schedule_free_runs_are_evaluated_at_the_average(monkeypatch):
    from optimlab.core.engine import ChainOptimizer

    modes = []
    original = ChainOptimizer.train

    def spy(self, mode=True):
        modes.append(mode)
        return original(self, mode)

    monkeypatch.setattr(ChainOptimizer, "train", spy)
    res = run("digits_mlp", "sf_adamw", steps=30, seed=1, eval_every=10)
    # every evaluation (steps 0, 10, 20, 30) is bracketed by eval() and train(); the model is returned in eval mode
    assert modes == [False, True] * 4 + [False]
    inst = get_task("digits_mlp").build(1)
    inst.model.load_state_dict(res.model.state_dict())  # the returned model holds x
    assert res.final["eval_loss"] == pytest.approx(inst.evaluate(inst.model)["eval_loss"], rel=1e-6)
