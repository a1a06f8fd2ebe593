"""Hutchinson and Hutch++ trace estimates: within 3 standard errors, and calibrated standard errors."""
from __future__ import annotations

import pytest
import torch

from optimlab.diagnostics import DenseOperator, hessian_trace, hutchinson, hutchpp

from diag_helpers import quadratic_matrix


@pytest.mark.parametrize("method", ["hutchinson", "hutchpp"])
def test_mlp_trace_within_three_standard_errors(mlp_problem, mlp_hessian, method):
    exact = float(torch.trace(mlp_hessian))
    res = hessian_trace(*mlp_problem, method=method, num_hvps=60, seed=1)
    assert res.num_hvps == 60 and res.std_error > 0
    assert abs(res.value - exact) <= 3 * res.std_error
    assert abs(res.value - exact) / abs(exact) < 0.15  # and the error bar itself is informative
    assert res.data.num_examples == 48


@pytest.mark.parametrize("estimator, budget", [(hutchinson, 30), (hutchpp, 30)])
def test_standard_error_is_calibrated_on_a_quadratic(estimator, budget):
    # Over many seeds, |error| <= 2 SE should hold about 95% of the time (t-quantiles make it ~94%).
    lam = torch.cat([torch.tensor([20.0, 10.0, 5.0], dtype=torch.float64), torch.rand(97, dtype=torch.float64,
                                                                                   generator=torch.Generator().manual_seed(0))])
    op = DenseOperator(quadratic_matrix(lam))
    exact = float(lam.sum())
    hits = sum(abs(r.value - exact) <= 2 * r.std_error
               for r in (estimator(op, budget, seed=s) for s in range(200)))
    assert 0.86 <= hits / 200 <= 0.99


def test_hutchpp_beats_hutchinson_on_a_spectrum_with_outliers():
    lam = torch.cat([torch.logspace(2, 0, 10, dtype=torch.float64), torch.full((190,), 0.01, dtype=torch.float64)])
    op = DenseOperator(quadratic_matrix(lam))
    exact = float(lam.sum())
    err_h = torch.tensor([hutchinson(op, 60, seed=s).value - exact for s in range(40)]).pow(2).mean().sqrt()
    err_pp = torch.tensor([hutchpp(op, 60, seed=s).value - exact for s in range(40)]).pow(2).mean().sqrt()
    assert float(err_pp) < 0.2 * float(err_h)


def test_gaussian_probes_are_unbiased():
    lam = torch.linspace(0.5, 2.0, 50, dtype=torch.float64)
    op = DenseOperator(quadratic_matrix(lam))
    res = hutchinson(op, 2000, distribution="gaussian", seed=3)
    assert abs(res.value - float(lam.sum())) <= 3 * res.std_error


@pytest.mark.parametrize("call, message", [
    (lambda op: hutchinson(op, 1), "num_samples must be an int >= 2"),
    (lambda op: hutchpp(op, 3), "num_matvecs must be an int >= 4"),
    (lambda op: hutchinson(op, 10, distribution="uniform"), "distribution must be one of"),
])
def test_trace_bad_inputs(call, message):
    op = DenseOperator(torch.eye(5, dtype=torch.float64))
    with pytest.raises(ValueError, match=message):
        call(op)


def test_hessian_trace_rejects_unknown_method(mlp_problem):
    with pytest.raises(ValueError, match="method must be one of"):
        hessian_trace(*mlp_problem, method="exact")
