"""Properties of the issue-10 first-order methods beyond their reference parity: the Exp(1) draws, checkpoints
of random-scaling SGDM, the secant correction's limits, step sizes of the normalized methods, AccSGD's constants."""

import io
import math

import pytest
import torch

import optimlab
from optimlab.transforms.extrapolation import accsgd_coefficients, exp1_draw


def test_exp1_draws_are_exponential_and_seeded():
    n = 20000
    draws = torch.tensor([exp1_draw(7, t) for t in range(1, n + 1)], dtype=torch.float64)
    assert (draws >= 0).all()
    assert abs(draws.mean().item() - 1.0) < 0.03  # sd of the mean: 1/sqrt(n) = 0.007
    assert abs(draws.var().item() - 1.0) < 0.1
    # Kolmogorov–Smirnov distance to the Exp(1) CDF; 1.63/sqrt(n) = 0.0115 is the 1% critical value
    x = draws.sort().values
    cdf = 1 - torch.exp(-x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    ks = torch.maximum(i / n - cdf, cdf - (i - 1) / n).max().item()
    assert ks < 0.0115
    assert exp1_draw(7, 5) == exp1_draw(7, 5)
    assert exp1_draw(7, 5) != exp1_draw(8, 5)
    # successive draws are not correlated
    assert abs(torch.corrcoef(torch.stack([draws[:-1], draws[1:]]))[0, 1].item()) < 0.03


def test_random_scaling_shares_s_t_across_parameters_and_groups():
    """Two parameters in different param groups with the same gradient move by the same random multiple."""
    a = torch.nn.Parameter(torch.zeros(3))
    b = torch.nn.Parameter(torch.zeros(2, 3))
    opt = optimlab.create([{"params": [a]}, {"params": [b]}], "random_scaling_sgdm", lr=0.1, momentum=0.0, seed=5)
    for t in range(1, 4):
        a.grad, b.grad = torch.ones(3), torch.ones(2, 3)
        before = a.detach().clone()
        opt.step()
        step_a = (before - a.detach())[0].item()
        assert step_a == pytest.approx(0.1 * exp1_draw(5, t), rel=1e-6)
        assert torch.equal(a.detach().expand(2, 3), b.detach())


def test_random_scaling_checkpoint_is_plain_data_and_resumes_identically():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = optimlab.create(model.parameters(), "random_scaling_sgdm", lr=0.05, seed=11)
    data = [(torch.randn(8, 4), torch.randn(8, 2)) for _ in range(10)]

    def train(m, o, batches):
        for x, y in batches:
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            o.step()

    train(model, opt, data[:5])
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    train(model, opt, data[5:])
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # plain tensors and numbers: no unpickling of objects
    clone = torch.nn.Linear(4, 2)
    clone.load_state_dict(saved["model"])
    opt2 = optimlab.create(clone.parameters(), "random_scaling_sgdm", lr=0.05, seed=11)
    opt2.load_state_dict(saved["opt"])
    train(clone, opt2, data[5:])
    for p, q in zip(model.parameters(), clone.parameters()):
        assert torch.equal(p, q)


def _run(name, steps=12, **hp):
    g = torch.Generator().manual_seed(2)
    ps = [torch.nn.Parameter(torch.randn(5, 4, generator=g, dtype=torch.float64)),
          torch.nn.Parameter(torch.randn(3, generator=g, dtype=torch.float64))]
    opt = optimlab.create(ps, name, **hp)
    for _ in range(steps):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64) + 0.5 * p.detach()
        opt.step()
    return ps


def test_secant_adam_without_gain_is_adam_and_its_first_step_is_adams():
    hp = dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.01)
    for a, b in zip(_run("secant_adam", secant_gain=0.0, **hp), _run("adam", **hp)):
        assert torch.equal(a, b)
    for a, b in zip(_run("secant_adam", steps=1, **hp), _run("adam", steps=1, **hp)):
        assert torch.equal(a, b)
    far = max((a - b).abs().max().item() for a, b in zip(_run("secant_adam", **hp), _run("adam", **hp)))
    assert far > 1e-4  # the correction acts from the second step on


def test_normalized_gd_steps_have_norm_lr_and_zero_gradients_stay_put():
    p, q = torch.nn.Parameter(torch.ones(4, 3)), torch.nn.Parameter(torch.ones(5))
    opt = optimlab.create([p, q], "normalized_gd", lr=0.1)
    p.grad, q.grad = torch.randn(4, 3) * 100, torch.zeros(5)
    before = p.detach().clone()
    opt.step()
    assert (before - p.detach()).norm().item() == pytest.approx(0.1, rel=1e-5)
    assert torch.equal(q.detach(), torch.ones(5))


def test_adagrad_norm_first_step():
    p = torch.nn.Parameter(torch.zeros(6))
    opt = optimlab.create([p], "adagrad_norm", lr=0.2, b0=0.5)
    p.grad = torch.full((6,), 2.0)
    opt.step()
    gnorm = 2.0 * math.sqrt(6)
    assert p.detach().norm().item() == pytest.approx(0.2 * gnorm / math.sqrt(0.25 + gnorm**2), rel=1e-6)


def test_accsgd_constants_of_kidambi_et_al_defaults():
    alpha, beta, rho = accsgd_coefficients(1000.0, 10.0, 0.7)
    # AccSGD: Alpha = 1 − c²ξ/κ, Beta = 1 − Alpha, zeta = c/(c + Beta), long step = lr·κ/c, scaled by Beta
    assert beta == pytest.approx(0.0049)
    assert alpha == pytest.approx(0.7 / (0.7 + 0.0049))
    assert rho == pytest.approx(0.0049 * 1000.0 / 0.7)


def test_optimistic_amsgrad_first_step_adds_the_optimistic_half_step():
    """Step 1 from w_½ = w_1: w_2 = w_1 − lr·(θ_1 + h_2)/d with θ_1 = (1−β1)g, h_2 = β1θ_1 + (1−β1)g."""
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = optimlab.create([p], "optimistic_amsgrad", lr=0.1, betas=(0.9, 0.99), eps=0.0)
    g = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    p.grad = g
    opt.step()
    theta = 0.1 * g
    h = 0.9 * theta + 0.1 * g
    d = (0.01 * g * g).sqrt()
    assert torch.allclose(p.detach(), -0.1 * (theta + h) / d, rtol=1e-12, atol=0)
