"""Stability thresholds: where an optimizer on the quadratic ½θᵀHθ stops converging.

All thresholds are in curvature units (loss per parameter²), comparable with λ_max(H) — or with
λ_max(P⁻¹H) for preconditioned methods. η is the learning rate.

- Gradient descent: θ ← θ − ηHθ is stable iff ηλ_i ∈ (0, 2) for all i: λ_max < **2/η**
  (Cohen, Kaur, Li, Kolter, Talwalkar, "Gradient Descent on Neural Networks Typically Occurs at the
  Edge of Stability", arXiv:2103.00065).
- Heavy-ball momentum as in ``torch.optim.SGD`` (b ← βb + (1−τ)g, θ ← θ − ηb): on eigenvalue λ,
  x_{t+1} = (1 + β − η(1−τ)λ)x_t − βx_{t−1}; the root −1 of z² − (1+β−η'λ)z + β appears at
  η'λ = 2 + 2β, so λ_max < **(2 + 2β)/((1−τ)η)**. The EMA form m ← βm + (1−β)g is τ = β:
  (2 + 2β)/((1−β)η).
- Nesterov as in ``torch.optim.SGD(nesterov=True)`` (step g + βb): the characteristic polynomial
  z² − (1+β)(1−ηλ)z + β(1−ηλ) has the root −1 at ηλ = (2+2β)/(1+2β): λ_max < **(2+2β)/((1+2β)η)**.
- Adam: EMA momentum β1 on the preconditioned gradient P⁻¹g, with P = diag(√v̂ + ε) frozen, so
  λ_max(P⁻¹H) < **(2 + 2β1)/((1−β1)η)** = 38/η at β1 = 0.9 (Cohen et al., "Adaptive Gradient
  Methods at the Edge of Stability", arXiv:2207.14484).
- SGD: "if a global minimum is linearly stable for SGD, then the trace of Hessian must be ≤ 2/η"
  (Wu & Su, "The Implicit Regularization of Dynamical Stability in Stochastic Gradient Descent",
  arXiv:2305.17490): **tr(H) ≤ 2/η**, a necessary condition at interpolating minima.
- Zeroth-order two-point estimator: ``zo_stability`` (derived in its docstring).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def _lr(lr: float) -> float:
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    return float(lr)


def _beta(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def gd_threshold(lr: float) -> float:
    """2/η: the largest Hessian eigenvalue at which gradient descent is still stable."""
    return 2.0 / _lr(lr)


def momentum_threshold(lr: float, momentum: float, *, nesterov: bool = False, dampening: float = 0.0,
                       ema: bool = False) -> float:
    """λ_max threshold of heavy-ball / Nesterov momentum (torch.optim.SGD conventions).

    momentum β, dampening τ: (2+2β)/((1−τ)η); ``ema=True`` means τ = β (m ← βm + (1−β)g);
    ``nesterov=True`` (τ must be 0, as in torch): (2+2β)/((1+2β)η).
    """
    lr, beta = _lr(lr), _beta("momentum", momentum)
    tau = beta if ema else _beta("dampening", dampening)
    if nesterov:
        if tau != 0:
            raise ValueError(f"nesterov momentum needs dampening 0 (as torch.optim.SGD), got {tau!r}")
        return (2 + 2 * beta) / ((1 + 2 * beta) * lr)
    return (2 + 2 * beta) / ((1 - tau) * lr)


def adam_threshold(lr: float, beta1: float = 0.9) -> float:
    """(2 + 2β1)/((1 − β1)η): threshold of Adam's preconditioned sharpness λ_max(P⁻¹H); 38/η at β1 = 0.9."""
    return momentum_threshold(lr, beta1, ema=True)


def sgd_trace_bound(lr: float) -> float:
    """2/η: the bound on tr(H) at a global minimum that is linearly stable for SGD (Wu & Su 2023)."""
    return 2.0 / _lr(lr)


@dataclass
class ZOStability:
    """Mean-square stability of zeroth-order GD on a quadratic.

    stable: the verdict. margin: 1 − Σ_j bηλ_j/(2 − aηλ_j) (> 0 iff stable, given ηλ_i < 2/a).
    rate: spectral radius of the second-moment recursion (E‖x‖² shrinks like rate^t when < 1).
    critical_lr: the largest stable η for this spectrum.
    """

    stable: bool
    margin: float
    rate: float
    critical_lr: float


def _zo_constants(dim: int, num_queries: int, directions: str) -> tuple[float, float]:
    if directions not in ("gaussian", "sphere"):
        raise ValueError(f"directions must be 'gaussian' or 'sphere', got {directions!r}")
    if not isinstance(num_queries, int) or num_queries < 1:
        raise ValueError(f"num_queries must be a positive int, got {num_queries!r}")
    kappa = 1.0 if directions == "gaussian" else dim / (dim + 2.0)
    return 2 * kappa / num_queries + 1 - 1 / num_queries, kappa / num_queries


