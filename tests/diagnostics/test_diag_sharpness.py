"""Preconditioned sharpness against dense P^{-1/2} H P^{-1/2}, state lookup, and momentum/Adam thresholds."""
from __future__ import annotations

import pytest
import torch

from optimlab.diagnostics import (adam_threshold, find_second_moment, gd_threshold, momentum_threshold,
                                  preconditioned_sharpness, sgd_trace_bound, stability_threshold)

from diag_helpers import dense_hessian


def _train(opt, model, loss_fn, batch, steps=5):
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model, batch).backward()
        opt.step()


def _dense_preconditioned_top(H: torch.Tensor, P: torch.Tensor) -> float:
    s = P.rsqrt()
    top = float(torch.linalg.eigvalsh(s[:, None] * H * s[None, :])[-1])
    # Same spectrum as the non-symmetric P⁻¹H.
    assert top == pytest.approx(float(torch.linalg.eigvals(H / P[:, None]).real.max()), rel=1e-8)
    return top


@pytest.mark.parametrize("make, expected_threshold", [
    (lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.99), eps=1e-6), 38 / 0.01),
    (lambda ps: torch.optim.AdamW(ps, lr=0.02, betas=(0.8, 0.999), amsgrad=True), 18 / 0.02),
])
def test_adam_preconditioned_sharpness_matches_dense(mlp_problem, make, expected_threshold):
    model, loss_fn, batch = mlp_problem
    opt = make(model.parameters())
    _train(opt, model, loss_fn, batch)
    group = opt.param_groups[0]
    beta2, eps = group["betas"][1], group["eps"]
    key = "max_exp_avg_sq" if group["amsgrad"] else "exp_avg_sq"
    P = torch.cat([((opt.state[p][key] / (1 - beta2 ** float(opt.state[p]["step"]))).sqrt() + eps).reshape(-1)
                   for p in model.parameters()])
    expected = _dense_preconditioned_top(dense_hessian(model, loss_fn, batch), P)
    res = preconditioned_sharpness(opt, model, loss_fn, batch, tol=1e-6)
    assert res.value == pytest.approx(expected, rel=1e-4)
    assert res.threshold == pytest.approx(expected_threshold)
    assert res.ratio == pytest.approx(res.value / res.threshold)
    assert res.num_hvps > 0 and res.data.num_examples == 48


def test_rmsprop_centered_with_momentum(mlp_problem):
    model, loss_fn, batch = mlp_problem
    opt = torch.optim.RMSprop(model.parameters(), lr=0.01, alpha=0.9, eps=1e-5, momentum=0.5, centered=True)
    _train(opt, model, loss_fn, batch)
    P = torch.cat([((opt.state[p]["square_avg"] - opt.state[p]["grad_avg"] ** 2).sqrt() + 1e-5).reshape(-1)
                   for p in model.parameters()])
    expected = _dense_preconditioned_top(dense_hessian(model, loss_fn, batch), P)
    res = preconditioned_sharpness(opt, model, loss_fn, batch, tol=1e-6)
    assert res.value == pytest.approx(expected, rel=1e-4)
    assert res.threshold == pytest.approx(3.0 / 0.01)  # (2 + 2·0.5)/η on λ_max(P⁻¹H)


class NamespacedAdam(torch.optim.Optimizer):
    """Stand-in for an optimlab chain optimizer: state keys "<transform>.<key>", step at top level."""

    def __init__(self, params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["adam.exp_avg"] = torch.zeros_like(p)
                    state["adam.exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                state["adam.exp_avg"].lerp_(p.grad, 1 - b1)
                state["adam.exp_avg_sq"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (state["adam.exp_avg_sq"] / (1 - b2 ** t)).sqrt() + group["eps"]
                p.addcdiv_(state["adam.exp_avg"] / (1 - b1 ** t), denom, value=-group["lr"])


def test_namespaced_optimlab_state_is_found(mlp_problem):
    model, loss_fn, batch = mlp_problem
    opt = NamespacedAdam(model.parameters(), lr=0.01)
    ref = torch.optim.Adam(model.parameters(), lr=0.01)  # same hyperparameters, torch's keys
    _train(opt, model, loss_fn, batch)
    key, tensor = find_second_moment(opt, next(model.parameters()))
    assert key == "adam.exp_avg_sq" and tensor is opt.state[next(model.parameters())]["adam.exp_avg_sq"]
    for p in model.parameters():  # give torch Adam the identical state
        ref.state[p] = {"step": opt.state[p]["step"].clone(), "exp_avg": opt.state[p]["adam.exp_avg"],
                        "exp_avg_sq": opt.state[p]["adam.exp_avg_sq"]}
    ours = preconditioned_sharpness(opt, model, loss_fn, batch, tol=1e-6)
    theirs = preconditioned_sharpness(ref, model, loss_fn, batch, tol=1e-6)
    assert ours.value == pytest.approx(theirs.value, rel=1e-6)
    assert ours.threshold == pytest.approx(38 / 0.01)


def test_missing_second_moment_names_the_optimizer_and_keys(mlp_problem):
    model, loss_fn, batch = mlp_problem
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train(sgd, model, loss_fn, batch, steps=1)
    with pytest.raises(ValueError, match=r"SGD: no second-moment state.*keys found: \['momentum_buffer'\]"):
        preconditioned_sharpness(sgd, model, loss_fn, batch)
    fresh = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match=r"Adam: .*keys found: \[\] \(has the optimizer taken a step\?\)"):
        preconditioned_sharpness(fresh, model, loss_fn, batch)
    with pytest.raises(ValueError, match="optimizer must be a torch.optim.Optimizer"):
        preconditioned_sharpness("adam", model, loss_fn, batch)


def test_stability_threshold_of_each_optimizer(mlp_problem):
    model, loss_fn, batch = mlp_problem
    ps = list(model.parameters())
    assert stability_threshold(torch.optim.SGD(ps, lr=0.1)).value == pytest.approx(20.0)
    heavy = stability_threshold(torch.optim.SGD(ps, lr=0.1, momentum=0.9))
    assert heavy.value == pytest.approx(38.0) and heavy.quantity == "sharpness"
    nesterov = stability_threshold(torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True))
    assert nesterov.value == pytest.approx(3.8 / (0.1 * 2.8))
    adam = stability_threshold(torch.optim.Adam(ps, lr=0.001))
    assert adam.value == pytest.approx(38000.0) and adam.quantity == "preconditioned sharpness"
    assert stability_threshold(torch.optim.RMSprop(ps, lr=0.01)).value == pytest.approx(200.0)
    with pytest.raises(ValueError, match="cannot infer a stability threshold for Adagrad"):
        stability_threshold(torch.optim.Adagrad(ps))
    import optimlab

    ours = stability_threshold(optimlab.create(ps, "sgd", lr=0.1, momentum=0.9))
    assert ours.value == pytest.approx(38.0) and ours.quantity == "sharpness"
    split = torch.optim.SGD([{"params": ps[:2], "lr": 0.1}, {"params": ps[2:], "lr": 0.2}])
    with pytest.raises(ValueError, match="param groups disagree on 'lr'"):
        stability_threshold(split)


def _diverges(step_fn, lam: float, steps: int = 1500) -> bool:
    theta = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = step_fn([theta])
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * lam * theta ** 2).sum().backward()
        opt.step()
    return not abs(float(theta.detach())) < 1.0


