"""optimlab.lab.schedules: WSD / WSD-S / cyclic cosine multipliers, spec parsing, the runner hook (resume keeps
the schedule), the square-root scaling rule and the norm-test batch controller."""
from __future__ import annotations

import math

import pytest
import torch

from optimlab.lab import schedules
from optimlab.lab.runner import run
from optimlab.lab.store import RunStore


def test_wsd_shape():
    f = schedules.wsd(100, warmup=0.1, decay=0.2)
    assert [f(t) for t in range(10)] == pytest.approx([(t + 1) / 10 for t in range(10)])
    assert all(f(t) == 1.0 for t in range(10, 80))
    decay = [f(t) for t in range(80, 100)]
    assert all(a > b for a, b in zip(decay, decay[1:])) and decay[-1] == 0.0
    assert schedules.wsd(100, decay=0.2, shape="sqrt")(90) == pytest.approx(1 - math.sqrt(11 / 20))
    with pytest.raises(ValueError, match="fraction"):
        schedules.wsd(100, decay=1.5)


def test_wsd_s_decays_before_each_budget_and_resumes_at_the_peak():
    f = schedules.wsd_s([100, 200], decay=0.1)
    assert f(89) == 1.0 and f(90) < 1.0 and f(99) == 0.0
    assert f(100) == 1.0 and f(179) == 1.0 and f(199) == 0.0
    assert schedules.wsd_branches([200, 100], decay=0.1) == [(90, 10), (180, 20)]


def test_cyclic_cosine_restarts():
    f = schedules.cyclic_cosine(10, min_ratio=0.1)
    assert f(9) == pytest.approx(0.1) and f(10) == pytest.approx(f(0)) and f(0) > 0.97


def test_from_spec():
    f = schedules.from_spec("wsd(decay=0.5, warmup=0.0)", total=10)
    assert [f(t) for t in (0, 4, 9)] == [1.0, 1.0, 0.0]
    assert schedules.from_spec("wsd_s(budgets=(10, 20), decay=0.5)", total=20)(9) == 0.0
    assert schedules.from_spec("constant", total=5)(3) == 1.0
    with pytest.raises(ValueError, match="unknown schedule 'wds'"):
        schedules.from_spec("wds(decay=0.1)", 10)


def test_lambda_lr_compatible():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedules.wsd(4, decay=0.5))
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.5, 0.5, 0.25, 0.0])


def test_runner_applies_the_schedule_and_resume_is_bit_identical(tmp_path):
    kw = dict(steps=12, eval_every=3, checkpoint_every=5, task_options={"dim": 20, "noise": 0.1},
              hparams={"lr": 0.05, "schedule": "wsd(decay=0.5)"})
    seen = []

    def spy(step, loss, box=[]):  # noqa: B006
        seen.append(step)

    reference = run("quadratic", "sgd", store=tmp_path / "ref.db", **kw)
    plain = run("quadratic", "sgd", store=tmp_path / "plain.db", **{**kw, "hparams": {"lr": 0.05}})
    assert reference.final["eval_loss"] != plain.final["eval_loss"]  # the decay changed the run
    store = RunStore(tmp_path / "runs.db")

    def interrupt(step, loss):
        if step == 7:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run("quadratic", "sgd", store=store, on_step=interrupt, **kw)
    resumed = run("quadratic", "sgd", store=store, on_step=spy, **kw)
    assert resumed.resumed_from == 5 and seen == list(range(6, 13))
    for a, b in zip(resumed.model.parameters(), reference.model.parameters()):
        assert torch.equal(a, b)


def test_sqrt_scaling_rule():
    hp = schedules.sqrt_scaling({"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}, 4)
    assert hp["lr"] == pytest.approx(2e-3) and hp["betas"] == pytest.approx((0.6, 0.996))
    assert hp["eps"] == pytest.approx(5e-9) and hp["weight_decay"] == 0.1
    back = schedules.sqrt_scaling(hp, 0.25)
    assert back["lr"] == pytest.approx(1e-3) and back["betas"] == pytest.approx((0.9, 0.999))
    with pytest.raises(ValueError, match="outside"):
        schedules.sqrt_scaling({"betas": (0.9, 0.999)}, 20)


def test_norm_test_grows_the_batch_only_when_noise_dominates():
    ctl = schedules.NormTest(eta=0.5, batch=8)
    signal = torch.ones(8, 3)  # identical per-example gradients: no variance
    assert ctl.update(signal) == 8
    noisy = torch.ones(8, 3) + 10 * torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    grown = ctl.update(noisy)
    mean = noisy.mean(0)
    var = float(((noisy - mean) ** 2).sum() / 7)
    assert grown == min(4096, math.ceil(var / (0.25 * float(mean @ mean)))) and grown > 8
    assert ctl.update(signal) == grown  # never shrinks
