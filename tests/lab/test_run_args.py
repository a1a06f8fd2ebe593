"""lab/run_args.py: run()'s argument checks and defaults, in run()'s order, before anything is built."""
from __future__ import annotations

import pytest

from optimlab.lab import run_args, steplog

OK = dict(hparams=None, seed=0, steps=None, task_options=None, eval_every=None, checkpoint_every=None, threads=1,
          restart=False, sharpness_every=None, branch_from=None)


def check(task="quadratic", optimizer="adamw", **kw):
    return run_args.check(task, optimizer, **{**OK, **kw})


def test_defaults_come_from_the_task():
    a = check()
    assert a.hparams == dict(a.task.spec.adamw)  # adamw with no hparams: the task's settings
    assert a.steps == a.task.spec.default_steps
    assert a.eval_every == steplog.default_eval_every(a.steps, getattr(a.task, "eval_cost", 1.0))
    assert a.checkpoint_every == a.eval_every
    assert a.options == a.task.options and a.options["dim"] == 100


def test_given_values_are_kept_and_branch_from_is_recorded():
    a = check(optimizer="sgd", hparams={"lr": 0.1}, steps=7, eval_every=3, task_options={"dim": 5}, branch_from=4)
    assert a.hparams == {"lr": 0.1, "branch_from": 4}
    assert (a.steps, a.eval_every, a.checkpoint_every) == (7, 3, 3)
    assert a.options["dim"] == 5
    assert check(optimizer="sgd").hparams == {}  # not adamw: the optimizer's own defaults fill in
    assert check(optimizer="adamw", hparams={"lr": 1.0}).hparams == {"lr": 1.0}


@pytest.mark.parametrize("kw, exc, message", [
    (dict(restart=1), TypeError, r"run: restart must be a bool, got 1"),
    (dict(threads=0), ValueError, r"run: threads must be an int >= 1, got 0"),
    (dict(threads=True), ValueError, r"run: threads must be an int >= 1, got True"),
    (dict(task="quadratc"), ValueError, r"unknown task 'quadratc'"),
    (dict(optimizer="sgdd"), ValueError, r"unknown optimizer 'sgdd'"),
    (dict(steps=0), ValueError, r"run: steps must be an int >= 1, got 0"),
    (dict(eval_every=2.0), ValueError, r"run: eval_every must be an int >= 1, got 2\.0"),
    (dict(checkpoint_every=False), ValueError, r"run: checkpoint_every must be an int >= 1, got False"),
    (dict(sharpness_every=0), ValueError, r"run: sharpness_every must be an int >= 1, got 0"),
    (dict(seed=-1), ValueError, r"run: seed must be an int >= 0, got -1"),
    (dict(hparams={"lr": object()}), TypeError, r"not JSON serialisable"),  # the store could not record it
])
def test_each_bad_argument_raises_its_message(kw, exc, message):
    with pytest.raises(exc, match=message):
        check(**kw)


def test_checks_run_in_order_first_bad_argument_wins():
    with pytest.raises(TypeError, match="restart"):
        check(restart=None, threads=0, task="nope")
    with pytest.raises(ValueError, match="threads"):
        check(threads=0, task="nope")
    with pytest.raises(ValueError, match="unknown task"):
        check(task="nope", optimizer="nope", steps=0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        check(optimizer="nope", steps=0)
    with pytest.raises(ValueError, match="steps"):
        check(steps=0, seed=-1)