@pytest.mark.parametrize("make, threshold", [
    (lambda ps: torch.optim.SGD(ps, lr=0.1), gd_threshold(0.1)),
    (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), momentum_threshold(0.1, 0.9)),
    (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.5, dampening=0.5), momentum_threshold(0.1, 0.5, dampening=0.5)),
    (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True), momentum_threshold(0.1, 0.9, nesterov=True)),
])
def test_momentum_thresholds_are_the_linear_stability_limits(make, threshold):
    assert not _diverges(make, 0.98 * threshold)
    assert _diverges(make, 1.02 * threshold)


def test_adam_threshold_is_the_ema_momentum_limit_with_frozen_preconditioner():
    # Frozen P: θ ← θ − η m, m ← β1 m + (1 − β1) P⁻¹g; on P⁻¹H = λ the limit is (2+2β1)/((1−β1)η).
    lr, beta1 = 0.01, 0.9
    limit = adam_threshold(lr, beta1)
    assert limit == pytest.approx(38 / lr)
    for lam, should_diverge in [(0.98 * limit, False), (1.02 * limit, True)]:
        theta, m = 1.0, 0.0
        for _ in range(5000):
            m = beta1 * m + (1 - beta1) * lam * theta
            theta -= lr * m
        assert (not abs(theta) < 1.0) == should_diverge  # nan (overflow) counts as diverged
    assert sgd_trace_bound(0.1) == pytest.approx(20.0)


@pytest.mark.parametrize("call, message", [
    (lambda: gd_threshold(0), "lr must be a positive number"),
    (lambda: momentum_threshold(0.1, 1.0), r"momentum must be in \[0, 1\)"),
    (lambda: momentum_threshold(0.1, 0.9, nesterov=True, dampening=0.1), "nesterov momentum needs dampening 0"),
    (lambda: adam_threshold(0.1, -0.1), r"momentum must be in \[0, 1\)"),
])
def test_threshold_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("name", ["adam", "amsgrad"])
def test_optimlab_chain_optimizers_work(mlp_problem, name):
    optimlab = pytest.importorskip("optimlab")
    if not hasattr(optimlab, "create") or name not in optimlab.available():
        pytest.skip(f"optimlab has no {name!r} recipe in this checkout")
    model, loss_fn, batch = mlp_problem
    opt = optimlab.create(model, name, lr=0.01)
    _train(opt, model, loss_fn, batch)
    parts = []
    for p in model.parameters():
        state = opt.state[p]
        key = next(k for k in state if k.endswith(".max_exp_avg_sq")) if name == "amsgrad" else \
            next(k for k in state if k.endswith(".exp_avg_sq"))
        group = next(g for g in opt.param_groups if any(q is p for q in g["params"]))
        beta2, eps = group["betas"][1], group["eps"]
        parts.append(((state[key] / (1 - beta2 ** float(state["step"]))).sqrt() + eps).reshape(-1))
    expected = _dense_preconditioned_top(dense_hessian(model, loss_fn, batch), torch.cat(parts))
    res = preconditioned_sharpness(opt, model, loss_fn, batch, tol=1e-6)
    assert res.value == pytest.approx(expected, rel=1e-4)
    assert res.threshold == pytest.approx(38 / 0.01)
