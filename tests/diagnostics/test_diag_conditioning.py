"""The Łojasiewicz-exponent fit and the conditioning diagnostics (issue 15, helper wp5a)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from optimlab.diagnostics import (LojasiewiczTracker, WeightConditionTracker, layer_condition_numbers,
                                  lojasiewicz_fit, model_condition_number, operator_condition_number)
from optimlab.diagnostics.operators import DenseOperator


def test_lojasiewicz_fit_recovers_a_planted_exponent():
    losses = [2.0 * (t + 1) ** -1.5 for t in range(50)]
    grads = [3.0 * l ** 0.7 for l in losses]
    fit = lojasiewicz_fit([l + 0.1 for l in losses], grads, l_star=0.1)
    assert fit.exponent == pytest.approx(0.7, abs=1e-9)
    assert fit.constant == pytest.approx(3.0, rel=1e-9) and fit.r2 == pytest.approx(1.0)


def test_gradient_descent_on_a_quadratic_has_exponent_one_half():
    torch.manual_seed(0)
    q = torch.randn(8, 8, dtype=torch.float64)
    a = q @ q.T + torch.eye(8, dtype=torch.float64)
    x = torch.randn(8, dtype=torch.float64, requires_grad=True)
    tracker = LojasiewiczTracker()
    lr = 1.0 / float(torch.linalg.eigvalsh(a)[-1])
    for _ in range(200):
        loss = 0.5 * x @ a @ x
        loss.backward()
        tracker.record(loss, [x])
        with torch.no_grad():
            x -= lr * x.grad
        x.grad = None
    # late in the run GD moves along the smallest eigenvector: ‖∇L‖ = √(2λ_min L)
    fit = tracker.fit(0.0, start=100)
    assert fit.exponent == pytest.approx(0.5, abs=0.02)


def test_lojasiewicz_fit_rejects_too_few_points():
    with pytest.raises(ValueError, match=">= 3 points"):
        lojasiewicz_fit([1.0, 0.0, 0.5], [1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="same loss gap"):
        lojasiewicz_fit([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])


def test_layer_condition_numbers_of_known_matrices():
    model = nn.Sequential(nn.Linear(3, 3, bias=True), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.diag(torch.tensor([1.0, -2.0, 8.0])))
        model[1].weight.zero_()
    kappa = layer_condition_numbers(model)
    assert set(kappa) == {"0.weight", "1.weight"}  # biases are vectors
    assert kappa["0.weight"] == pytest.approx(8.0) and math.isinf(kappa["1.weight"])
    tracker = WeightConditionTracker(model)
    tracker.record(0)
    tracker.record(5)
    assert tracker.history["0.weight"] == [(0, pytest.approx(8.0)), (5, pytest.approx(8.0))]


def test_operator_condition_number_ignores_the_null_space():
    op = DenseOperator(torch.diag(torch.tensor([0.0, 1e-14, 0.5, 2.0, 10.0], dtype=torch.float64)))
    res = operator_condition_number(op)
    assert res.condition == pytest.approx(20.0) and res.rank == 3 and res.negative == 0
    res = operator_condition_number(op, rank_tol=0.0)
    assert res.condition == pytest.approx(1e15)


def test_model_condition_number_of_least_squares_is_that_of_the_gram_matrix():
    torch.manual_seed(1)
    x = torch.randn(20, 4, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0, 10.0], dtype=torch.float64)
    y = torch.randn(20, 1, dtype=torch.float64)
    model = nn.Linear(4, 1, bias=False).double()
    loss_fn = lambda m, batch: 0.5 * (m(batch[0]) - batch[1]).pow(2).mean()  # noqa: E731
    res = model_condition_number(model, loss_fn, (x, y), operator="hessian")
    ev = torch.linalg.eigvalsh(x.T @ x)
    assert res.condition == pytest.approx(float(ev[-1] / ev[0]), rel=1e-8)
