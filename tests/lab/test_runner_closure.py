"""The runner hands a closure to recipes that read the loss (issue 10), without an extra evaluation."""

import pytest
import torch

import optimlab
from optimlab.lab.runner import run
from optimlab.lab.tasks import get_task

# (Gauss–Newton recipes also need the model's outputs, which the quadratic task does not expose: the runner
# refuses them there; they train on digits_mlp in tests/optimizers/test_ggn.py)
LOSS_READERS = [n for n in optimlab.available() if optimlab.describe(n).needs & {"loss", "reevaluate", "hvp"}
                and "outputs" not in optimlab.describe(n).needs]


def test_there_are_loss_reading_recipes():
    assert {"sps", "aegd"} <= set(LOSS_READERS)


@pytest.mark.parametrize("name", LOSS_READERS)
def test_runner_trains_closure_recipes(name):
    # Gauss–Newton recipes need the model's outputs and targets, which the classification tasks expose
    task = "digits_mlp" if "outputs" in optimlab.describe(name).needs else "quadratic"
    res = run(task, name, steps=30, seed=0)
    assert res.ok, res.error
    losses = [v for _, v in res.metrics["loss"]]
    assert losses[-1] < losses[0]


def test_runner_step_equals_a_hand_written_closure_loop():
    res = run("quadratic", "sps", steps=10, seed=0, keep_checkpoint=False)
    task = get_task("quadratic")
    inst = task.build(0)
    opt = optimlab.create(inst.model, "sps", **inst.role_hints)
    losses = []
    for step in range(10):
        batch = inst.batch(step)

        def closure(batch=batch):
            opt.zero_grad()
            loss = inst.loss(inst.model, batch)
            loss.backward()
            return loss

        losses.append(float(opt.step(closure).detach()))
    assert [v for _, v in res.metrics["loss"]] == pytest.approx(losses, rel=1e-6)
    assert "evals" not in res.metrics  # one evaluation per step: nothing extra to log
