"""Exact spectrum, SLQ density against exact eigenvalues, and the sharpness dimension."""
from __future__ import annotations

import math

import pytest
import torch

from optimlab.diagnostics import (DenseOperator, exact_spectrum, sharpness_dimension, slq, spectral_density)

from diag_helpers import quadratic_matrix


def test_exact_spectrum_matches_reference(mlp_problem, mlp_hessian):
    res = exact_spectrum(*mlp_problem, return_matrix=True)
    torch.testing.assert_close(res.eigenvalues, torch.linalg.eigvalsh(mlp_hessian), atol=1e-10, rtol=1e-8)
    assert res.num_hvps == 111 and res.matrix.shape == (111, 111)
    with pytest.raises(ValueError, match="max_dim=50"):
        exact_spectrum(*mlp_problem, max_dim=50)


def test_slq_density_matches_exact_spectrum_of_an_mlp(mlp_problem, mlp_hessian):
    # Metric: Wasserstein-1 distance between the SLQ measure and the uniform measure on the exact
    # eigenvalues, relative to the spectral range. A 1-run, 10-step SLQ is visibly worse.
    exact = torch.linalg.eigvalsh(mlp_hessian)
    width = float(exact[-1] - exact[0])
    good = spectral_density(*mlp_problem, num_runs=8, num_iters=40, seed=0)
    assert good.num_hvps == 8 * 40
    assert good.wasserstein_to(exact) / width < 0.02
    crude = spectral_density(*mlp_problem, num_runs=1, num_iters=5, seed=0)
    assert crude.wasserstein_to(exact) > good.wasserstein_to(exact)
    # Extremes converge first: the top node is the top eigenvalue.
    assert float(good.nodes.max()) == pytest.approx(float(exact[-1]), rel=1e-6)
    # The trace (first moment) is a Hutchinson estimate: within 3 of its standard errors.
    assert abs(good.trace() - float(exact.sum())) <= 3 * good.trace_std_error()
    # The smoothed density integrates to 1.
    grid = torch.linspace(float(exact[0]) - 1, float(exact[-1]) + 1, 4001, dtype=torch.float64)
    assert float(torch.trapezoid(good.density(grid), grid)) == pytest.approx(1.0, abs=1e-3)


def test_slq_histogram_matches_known_quadratic_spectrum():
    # Bimodal spectrum: 60% of eigenvalues near 1, 40% near 5, plus an outlier at 20.
    gen = torch.Generator().manual_seed(1)
    lam = torch.cat([1 + 0.1 * torch.randn(240, generator=gen, dtype=torch.float64),
                     5 + 0.1 * torch.randn(159, generator=gen, dtype=torch.float64),
                     torch.tensor([20.0], dtype=torch.float64)])
    op = DenseOperator(quadratic_matrix(lam))
    res = slq(op, num_runs=10, num_iters=30, seed=0)
    mass_low = float(res.cdf(torch.tensor(3.0)))
    assert mass_low == pytest.approx(240 / 400, abs=0.05)
    assert res.wasserstein_to(lam) / float(lam.max() - lam.min()) < 0.02


def test_slq_stops_early_on_an_exact_invariant_subspace():
    op = DenseOperator(torch.diag(torch.tensor([1.0, 1.0, 3.0, 3.0], dtype=torch.float64)))
    res = slq(op, num_runs=2, num_iters=10, seed=0)
    assert res.num_hvps <= 2 * 4
    assert float(res.cdf(torch.tensor(2.0))) == pytest.approx(0.5, abs=0.5)  # weights still sum to 1 per run
    torch.testing.assert_close(res.weights.sum(dim=1), torch.ones(2, dtype=torch.float64))


def test_sharpness_dimension_cases():
    # Below the edge of stability every direction contracts: dimension 0.
    assert sharpness_dimension(torch.tensor([1.0, 2.0, 3.0]), lr=0.5).value == 0.0
    # One expanding direction |1 − ηλ| = 3 and contracting ones 0.5, 0.5: log3 − log2 > 0, log3 − 2log2 < 0.
    res = sharpness_dimension(torch.tensor([4.0, 0.5, 0.5]), lr=1.0)
    expected = 2 + (math.log(3) - math.log(2)) / math.log(2)
    assert res.value == pytest.approx(expected, rel=1e-12) and res.index == 2
    # All expanding: full dimension.
    assert sharpness_dimension(torch.tensor([5.0, 6.0]), lr=1.0).value == 2.0
    # A stack of spectra averages the exponents.
    stacked = sharpness_dimension(torch.tensor([[4.0, 0.5, 0.5], [4.0, 0.5, 0.5]]), lr=1.0)
    assert stacked.value == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        sharpness_dimension(torch.tensor([1.0]), lr=0.0)
    with pytest.raises(ValueError, match="eigenvalues must be a non-empty"):
        sharpness_dimension(torch.zeros(2, 2, 2), lr=1.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_runs": 0}, "num_runs must be a positive int"),
    ({"num_iters": 0}, "num_iters must be a positive int"),
])
def test_slq_bad_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        slq(DenseOperator(torch.eye(3, dtype=torch.float64)), **kwargs)
