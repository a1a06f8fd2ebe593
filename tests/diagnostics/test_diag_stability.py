"""Zero-order two-point estimator: the derived mean-square stability condition, checked by Monte Carlo."""
from __future__ import annotations

import pytest
import torch

from optimlab.diagnostics import zo_second_moment_matrix, zo_stability

LAM = torch.linspace(0.2, 2.0, 10, dtype=torch.float64)


def _zo_gd_mean_square(eta: float, *, steps: int, runs: int = 4000, queries: int = 1, sphere: bool = False,
                       mu: float = 1e-3, seed: int = 0) -> list[float]:
    """E‖x_t‖² over ``runs`` seeds of ZO-GD on f = ½ Σ λ_i x_i², using function values only."""
    gen = torch.Generator().manual_seed(seed)
    d = len(LAM)
    x = torch.ones(runs, d, dtype=torch.float64)

    def f(z):
        return 0.5 * (z * z * LAM).sum(dim=-1)

    history = []
    for _ in range(steps):
        u = torch.randn(runs, queries, d, generator=gen, dtype=torch.float64)
        if sphere:
            u = u / u.norm(dim=-1, keepdim=True) * d ** 0.5
        xs = x[:, None, :]
        g = ((f(xs + mu * u) - f(xs - mu * u)) / (2 * mu))[..., None] * u  # two-point estimator
        x = x - eta * g.mean(dim=1)
        history.append(float((x * x).sum(dim=1).mean()))
    return history


def _predicted(eta: float, steps: int, **kwargs) -> list[float]:
    M = zo_second_moment_matrix(LAM, eta, **kwargs)
    s, out = torch.ones(len(LAM), dtype=torch.float64), []
    for _ in range(steps):
        s = M @ s
        out.append(float(s.sum()))
    return out


def test_just_inside_is_bounded_and_just_outside_diverges():
    critical = zo_stability(LAM, 0.1).critical_lr
    inside = _zo_gd_mean_square(0.9 * critical, steps=100)
    outside = _zo_gd_mean_square(1.1 * critical, steps=100)
    start = float(len(LAM))  # E‖x_0‖² = 10
    assert inside[-1] < 0.2 * start and inside[-1] < inside[49]  # shrinking in mean square
    assert outside[-1] > 20 * start and outside[-1] > 3 * outside[49]  # growing in mean square
    # And the Monte Carlo follows the derived second-moment recursion.
    for mc, exact in [(inside, _predicted(0.9 * critical, 100)), (outside, _predicted(1.1 * critical, 100))]:
        assert mc[49] == pytest.approx(exact[49], rel=0.25)


def test_condition_agrees_with_the_recursion_spectral_radius():
    res = zo_stability(LAM, 0.1)
    assert zo_stability(LAM, 0.999 * res.critical_lr).rate < 1 < zo_stability(LAM, 1.001 * res.critical_lr).rate
    assert zo_stability(LAM, 0.999 * res.critical_lr).stable
    assert not zo_stability(LAM, 1.001 * res.critical_lr).stable


def test_closed_form_consequences_on_random_spectra():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        lam = torch.rand(int(torch.randint(2, 40, (1,), generator=gen)), generator=gen, dtype=torch.float64) * 5
        tr, top = float(lam.sum()), float(lam.max())
        eta = zo_stability(lam, 0.1).critical_lr
        # Necessary: η < 2/tr(H) and η < 2/(3λ_max); sufficient: η < 2/(tr(H) + 2λ_max).
        assert 2 / (tr + 2 * top) * (1 - 1e-9) <= eta <= min(2 / tr, 2 / (3 * top)) * (1 + 1e-9)
    # Many queries per step approach gradient descent's ηλ_max < 2.
    assert zo_stability(LAM, 0.1, num_queries=10_000).critical_lr == pytest.approx(2 / 2.0, rel=1e-2)


@pytest.mark.parametrize("kwargs", [{"num_queries": 4}, {"directions": "sphere"}])
def test_generalized_recursion_matches_monte_carlo(kwargs):
    # A few steps only: over long horizons ‖x_t‖² is heavy-tailed (a product of random matrices) and
    # a sample mean of a few thousand runs underestimates it; the one-step moments are exact.
    critical = zo_stability(LAM, 0.1, **kwargs).critical_lr
    for factor in (0.9, 1.1):
        mc = _zo_gd_mean_square(factor * critical, steps=3, runs=20000, queries=kwargs.get("num_queries", 1),
                                sphere=kwargs.get("directions") == "sphere", seed=1)
        exact = _predicted(factor * critical, 3, **kwargs)
        for t in range(3):
            assert mc[t] == pytest.approx(exact[t], rel=0.05)


@pytest.mark.parametrize("kwargs, message", [
    ({"eigenvalues": torch.tensor([-1.0, 2.0])}, "nonnegative spectrum"),
    ({"lr": -0.1}, "lr must be a positive number"),
    ({"num_queries": 0}, "num_queries must be a positive int"),
    ({"directions": "rademacher"}, "directions must be 'gaussian' or 'sphere'"),
])
def test_zo_bad_inputs(kwargs, message):
    args = {"eigenvalues": LAM, "lr": 0.1} | kwargs
    with pytest.raises(ValueError, match=message):
        zo_stability(args.pop("eigenvalues"), args.pop("lr"), **args)