def zo_second_moment_matrix(eigenvalues: torch.Tensor, lr: float, *, num_queries: int = 1,
                            directions: str = "gaussian", dim: int | None = None) -> torch.Tensor:
    """The matrix M with s_{t+1} = M s_t, s_i = E[(u_iᵀx)²] in H's eigenbasis (see ``zo_stability``)."""
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64).flatten()
    lr = _lr(lr)
    a, b = _zo_constants(dim or len(lam), num_queries, directions)
    diag = 1 - 2 * lr * lam + a * lr ** 2 * lam ** 2
    return torch.diag(diag) + b * lr ** 2 * torch.ones_like(lam)[:, None] * (lam ** 2)[None, :]


def _zo_margin(lam: torch.Tensor, lr: float, a: float, b: float) -> float:
    x = lr * lam
    if bool((a * x >= 2).any()):
        return float("-inf")
    return 1.0 - float((b * x / (2 - a * x)).sum())


def zo_stability(eigenvalues: torch.Tensor, lr: float, *, num_queries: int = 1, directions: str = "gaussian",
                 dim: int | None = None) -> ZOStability:
    """Mean-square stability of GD with the two-point zeroth-order gradient estimator.

    Estimator, with q random directions u_k per step and smoothing μ:
        ĝ = (1/q) Σ_k [f(x + μu_k) − f(x − μu_k)] / (2μ) · u_k.
    On f(x) = ½xᵀHx the difference quotient is exactly u_kᵀHx for every μ, so
    x⁺ = (I − η·(1/q)Σ_k u_k u_kᵀ H) x. (Our derivation.) For Gaussian u, E[uuᵀ] = I and
    E[uuᵀAuuᵀ] = A + Aᵀ + tr(A) I (Isserlis); for u uniform on the sphere of radius √d the
    fourth moment is κ(A + Aᵀ + tr(A) I), κ = d/(d+2). Writing S = E[xxᵀ],

        S⁺ = S − ηHS − ηSH + η²[(1 − 1/q) + 2κ/q] HSH + (κη²/q) tr(HSH) I,

    and in H's eigenbasis the diagonal s_i = E[x_i²] is closed:

        s_i⁺ = (1 − 2ηλ_i + aη²λ_i²) s_i + bη² Σ_j λ_j² s_j,   a = 1 − 1/q + 2κ/q,  b = κ/q.

    This is s⁺ = (D + b η² 1 wᵀ) s with D diagonal, w = λ², all entries ≥ 0. By the rank-one
    (secular) determinant, its spectral radius is < 1 iff every d_i < 1, i.e. 0 < ηλ_i < 2/a, and

        Σ_j bηλ_j / (2 − aηλ_j) < 1.

    Gaussian, one query (a = 2, b = 1): **ηλ_i < 1 for all i and Σ_j ηλ_j/(1 − ηλ_j) < 2**; hence the
    necessary η < 2/tr(H) and η < 2/(3λ_max), and the sufficient η < 2/(tr(H) + 2λ_max). As q → ∞ it
    tends to GD's ηλ_max < 2. Zero eigenvalues are neutral (s_i is constant there) and do not count.
    Verified against Monte Carlo runs on quadratics in tests/diagnostics/test_stability.py.

    eigenvalues: the Hessian spectrum (all of it: the sum runs over every eigenvalue).
    dim: ambient dimension d for sphere directions (default: len(eigenvalues)).
    """
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64).flatten()
    if lam.numel() == 0 or bool((lam < 0).any()):
        raise ValueError("eigenvalues must be a non-empty, nonnegative spectrum (a minimum of a quadratic)")
    lr = _lr(lr)
    a, b = _zo_constants(dim or len(lam), num_queries, directions)
    margin = _zo_margin(lam[lam > 0], lr, a, b)
    M = zo_second_moment_matrix(lam[lam > 0], lr, num_queries=num_queries, directions=directions, dim=dim or len(lam))
    rate = float(torch.linalg.eigvals(M).abs().max()) if len(M) else 0.0
    if float(lam.max()) == 0:
        return ZOStability(True, 1.0, rate, float("inf"))
    # Bisection on η: the margin decreases monotonically in η.
    lo, hi = 0.0, 2.0 / (a * float(lam.max()))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _zo_margin(lam[lam > 0], mid, a, b) > 0 else (lo, mid)
    return ZOStability(margin > 0, margin, rate, lo)
