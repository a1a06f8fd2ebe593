"""Update geometry: closed-form cases, a Newton–Schulz sweep, and descent potential against dense curvature."""
from __future__ import annotations

import math

import pytest
import torch

from optimlab.diagnostics import (alignment, capture_update, condition_number, descent_potential,
                                  orthogonality_error, row_norm_imbalance, stable_rank, update_geometry)

from diag_helpers import dense_hessian


def _orthogonal(m: int, n: int, seed: int = 0) -> torch.Tensor:
    Q, _ = torch.linalg.qr(torch.randn(m, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return Q


def test_closed_form_values():
    Q = _orthogonal(8, 5)
    assert stable_rank(Q) == pytest.approx(5.0) and condition_number(Q) == pytest.approx(1.0)
    assert orthogonality_error(3 * Q) == pytest.approx(0.0, abs=1e-12)  # any multiple of an orthogonal matrix
    assert orthogonality_error(3 * Q, scale=1.0) == pytest.approx(2.0)
    D = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64))
    assert stable_rank(D) == pytest.approx(14 / 9) and condition_number(D) == pytest.approx(3.0)
    assert orthogonality_error(D, scale=1.0) == pytest.approx(2.0)
    rank_one = torch.outer(torch.ones(4), torch.arange(1.0, 4.0))
    assert stable_rank(rank_one) == pytest.approx(1.0) and condition_number(rank_one) == math.inf
    rows = torch.diag(torch.tensor([1.0, 1.0, 2.0, 2.0]))  # row norms 1, 1, 2, 2: mean 1.5, std 0.5
    assert row_norm_imbalance(rows) == pytest.approx(1 / 3)
    assert row_norm_imbalance(_orthogonal(6, 6)) == pytest.approx(0.0, abs=1e-12)
    G = torch.randn(5, 4, dtype=torch.float64)
    assert alignment(G, G) == pytest.approx(1.0) and alignment(-2 * G, G) == pytest.approx(-1.0)


def test_update_geometry_bundles_the_same_numbers():
    U = torch.randn(6, 3, 2, 2, generator=torch.Generator().manual_seed(1))  # conv kernel: viewed as 6 × 12
    G = torch.randn(6, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    geo = update_geometry(U, G)
    assert geo.shape == (6, 3, 2, 2)
    assert geo.stable_rank == pytest.approx(stable_rank(U)) and geo.condition_number == pytest.approx(condition_number(U))
    assert geo.orthogonality_error == pytest.approx(orthogonality_error(U))
    assert geo.row_norm_cv == pytest.approx(row_norm_imbalance(U)) and geo.alignment == pytest.approx(alignment(U, G))
    assert geo.as_dict()["frobenius_norm"] == pytest.approx(float(U.norm()), rel=1e-6)


def test_newton_schulz_drives_the_update_toward_orthogonal():
    # Classical cubic Newton–Schulz X ← 1.5X − 0.5XXᵀX on a gradient with spread singular values:
    # orthogonality error and condition number fall, stable rank rises to min(m, n).
    G = torch.randn(16, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    G = G @ torch.diag(torch.logspace(0, -2, 8, dtype=torch.float64))
    X = G / torch.linalg.matrix_norm(G, ord=2)
    errors, ranks = [], []
    for _ in range(30):
        errors.append(orthogonality_error(X, scale=1.0))
        ranks.append(stable_rank(X))
        X = 1.5 * X - 0.5 * X @ X.T @ X
    assert errors[0] > 0.9 and errors[-1] < 1e-6 and ranks[-1] == pytest.approx(8.0, rel=1e-6)
    assert ranks[0] < 3 and condition_number(X) == pytest.approx(1.0, rel=1e-6)
    assert alignment(X, G) > 0  # orthogonalized gradient is still a descent direction


def test_descent_potential_matches_dense_second_order_model(mlp_problem):
    model, loss_fn, batch = mlp_problem
    H = dense_hessian(model, loss_fn, batch)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    opt.zero_grad()
    loss_fn(model, batch).backward()
    g = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone()
    with capture_update(model) as cap:
        opt.step()
    d = torch.cat([u.reshape(-1) for u in cap.updates.values()])
    torch.testing.assert_close(d, 0.05 * g)  # SGD's step is lr · gradient
    assert cap.geometry()["0.weight"].alignment == pytest.approx(1.0)
    with torch.no_grad():  # evaluate at the point before the step
        for p, u in zip(model.parameters(), cap.updates.values()):
            p.add_(u)
    res = descent_potential(model, loss_fn, batch, cap.updates, lr=1.0)
    assert res.slope == pytest.approx(float(g @ d), rel=1e-8)
    assert res.curvature == pytest.approx(float(d @ H @ d), rel=1e-8)
    assert res.optimal_step == pytest.approx(float(g @ d) / float(d @ H @ d), rel=1e-8)
    assert res.potential == pytest.approx(float(g @ d) ** 2 / (2 * float(d @ H @ d)), rel=1e-8)
    assert res.alignment == pytest.approx(1.0) and res.step_ratio == pytest.approx(1 / res.optimal_step)
    # The quadratic model predicts the actual decrease of this small step to third order.
    before = float(loss_fn(model, batch).detach())
    with torch.no_grad():
        for p, u in zip(model.parameters(), cap.updates.values()):
            p.sub_(u)
    actual = before - float(loss_fn(model, batch).detach())
    assert actual == pytest.approx(res.predicted_decrease, rel=1e-2)


@pytest.mark.parametrize("call, message", [
    (lambda: stable_rank(torch.ones(3)), "at least 2 dimensions"),
    (lambda: alignment(torch.ones(2, 2), torch.ones(3, 2)), "grad must be a tensor shaped like the update"),
    (lambda: orthogonality_error(torch.eye(2), scale=-1.0), "scale must be a positive number"),
])
def test_geometry_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_descent_potential_bad_direction(mlp_problem):
    with pytest.raises(ValueError, match=r"unknown or frozen parameters: \['nope'\]"):
        descent_potential(*mlp_problem, {"nope": torch.zeros(2)})
    with pytest.raises(ValueError, match="flat tensor of length 111"):
        descent_potential(*mlp_problem, torch.zeros(5))
