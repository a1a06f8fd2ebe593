"""The symmetry-compatible updates of Lau & Su (arXiv:2605.18106), transcribed per matrix through the SVD.

``M = U Σ Vᵀ`` gives every one-sided spectral map in closed form, independently of the fast path (which
uses the eigendecomposition of the small Gram matrix)::

    M (MᵀM + εI)^{-1/2} = (MMᵀ + εI)^{-1/2} M = U diag(σ/√(σ²+ε)) Vᵀ,   ν = ⟨M, that⟩ = Σ σ²/√(σ²+ε)

``symmetric_step`` is one step of the momentum form the authors train with:
``m ← μ m + (1 − μ) g;  p ← (1 − η λ) p − η·update(m)``.
"""

from __future__ import annotations

import torch

__all__ = ["row_norm", "col_norm", "centered", "one_sided_spectral", "hybrid", "UPDATES", "symmetric_step"]


def row_norm(M: torch.Tensor, eps: float) -> torch.Tensor:
    """Row-norm: row ``i`` of the update is ``M_i / (‖M_i‖₂ + ε)``."""
    out = torch.empty_like(M)
    for i in range(M.shape[0]):
        out[i] = M[i] / (torch.sqrt((M[i] ** 2).sum()) + eps)
    return out


def col_norm(M: torch.Tensor, eps: float) -> torch.Tensor:
    """Column-aware row-norm: column ``j`` becomes ``M_{:,j} / (‖M_{:,j}‖₂ + ε)``."""
    return row_norm(M.T, eps).T


def centered(M: torch.Tensor) -> torch.Tensor:
    """``Π⊥ M = (I − 11ᵀ/E) M``: remove the mean of the ``E`` rows (the router's shared-shift direction)."""
    E = M.shape[0]
    return (torch.eye(E, dtype=M.dtype) - torch.ones(E, E, dtype=M.dtype) / E) @ M


def one_sided_spectral(M: torch.Tensor, eps: float, alpha: float) -> torch.Tensor:
    """``ν^α · U diag(σ/√(σ²+ε)) Vᵀ`` with ``ν = Σ σ²/√(σ²+ε)`` (floored at ε): left and right coincide."""
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    damped = S / torch.sqrt(S**2 + eps)
    P = U @ torch.diag(damped) @ Vh
    nu = max(float((S * damped).sum()), eps)
    return nu**alpha * P


def hybrid(M: torch.Tensor, eps: float, alpha: float, axis: str = "row") -> torch.Tensor:
    """Row-normalize the units (rows, or columns for ``axis="col"``), then the one-sided spectral map."""
    W = row_norm(M, eps) if axis == "row" else col_norm(M, eps)
    return one_sided_spectral(W, eps, alpha)


UPDATES = {
    "row_norm": lambda M, eps, alpha: row_norm(M, eps),
    "centered_row_norm": lambda M, eps, alpha: row_norm(centered(M), eps),
    "one_sided": one_sided_spectral,
    "left_spectral": lambda M, eps, alpha: one_sided_spectral(centered(M), eps, alpha),
    "hybrid_row": lambda M, eps, alpha: hybrid(M, eps, alpha, "row"),
    "hybrid_col": lambda M, eps, alpha: hybrid(M, eps, alpha, "col"),
}


def symmetric_step(p: torch.Tensor, g: torch.Tensor, state: dict, *, rule: str, lr: float, mu: float,
                   wd: float = 0.0, eps: float = 1e-8, alpha: float = 1.0) -> None:
    """One step: ``m ← μ m + (1−μ) g;  p ← (1 − lr·λ) p − lr·UPDATES[rule](m)``."""
    m = mu * state.get("m", torch.zeros_like(g)) + (1 - mu) * g
    state["m"] = m
    u = UPDATES[rule](m, eps, alpha)
    p.mul_(1 - lr * wd).sub_(lr * u)
