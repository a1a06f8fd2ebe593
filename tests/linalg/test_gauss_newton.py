"""EGN's Duncan–Guttman direction equals the dense damped Gauss–Newton solve; the per-sample Jacobians
reproduce autograd's gradient; the line-searched step decreases the loss."""

import pytest
import torch
from torch import nn

from optimlab.linalg.gauss_newton import (dense_gn_direction, egn_direction, egn_step, output_derivatives,
                                          per_sample_jacobian)


def net_and_batch(c, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 12), nn.Tanh(), nn.Linear(12, c)).double()
    x = torch.randn(32, 8, dtype=torch.float64)
    y = torch.randn(32, c, dtype=torch.float64) if c == 1 else torch.randint(0, c, (32,))
    return model, x, y


@pytest.mark.parametrize("loss,c", [("mse", 1), ("cross_entropy", 4)])
def test_egn_direction_equals_dense_solve_and_gradient_matches_autograd(loss, c):
    model, x, y = net_and_batch(c)
    out, J = per_sample_jacobian(model, x)
    r, Q = output_derivatives(loss, out, y)
    # (1/b) Jᵀ r is the gradient of the mean loss
    f = model(x)
    L = 0.5 * (f - y).square().sum(1).mean() if loss == "mse" else nn.functional.cross_entropy(f, y)
    grads = torch.autograd.grad(L, list(model.parameters()))
    torch.testing.assert_close(J.T @ r / 32, torch.cat([g.reshape(-1) for g in grads]), rtol=1e-10, atol=1e-12)
    for damp in (1e-3, 1e-1):
        got, want = egn_direction(J, Q, r, damp, 32), dense_gn_direction(J, Q, r, damp, 32)
        assert torch.linalg.vector_norm(got - want) <= 1e-8 * torch.linalg.vector_norm(want)


def test_egn_step_decreases_the_loss():
    model, x, y = net_and_batch(1, seed=1)

    def loss_fn():
        return 0.5 * (model(x) - y).square().sum(1).mean()

    before = float(loss_fn())
    for _ in range(5):
        info = egn_step(model, "mse", x, y, loss_fn, damp=1e-3)
        assert info["armijo"] and info["loss_after"] < info["loss_before"]
    assert float(loss_fn()) < 0.5 * before
