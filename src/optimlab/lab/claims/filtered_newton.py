"""Discriminative Bayesian filtering of subsampled gradients and Hessians improves the stochastic Newton method.

Burkhart, "Discriminative Bayesian filtering lends momentum to the stochastic Newton method for minimizing
log-convex functions" (Optimization Letters 2023, arXiv:2104.12949). The method (our reading, fixed from the
paper's first section and the facts of its public reference code; see
:mod:`optimlab.reference.filtered_newton`): the batch gradient and Hessian are observations of a latent gradient
in a discriminative Kalman filter with state model z_t = α z_{t−1} + N(0, βI); the step is the filtered
Newton direction −Σ_t⁻¹μ_t with backtracking. Old observations decay like heavy-ball momentum.

Protocol (fixed before the first run; coverage row C17):

- ℓ2-regularised logistic regression (a mean of log-convex functions) on generated data: n = 2,000 points,
  d = 5, x ~ N(0, I), θ* ~ N(0, I), labels ±1 with P(+1) = σ(xᵀθ*), λ = 1e-3 (fast: n = 500); f* from 30
  full-batch Newton steps. Start θ_0 ~ N(0, I). Everything from the seed.
- 50 iterations (fast 30), batches of 32 drawn with replacement, the same batches for both methods.
- Filtered stochastic Newton at the paper's example values α = 0.9, β = 0.2 vs plain subsampled Newton; both with
  the reference code's backtracking (s = 2^{-k}, k ≤ 4, sufficient decrease 0.99 s dᵀf on the batch loss).
- Measured: the mean suboptimality f(θ_t) − f* over the last 10 iterations.
- Seeds: full (0, 1, 2, 3, 4), fast (0, 1). Verdict per seed: filtered ≤ 0.9 × plain.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .base import Claim, Outcome, new_figure, register

FACTOR = 0.9
ALPHA, BETA, BATCH, L2, D = 0.9, 0.2, 32, 1e-3, 5


def _problem(seed: int, n: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g, dtype=torch.float64)
    theta_star = torch.randn(D, generator=g, dtype=torch.float64)
    y = torch.where(torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(x @ theta_star), 1.0, -1.0)
    return {"x": x, "y": y, "theta0": torch.randn(D, generator=g, dtype=torch.float64), "gen": g}


def _loss(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.softplus(-y * (x @ theta)).mean() + 0.5 * L2 * theta @ theta


def _grad_hess(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.sigmoid(-y * (x @ theta))
    grad = -(x * (y * s).unsqueeze(1)).mean(0) + L2 * theta
    w = s * (1 - s)
    hess = (x * w.unsqueeze(1)).T @ x / len(y) + L2 * torch.eye(D, dtype=theta.dtype)
    return grad, hess


def _run(seed: int, n: int, iters: int) -> dict[str, Any]:
    from ...reference.filtered_newton import armijo_length, filtered_direction, newton_direction

    prob = _problem(seed, n)
    x, y = prob["x"], prob["y"]
    theta = torch.zeros(D, dtype=torch.float64)
    for _ in range(30):  # f* by full-batch Newton
        gr, he = _grad_hess(theta, x, y)
        theta = theta - torch.linalg.solve(he, gr)
    f_star = float(_loss(theta, x, y))
    batches = torch.randint(0, n, (iters, BATCH), generator=prob["gen"])
    curves = {}
    for method in ("plain", "filtered"):
        theta, state, curve = prob["theta0"].clone(), {}, []
        for t in range(iters):
            xb, yb = x[batches[t]], y[batches[t]]
            f, q = _grad_hess(theta, xb, yb)
            d = newton_direction(f, q) if method == "plain" else filtered_direction(state, f, q, alpha=ALPHA,
                                                                                      beta=BETA)
            s = armijo_length(lambda th: float(_loss(th, xb, yb)), theta, d, f)
            theta = theta + s * d
            curve.append(float(_loss(theta, x, y)) - f_star)
        curves[method] = curve
    return curves


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    n, iters = (500, 30) if fast else (2000, 50)
    runs = {s: _run(s, n, iters) for s in seeds}
    per_seed, passed = {}, {}
    for s in seeds:
        plain, filt = (float(np.mean(runs[s][m][-10:])) for m in ("plain", "filtered"))
        per_seed[s] = {"subopt_plain": plain, "subopt_filtered": filt, "ratio": filt / plain if plain > 0 else np.inf}
        passed[s] = filt <= FACTOR * plain
    fig, axes = new_figure(2)
    for i, m in enumerate(("plain", "filtered")):
        axes[0].semilogy(np.maximum(runs[seeds[0]][m], 1e-16), color=f"C{i}", lw=0.9, label=m)
    axes[0].set(xlabel="iteration", ylabel="f(θ) − f*", title=f"logistic regression, batch {BATCH} (seed {seeds[0]})")
    axes[0].legend(fontsize=8)
    axes[1].bar([str(s) for s in seeds], [per_seed[s]["ratio"] for s in seeds])
    axes[1].axhline(FACTOR, color="C3", ls=":", label=f"rule ≤ {FACTOR}")
    axes[1].set(xlabel="seed", ylabel="filtered / plain (last 10 iterations)", title="suboptimality ratio")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    text = "; ".join(f"seed {s}: {per_seed[s]['subopt_filtered']:.3g} vs {per_seed[s]['subopt_plain']:.3g}" for s in seeds)
    return Outcome(per_seed, passed, f"n {n}, {iters} iterations, α {ALPHA}, β {BETA}: mean suboptimality over the "
                   f"last 10 iterations, filtered vs plain: {text} (rule: ratio ≤ {FACTOR})", fig,
                   {"n": n, "iterations": iters})


FILTERED = register(Claim(
    id="bayesian-filtering-newton-momentum",
    paper="Discriminative Bayesian filtering lends momentum to the stochastic Newton method for minimizing "
          "log-convex functions (Burkhart, Optimization Letters 2023)",
    arxiv="2104.12949",
    statement="Filtering subsampled gradients and Hessians over the whole history (old observations decaying "
              "like heavy-ball momentum) improves on the plain subsampled Newton method.",
    optimizers=(),
    protocol="ℓ2-regularised logistic regression on generated data (n = 2,000, d = 5), batches of 32, 50 "
             "iterations (fast: n = 500, 30): filtered stochastic Newton (discriminative Kalman filter, α 0.9, "
             "β 0.2; optimlab.reference.filtered_newton) vs plain subsampled Newton, same batches, both with "
             "backtracking; mean f − f* over the last 10 iterations",
    rule="suboptimality(filtered) ≤ 0.9 × suboptimality(plain), every seed",
    margin=f"ratio ≤ {FACTOR}",
    experiment=_experiment,
    full_seeds=(0, 1, 2, 3, 4),
))
