"""The runner's adaptive batch size: the norm test over accumulated task batches (lab/batching.py)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from optimlab.lab.batching import NormTestControl
from optimlab.lab.runner import run
from optimlab.lab.store import RunStore

CTL = "norm_test(eta=0.3, start=2, max_mult=16)"


class _Toy:
    """A linear least-squares task with explicit batches: the test computes every batch gradient itself."""

    def __init__(self, noise: float):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(40, 5, 3, generator=g)
        self.y = self.x.sum(-1) + noise * torch.randn(40, 5, generator=g)

    def batch(self, i):
        return self.x[i], self.y[i]

    def loss(self, model, batch):
        x, y = batch
        return ((model(x).squeeze(-1) - y) ** 2).mean()


@pytest.mark.parametrize("noise", [0.0, 3.0])
def test_gradient_is_the_mean_and_the_next_multiplier_is_the_norm_test(noise):
    task, model = _Toy(noise), nn.Linear(3, 1)
    ctl = NormTestControl(eta=0.5, start=3, max_mult=64)
    ctl.next_batch = 4
    loss, logged = ctl.step(task, model)
    grads = []
    for i in (4, 5, 6):  # each batch's own gradient, by hand
        m2 = nn.Linear(3, 1)
        m2.load_state_dict(model.state_dict())
        task.loss(m2, task.batch(i)).backward()
        grads.append(torch.cat([m2.weight.grad.reshape(-1), m2.bias.grad]))
    G = torch.stack(grads)
    got = torch.cat([model.weight.grad.reshape(-1), model.bias.grad])
    torch.testing.assert_close(got, G.mean(0), rtol=1e-6, atol=1e-7)
    s2 = float(((G - G.mean(0)) ** 2).sum() / 2)
    g2 = float(G.mean(0) @ G.mean(0))
    expect = max(3, math.ceil(s2 / (0.25 * g2))) if s2 / 3 > 0.25 * g2 else 3
    assert ctl.mult == min(64, expect) and ctl.next_batch == 7
    assert dict(logged) == {"batch": 15.0, "batch_mult": 3.0, "next_mult": float(ctl.mult)}
    assert float(loss) == pytest.approx(sum(float(task.loss(model, task.batch(i))) for i in (4, 5, 6)) / 3)
    if noise == 3.0:
        assert ctl.mult > 3  # noisy gradients fail the test: the batch grows


def test_runner_grows_the_batch_and_resumes_bit_identically(tmp_path):
    kw = dict(hparams={"lr": 0.1, "batch_control": CTL}, steps=12, eval_every=4, checkpoint_every=5)
    ref = run("digits_mlp", "adagrad_norm", store=tmp_path / "ref.db", **kw)
    assert ref.ok
    mults = [v for _, v in ref.metrics["batch_mult"]]
    assert len(mults) == 12 and mults[0] == 2 and mults == sorted(mults) and 2 < max(mults) <= 16
    assert [v for _, v in ref.metrics["batch"]] == [64 * m for m in mults]
    store = RunStore(tmp_path / "runs.db")

    def interrupt(step, loss):
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run("digits_mlp", "adagrad_norm", store=store, on_step=interrupt, **kw)
    resumed = run("digits_mlp", "adagrad_norm", store=store, **kw)
    assert resumed.resumed_from == 5
    for name in ("loss", "batch_mult", "batch", "next_mult"):
        assert resumed.metrics[name] == ref.metrics[name], name
    for a, b in zip(resumed.model.parameters(), ref.model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("task, optimizer, spec, match", [
    ("quadratic", "adagrad_norm", CTL, "full-batch"),
    ("digits_mlp", "oasis", CTL, "re-evaluates the loss"),
    ("digits_mlp", "adagrad_norm", "norm_test(eta=-1)", "eta must be"),
    ("digits_mlp", "adagrad_norm", "norm_test(start=1)", "start must be"),
    ("digits_mlp", "adagrad_norm", "norm_test(start=9, max_mult=4)", "must not exceed"),
    ("digits_mlp", "adagrad_norm", "norm_test(size=3)", "unknown options"),
    ("digits_mlp", "adagrad_norm", "doubling()", "unknown batch_control"),
    ("digits_mlp", "adagrad_norm", "norm_test(eta=__import__('os'))", "keyword literals"),
])
def test_bad_batch_control_is_refused_before_a_run_is_written(tmp_path, task, optimizer, spec, match):
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises((ValueError, TypeError), match=match):
        run(task, optimizer, hparams={"batch_control": spec}, steps=3, store=store)
    assert store.find_runs() == []
