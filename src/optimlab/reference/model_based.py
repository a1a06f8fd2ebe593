"""Stochastic model-based steps on one robust phase-retrieval sample, transcribed from the definitions of
Davis & Drusvyatskiy, "Stochastic model-based minimization of weakly convex functions" (arXiv:1803.06523):

    x⁺ = argmin_y  f_x(y; ξ) + ‖y − x‖²/(2η)

with f(y; ξ) = h(c(y; ξ)), h = |·|, c(y; ξ) = ⟨a, y⟩² − b and the three models
f_x(y) = f(x) + ⟨ζ, y − x⟩ (ζ ∈ ∂f(x), subgradient), h(c(x) + ⟨∇c(x), y − x⟩) (prox-linear), f(y) (prox-point).

Oracle, not a fast path: the argmin is computed numerically, never by the closed forms of
``optimlab.lab.model_based``. Every model depends on y only through one scalar (the step along ∇c(x), or
s = ⟨a, y⟩ for prox-point), so the minimization is one-dimensional: bounded Brent searches on the smooth
pieces between the kinks of |·|, keeping the best (float64 numpy).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["prox_subgradient_ref", "prox_linear_ref", "prox_point_ref"]


def _argmin_pieces(fun, kinks: list[float], lo: float, hi: float) -> float:
    from scipy.optimize import minimize_scalar

    points = sorted({lo, hi, *[k for k in kinks if lo < k < hi]})
    best, best_val = points[0], fun(points[0])
    for left, right in zip(points[:-1], points[1:]):
        for cand in (minimize_scalar(fun, bounds=(left, right), method="bounded",
                                     options={"xatol": 1e-14, "maxiter": 500}).x, left, right):
            val = fun(cand)
            if val < best_val:
                best, best_val = cand, val
    return float(best)


def prox_subgradient_ref(x: np.ndarray, a: np.ndarray, b: float, eta: float) -> np.ndarray:
    """x − η ζ with ζ = sign(⟨a, x⟩² − b) · 2⟨a, x⟩ a (the subgradient model's minimizer, f linear in y)."""
    z = float(a @ x)
    return x - eta * np.sign(z * z - b) * 2.0 * z * a


def prox_linear_ref(x: np.ndarray, a: np.ndarray, b: float, eta: float) -> np.ndarray:
    """argmin_y |c + ⟨g, y − x⟩| + ‖y − x‖²/(2η), g = ∇c(x): y = x − t g, minimized over t."""
    z = float(a @ x)
    c, g = z * z - b, 2.0 * z * a
    g2 = float(g @ g)
    if g2 == 0.0:
        return x.copy()
    fun = lambda t: abs(c - t * g2) + t * t * g2 / (2 * eta)  # noqa: E731
    span = abs(c) / g2 + 2 * eta + 1.0
    t = _argmin_pieces(fun, [c / g2], -span, span)
    return x - t * g


def prox_point_ref(x: np.ndarray, a: np.ndarray, b: float, eta: float) -> np.ndarray:
    """argmin_y |⟨a, y⟩² − b| + ‖y − x‖²/(2η): y = x + ((s − s0)/‖a‖²) a, minimized over s = ⟨a, y⟩."""
    s0, a2 = float(a @ x), float(a @ a)
    fun = lambda s: abs(s * s - b) + (s - s0) ** 2 / (2 * eta * a2)  # noqa: E731
    root = math.sqrt(max(b, 0.0))
    span = abs(s0) + root + 1.0
    s = _argmin_pieces(fun, [-root, root], -span, span)
    return x + (s - s0) / a2 * a
