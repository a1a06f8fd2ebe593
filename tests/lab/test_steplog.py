"""What the runner logs per step (lr, grad_norm, update_norm, eval_ms) and the checkpoint of finished runs."""

from __future__ import annotations

import math

import pytest
import torch

from optimlab.lab.runner import run
from optimlab.lab.steplog import log_every
from optimlab.lab.store import RunStore

QUAD = {"dim": 10}


def test_plain_sgd_update_norm_is_lr_times_grad_norm():
    res = run("quadratic", "sgd", hparams={"lr": 0.05}, steps=12, task_options=QUAD)
    steps = [s for s, _ in res.metrics["grad_norm"]]
    assert steps == list(range(1, 13)) == [s for s, _ in res.metrics["update_norm"]]
    for (_, g), (_, u), (_, lr) in zip(res.metrics["grad_norm"], res.metrics["update_norm"], res.metrics["lr"]):
        assert lr == 0.05 and g > 0 and u == pytest.approx(lr * g, rel=1e-5)


def test_grad_norm_is_the_global_norm_before_the_step():
    res = run("digits_mlp", "adamw", steps=1)
    from optimlab.lab.tasks import get_task

    inst = get_task("digits_mlp").build(0)
    torch.manual_seed(0)
    loss = inst.loss(inst.model, inst.batch(0))
    loss.backward()
    expected = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in inst.model.parameters()))
    assert res.metrics["grad_norm"][0][1] == pytest.approx(expected, rel=1e-5)


def test_lr_is_the_matrix_groups():
    res = run("digits_mlp", "muon", hparams={"lr": 0.03}, steps=3)
    assert [v for _, v in res.metrics["lr"]] == [0.03] * 3  # not the 3e-4 of the head and vectors


def test_telemetry_is_thinned_on_long_runs():
    assert log_every(200) == 1 and log_every(1000) == 5
    res = run("quadratic", "sgd", hparams={"lr": 0.01}, steps=450, task_options=QUAD)
    assert [s for s, _ in res.metrics["lr"]] == [1] + list(range(2, 451, 2))
    assert len(res.metrics["loss"]) == 450


def test_finished_runs_drop_their_checkpoint_unless_asked(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    dropped = run("quadratic", "sgd", hparams={"lr": 0.01}, steps=6, task_options=QUAD, store=store)
    kept = run("quadratic", "sgd", hparams={"lr": 0.02}, steps=6, task_options=QUAD, store=store,
               keep_checkpoint=True)
    assert store.load_checkpoint(dropped.run_id) is None
    assert store.load_checkpoint(kept.run_id)[0] == 6
    assert len(store.metrics(dropped.run_id)["loss"]) == 6  # the metrics stay


def test_eval_ms_is_logged_at_each_evaluation_and_summarised():
    res = run("quadratic", "sgd", hparams={"lr": 0.01}, steps=10, eval_every=5, task_options=QUAD)
    assert [s for s, _ in res.metrics["eval_ms"]] == [0, 5, 10] == [s for s, _ in res.metrics["eval_loss"]]
    assert res.final["eval_ms"] == pytest.approx(sum(v for _, v in res.metrics["eval_ms"]))
    assert res.final["eval_overhead"] > 0
