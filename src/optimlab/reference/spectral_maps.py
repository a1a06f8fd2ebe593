"""Turbo-Muon and Freon, transcribed one matrix at a time from their papers (test oracles).

Plain float64-friendly formulas in each paper's notation, written independently of the fast kernels in
``optimlab.linalg`` (no shared code; only the published coefficient lists are data). ``W`` is a weight
(conv kernels are flattened to (out, rest)), ``g`` its gradient, ``state`` a plain dict.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["polar_factor", "schatten_map", "aol_newton_schulz_reference", "turbo_muon_step", "freon_step",
           "TURBO_COEFFICIENTS"]

#: Turbo-Muon's 4 steps: Jiacheng You's 5-step list without its first entry (see linalg/schedules.py).
TURBO_COEFFICIENTS = (
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)


def _svd(G: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Thin SVD in float64 and the mask of singular values above the rank tolerance of ``matrix_rank``."""
    U, s, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    tol = s.max() * max(G.shape) * torch.finfo(G.dtype).eps if s.numel() else s.new_zeros(())
    return U, s, Vh, s > tol


def polar_factor(G: Tensor) -> Tensor:
    """``U Vᵀ`` over the non-zero singular values of ``G = U Σ Vᵀ`` (float64)."""
    U, _, Vh, keep = _svd(G)
    return U[:, keep] @ Vh[keep]


def schatten_map(M: Tensor, q: float) -> Tensor:
    """Freon's direction, literally ``O = (M_n M_nᵀ)^(−c) M_n`` with ``M_n = M / ‖M‖_q``, ``c = 1 − q/2``.

    ``‖M‖_q = (Σ σ_i^q)^(1/q)`` is the Schatten-q (quasi-)norm; the matrix power of the positive
    semi-definite ``M_n M_nᵀ`` is taken on its range (zero singular values contribute nothing).
    """
    U, s, _, keep = _svd(M)
    if not bool(keep.any()):
        return torch.zeros(M.shape, dtype=torch.float64)
    norm_q = (s[keep] ** q).sum() ** (1.0 / q)
    Mn = M.double() / norm_q
    c = 1.0 - q / 2.0
    lam = (s[keep] / norm_q) ** 2  # eigenvalues of M_n M_nᵀ on its range
    P = U[:, keep] @ torch.diag(lam ** (-c)) @ U[:, keep].T  # (M_n M_nᵀ)^(−c)
    return P @ Mn


def aol_newton_schulz_reference(G: Tensor, coeffs=TURBO_COEFFICIENTS) -> Tensor:
    """Turbo-Muon's orthogonalisation (arXiv:2512.04632) in float64, plain loops for the rescaling::

        X = G (as m × n with m ≤ n; transposed back at the end)
        A = X Xᵀ;  s_i = 1 / sqrt(Σ_j |A_ij|);  X_ij ← s_i X_ij          (AOL, Prach & Lampert)
        for (a, b, c): X ← a X + b (X Xᵀ) X + c (X Xᵀ)² X
    """
    X = G.double()
    tall = X.shape[0] > X.shape[1]
    if tall:
        X = X.T.clone()
    A = X @ X.T
    for i in range(X.shape[0]):
        row_sum = float(A[i].abs().sum())
        X[i] = X[i] / math.sqrt(max(row_sum, 1e-7))
    for a, b, c in coeffs:
        S = X @ X.T
        X = a * X + b * S @ X + c * S @ S @ X
    return X.T if tall else X


def _momentum(g: Tensor, state: dict, mu: float, nesterov: bool) -> Tensor:
    """Keller Jordan's Muon momentum: ``B ← μB + (1−μ)g``; returns ``(1−μ)g + μB`` (Nesterov) or ``B``."""
    B = state.setdefault("B", torch.zeros_like(g, dtype=torch.float64))
    B.mul_(mu).add_(g.double(), alpha=1 - mu)
    return (1 - mu) * g.double() + mu * B if nesterov else B.clone()


def _apply(W: Tensor, O: Tensor, lr: float, wd: float) -> None:
    m, n = O.shape
    W.mul_(1 - lr * wd).sub_((lr * math.sqrt(max(1.0, m / n)) * O).reshape(W.shape).to(W.dtype))


def turbo_muon_step(W: Tensor, g: Tensor, state: dict, *, lr: float, momentum: float = 0.95,
                    nesterov: bool = True, weight_decay: float = 0.0, coeffs=TURBO_COEFFICIENTS) -> None:
    """One Turbo-Muon step: Muon's momentum, AOL + 4 quintic NS steps, ``W ← (1 − lr λ)W − lr s O``."""
    M = _momentum(g.reshape(g.shape[0], -1), state, momentum, nesterov)
    _apply(W, aol_newton_schulz_reference(M, coeffs), lr, weight_decay)


def freon_step(W: Tensor, g: Tensor, state: dict, *, lr: float, q: float, momentum: float = 0.95,
               nesterov: bool = True, weight_decay: float = 0.0) -> None:
    """One Freon step (arXiv:2605.11181, as publicly summarised): momentum, ``O = schatten_map(M, q)``,
    ``W ← (1 − lr λ) W − lr·sqrt(max(1, m/n))·O``."""
    M = _momentum(g.reshape(g.shape[0], -1), state, momentum, nesterov)
    _apply(W, schatten_map(M, q), lr, weight_decay)
