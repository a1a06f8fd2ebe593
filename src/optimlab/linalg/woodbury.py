"""Sliding-window inverse empirical-Fisher products (M-FAC's dense estimator) by the Woodbury identity.

The window holds the last m gradients as the rows of ``G`` (m × d), a ring buffer, and their Gram matrix
``K = G Gᵀ`` (m × m, float64), updated in O(d·m) per new gradient (one row and column). With
``F̂ = λI + (1/m)·GᵀG`` (m = the rows filled so far),

    F̂⁻¹x = (1/λ)·[x − Gᵀ (mλI + K)⁻¹ G x]                        (Woodbury)

costs O(d·m) for ``Gx`` and ``Gᵀy`` plus O(m²) for the small solve, given a factorisation of ``mλI + K``
(an O(m³) ``eigh``, once per window change; :class:`WindowFactor`). Frantar, Kurtic, Alistarh, "M-FAC:
Efficient Matrix-Free Approximations of Second-Order Information" (NeurIPS 2021), arXiv:2107.03356, derive
an O(m²)-per-update recursion; this module refactors the m × m matrix instead, which is exact and, for the
window sizes used on CPU (m ≤ 1024), cheaper than the d-dependent parts. The eigendecomposition is in float64
with eigenvalues clamped at 0 (K is a Gram matrix), so gradients up to 3e38 or rank-deficient windows never
give NaN: ``mλ + max(Λ, 0) ≥ mλ > 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ring_push", "WindowFactor", "window_factor", "fisher_inverse_product", "dense_fisher"]


def ring_push(G: Tensor, gram: Tensor, slot: int, g: Tensor) -> None:
    """Write gradient ``g`` (flattened to d) into row ``slot`` of the window ``G`` and update ``gram = G Gᵀ``
    (float64) in place: O(d·m)."""
    G[slot].copy_(g.reshape(-1))
    row = G.to(torch.float64) @ G[slot].to(torch.float64)
    gram[slot, :] = row
    gram[:, slot] = row


@dataclass
class WindowFactor:
    """``mλI + K = V diag(w) Vᵀ`` for the first ``filled`` rows (w ≥ mλ)."""

    V: Tensor
    w: Tensor
    filled: int
    damp: float


def window_factor(gram: Tensor, filled: int, damp: float) -> WindowFactor:
    """Factorise ``mλI + K`` over the ``filled`` rows of the window (m = filled): O(m³), float64."""
    K = gram[:filled, :filled].to(torch.float64)
    lam, V = torch.linalg.eigh(K)
    return WindowFactor(V, lam.clamp_min(0) + filled * damp, filled, damp)


def fisher_inverse_product(G: Tensor, f: WindowFactor, x: Tensor) -> Tensor:
    """``F̂⁻¹x`` with ``F̂ = λI + (1/m)GᵀG`` over the filled rows (Woodbury, float64): O(d·m + m²)."""
    x64 = x.reshape(-1).to(torch.float64)
    if f.filled == 0:
        return (x64 / f.damp).reshape(x.shape)
    Gf = G[:f.filled].to(torch.float64)
    y = f.V @ ((f.V.T @ (Gf @ x64)) / f.w)
    return ((x64 - Gf.T @ y) / f.damp).reshape(x.shape)


def dense_fisher(G: Tensor, filled: int, damp: float) -> Tensor:
    """``λI + (1/m)GᵀG`` as a dense d × d float64 matrix (the oracle for tests and claims)."""
    Gf = G[:filled].to(torch.float64)
    d = Gf.shape[1]
    return damp * torch.eye(d, dtype=torch.float64) + (Gf.T @ Gf) / max(filled, 1)
