"""The filtered stochastic Newton transcription (optimlab.reference.filtered_newton): its first step is plain
subsampled Newton, a filter that forgets (β → ∞) gives plain Newton at every step, a filter that remembers
averages the gradient observations, and the posterior covariance stays symmetric positive definite."""

import torch

from optimlab.reference.filtered_newton import armijo_length, dkf_update, filtered_direction, newton_direction


def _obs(seed, d=4):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return torch.randn(d, generator=g, dtype=torch.float64), a @ a.T / d + 0.5 * torch.eye(d, dtype=torch.float64)


def test_first_step_is_plain_newton():
    f, q = _obs(0)
    torch.testing.assert_close(filtered_direction({}, f, q), newton_direction(f, q), rtol=1e-12, atol=1e-12)


def test_a_forgetful_filter_is_plain_newton():
    state = {}
    for t in range(5):
        f, q = _obs(t)
        d = filtered_direction(state, f, q, alpha=0.9, beta=1e9)
        torch.testing.assert_close(d, newton_direction(f, q), rtol=1e-5, atol=1e-7)


def test_memory_pulls_the_mean_towards_past_observations_and_sigma_stays_spd():
    state = {}
    f0, q = _obs(0)
    dkf_update(state, f0, q, alpha=0.9, beta=0.2)
    f1 = -f0  # an opposite observation: the filtered mean must lie between (momentum), not at f1
    mu, sigma = dkf_update(state, f1, q, alpha=0.9, beta=0.2)
    assert float((mu - f1).norm()) > 0.05 * float(f1.norm())
    assert float(mu @ f1) > 0 or float(mu @ f0) > 0
    torch.testing.assert_close(sigma, sigma.T, rtol=1e-10, atol=1e-12)
    assert bool((torch.linalg.eigvalsh(0.5 * (sigma + sigma.T)) > 0).all())


def test_backtracking_with_the_reference_codes_strict_constant():
    """Sufficient decrease F(θ + s d) − F(θ) ≤ 0.99 s dᵀf: a linear loss passes at s = 1; on a quadratic the Newton
    step passes only for s ≤ 0.02, so the lengths run out and the last one, 1/16, is taken."""
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64)
    f = torch.tensor([1.0, 1.0], dtype=torch.float64)
    assert armijo_length(lambda th: float(th.sum()), theta, -f, f) == 1.0
    quad = lambda th: float((th ** 2).sum())  # noqa: E731
    assert armijo_length(quad, theta, -theta, 2 * theta) == 1 / 16
