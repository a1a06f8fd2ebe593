"""Filtered stochastic Newton (Burkhart, "Discriminative Bayesian filtering lends momentum to the stochastic
Newton method for minimizing log-convex functions", Optimization Letters 2023, arXiv:2104.12949), transcribed
literally in float64 from the paper's description and the facts of its public reference code
(github.com/burkh4rt/Filtered-Stochastic-Newton; our own code).

The batch gradient ``f_t`` and Hessian ``Q_t`` at θ_{t−1} are the *observations* of a latent state (the
gradient) in a discriminative Kalman filter (Burkhart et al., Neural Computation 2020) with state model
``z_t = A z_{t−1} + N(0, Γ)``, ``A = αI``, ``Γ = βI``, stationary covariance ``S = (I − AAᵀ)⁻¹Γ``::

    predict:  μ⁻ = A μ,  Σ⁻ = A Σ Aᵀ + Γ
    update:   if not (Q⁻¹ − S⁻¹ ≻ 0): Q ← (Q⁻¹ + S⁻¹)⁻¹
              P = Σ⁻⁻¹ + Q⁻¹ − S⁻¹;   μ = P⁻¹(Σ⁻⁻¹ μ⁻ + Q⁻¹ f);   Σ = P⁻¹
    step:     d = −(Σ + 10⁻¹² I)⁻¹ μ;  θ ← θ + s d,  s = 2^{-k}: the first k ∈ {0..4} with
              F(θ + s d) − F(θ) ≤ 0.99 s dᵀf (F: the batch loss), else s = 1/16

(first step: μ = f, Σ = Q, i.e. the plain step). With the code's constant 0.99 the sufficient-decrease test passes
on a quadratic model only for s ≤ 0.02, so most Newton steps take the last length, 1/16 (kept: it is the code's). The plain subsampled Newton step is ``d = −(Q + 10⁻¹² I)⁻¹ f``
with the same backtracking. The paper's example uses α = 0.9, β = 0.2. No fast paths.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["dkf_update", "armijo_length", "newton_direction", "filtered_direction"]


def dkf_update(state: dict, f: Tensor, q: Tensor, *, alpha: float, beta: float) -> tuple[Tensor, Tensor]:
    """One predict + measurement update of the discriminative Kalman filter; returns (μ, Σ) and keeps them."""
    d = f.numel()
    eye = torch.eye(d, dtype=f.dtype)
    if "mu" not in state:
        state["mu"], state["sigma"] = f.clone(), q.clone()
        return state["mu"], state["sigma"]
    a, gamma = alpha * eye, beta * eye
    s = torch.linalg.solve(eye - a @ a.T, gamma)
    mu_p = a @ state["mu"]
    sigma_p = a @ state["sigma"] @ a.T + gamma
    q_inv, s_inv = torch.linalg.inv(q), torch.linalg.inv(s)
    if not bool((torch.linalg.eigvals(q_inv - s_inv).real > 1e-6).all()):
        q = torch.linalg.inv(q_inv + s_inv)
        q_inv = torch.linalg.inv(q)
    precision = torch.linalg.inv(sigma_p) + q_inv - s_inv
    mu = torch.linalg.solve(precision, torch.linalg.solve(sigma_p, mu_p) + torch.linalg.solve(q, f))
    state["mu"], state["sigma"] = mu, torch.linalg.inv(precision)
    return state["mu"], state["sigma"]


def newton_direction(f: Tensor, q: Tensor) -> Tensor:
    """``−(Q + 10⁻¹² I)⁻¹ f``."""
    return -torch.linalg.solve(q + 1e-12 * torch.eye(f.numel(), dtype=f.dtype), f)


def filtered_direction(state: dict, f: Tensor, q: Tensor, *, alpha: float = 0.9, beta: float = 0.2) -> Tensor:
    """The filtered step direction ``−(Σ + 10⁻¹² I)⁻¹ μ`` after filtering (f, Q)."""
    mu, sigma = dkf_update(state, f, q, alpha=alpha, beta=beta)
    return newton_direction(mu, sigma)


def armijo_length(loss: Callable[[Tensor], float], theta: Tensor, d: Tensor, f: Tensor) -> float:
    """The backtracking step: s = 2^{-k}, the first k ∈ {0..4} with F(θ + s d) − F(θ) ≤ 0.99 s dᵀf, else 1/16."""
    f0 = loss(theta)
    s = 1.0
    for k in range(5):
        s = 2.0 ** -k
        if loss(theta + s * d) - f0 <= 0.99 * s * float(d @ f):
            break
    return s
