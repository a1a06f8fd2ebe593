"""Stochastic model-based methods for weakly convex compositions f(x) = E_ξ h(c(x; ξ)), and the Moreau-envelope
stationarity measure, on robust phase retrieval (``phase_retrieval`` task: h = |·|, c(x; i) = ⟨a_i, x⟩² − b_i).

Davis & Drusvyatskiy, "Stochastic model-based minimization of weakly convex functions" (arXiv:1803.06523):
each step samples ξ and minimizes a model f_x(·; ξ) of f(·; ξ) plus ‖y − x‖²/(2η):

- prox-subgradient: model f(x; ξ) + ⟨ζ, y − x⟩ with ζ ∈ ∂f(x; ξ): x⁺ = x − ηζ, ζ = sign(c)·∇c;
- prox-linear: model h(c(x; ξ) + ∇c(x; ξ)ᵀ(y − x)): with h = |·| the minimizer is x⁺ = x − η·s·∇c with
  s = clip(c / (η‖∇c‖²), −1, 1) (the linearized residual is set to zero when that step is short enough);
- prox-point: model f(y; ξ) itself; for one phase-retrieval sample the problem reduces to the scalar
  s = ⟨a, y⟩ and is solved exactly by comparing the stationary points of the two branches and s = ±√b.

The guarantee: with η = γ/√(K+1), the Moreau-envelope gradient ‖∇f_λ(x)‖ = ‖x − prox_{λf}(x)‖/λ
(λ < 1/ρ, ρ the weak-convexity modulus) at a uniformly sampled iterate is O(K^(-1/4)) in expectation.
``moreau_stationarity`` computes it: prox_{λf}(x) by majorize–minimize (each step minimizes the linearized
ℓ1 model plus the exact quadratic bound of the linearization error, a box-constrained dual QP solved with
L-BFGS-B), which converges because φ(y) = f(y) + ‖y − x‖²/(2λ) is strongly convex for λ < 1/ρ.
The literal per-sample transcription of the three steps is ``optimlab.reference.model_based``; a parity test
checks the two against each other.

These are lab-level solvers (a per-sample model of the loss, not a torch.optim transform chain).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["METHODS", "model_based_step", "run_model_based", "weak_convexity", "moreau_stationarity"]

METHODS = ("prox_subgradient", "prox_linear", "prox_point")


def model_based_step(method: str, x: Tensor, a: Tensor, b: Tensor, eta: float) -> Tensor:
    """One stochastic step of ``method`` on the sample f(x) = |⟨a, x⟩² − b| with step ``eta``."""
    z = a @ x
    c = z * z - b
    grad = 2.0 * z * a  # ∇c
    if method == "prox_subgradient":
        return x - eta * torch.sign(c) * grad
    if method == "prox_linear":
        g2 = grad @ grad
        if float(g2) == 0.0:
            return x.clone()
        s = torch.clamp(c / (eta * g2), -1.0, 1.0)
        return x - eta * s * grad
    if method == "prox_point":
        return x + (_prox_point_scalar(float(z), float(b), eta * float(a @ a)) - z) / (a @ a) * a
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def _prox_point_scalar(s0: float, b: float, c: float) -> float:
    """argmin_s |s² − b| + (s − s0)²/(2c): the two branches' stationary points and the kinks ±√b."""
    obj = lambda s: abs(s * s - b) + (s - s0) ** 2 / (2.0 * c)  # noqa: E731
    cands = [s0 / (1.0 + 2.0 * c)]  # branch s² ≥ b: s² − b + …
    if c < 0.5:
        cands.append(s0 / (1.0 - 2.0 * c))  # branch s² ≤ b: b − s² + … (convex when c < 1/2)
    if b >= 0:
        cands += [math.sqrt(b), -math.sqrt(b)]
    return min(cands, key=obj)


def run_model_based(method: str, a: Tensor, b: Tensor, x0: Tensor, steps: int, eta: float,
                    seed: int, record: Sequence[int] = ()) -> tuple[Tensor, dict[int, Tensor]]:
    """``steps`` stochastic steps (one uniformly sampled row per step, from ``seed``) at constant ``eta``;
    returns the last iterate and the iterates after the steps listed in ``record``."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(a.shape[0], (steps,), generator=gen)
    x = x0.clone()
    keep, want = {}, set(record)
    for t in range(steps):
        i = int(idx[t])
        x = model_based_step(method, x, a[i], b[i], eta)
        if t + 1 in want:
            keep[t + 1] = x.clone()
    return x, keep


def weak_convexity(a: np.ndarray) -> float:
    """ρ = 2 λ_max(AᵀA/m): f(x) = (1/m) Σ |⟨a_i, x⟩² − b_i| is ρ-weakly convex (and the linearization
    error of the residuals is bounded by (ρ/2)‖y − x‖² on average)."""
    a = np.asarray(a, dtype=np.float64)
    return 2.0 * float(np.linalg.eigvalsh(a.T @ a / a.shape[0])[-1])


def _box_qp(gmat: np.ndarray, c: np.ndarray, alpha: float, bound: float, u0: np.ndarray) -> np.ndarray:
    """argmax_{|u_i| ≤ bound} uᵀc − ‖Gᵀu‖²/(2α) (the dual of min_d bound·‖c0 + Gd‖₁ + (α/2)‖d − e‖²)."""
    from scipy.optimize import minimize

    def fun(u: np.ndarray) -> tuple[float, np.ndarray]:
        v = gmat.T @ u
        return float(v @ v / (2 * alpha) - u @ c), gmat @ v / alpha - c

    res = minimize(fun, u0, jac=True, method="L-BFGS-B", bounds=[(-bound, bound)] * len(c),
                   options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-13, "maxcor": 30})
    return res.x


def moreau_stationarity(a: np.ndarray, b: np.ndarray, x: np.ndarray, lam: float | None = None, *,
                        tol: float = 1e-6, max_iter: int = 200) -> tuple[float, np.ndarray]:
    """(‖x − prox_{λf}(x)‖/λ, prox_{λf}(x)) for f(y) = (1/m) Σ |⟨a_i, y⟩² − b_i| (float64 numpy).

    λ defaults to 1/(2ρ) with ρ = ``weak_convexity(a)`` (the paper's choice λ = 1/(2ρ)). Stops when a step
    moves y by at most ``tol``·(1 + ‖y‖) (relative accuracy of the measure ≈ ``tol``/(λ·measure)).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    m = a.shape[0]
    rho = weak_convexity(a)
    lam = 1.0 / (2.0 * rho) if lam is None else float(lam)
    if not 0 < lam < 1.0 / rho:
        raise ValueError(f"moreau_stationarity: need 0 < lam < 1/rho = {1 / rho:.4g}, got {lam!r}")
    alpha = 1.0 / lam + rho  # majorizer: linearized ℓ1 + (ρ/2)‖d‖² + ‖y + d − x‖²/(2λ)
    y = x.copy()
    u = np.zeros(m)
    for _ in range(max_iter):
        z = a @ y
        r = z * z - b
        gmat = 2.0 * z[:, None] * a  # rows ∇c_i(y)
        e = (x - y) / (lam * alpha)
        u = _box_qp(gmat, r + gmat @ e, alpha, 1.0 / m, u)
        d = e - gmat.T @ u / alpha
        y = y + d
        if np.linalg.norm(d) <= tol * (1.0 + np.linalg.norm(y)):
            break
    return float(np.linalg.norm(x - y) / lam), y
