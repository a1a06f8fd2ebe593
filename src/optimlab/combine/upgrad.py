"""UPGrad (Jacobian descent) and its instance-wise risk minimisation (IWRM) use.

Each row g_i of the Jacobian J is projected onto the dual cone {x : Jx ≥ 0} (the directions that conflict
with no objective), and the projections are averaged with preference weights u (default 1/m):

    π_i = argmin_{Jx ≥ 0} ½‖x − g_i‖²,    d = Σ_i u_i π_i.

By duality π_i = Jᵀ(e_i + λ_i) with λ_i = argmin_{λ ≥ 0} ½(e_i + λ)ᵀ G (e_i + λ), G = JJᵀ (the m×m
Gramian), so only G is needed. We solve each of these m small QPs as a non-negative least-squares problem
min_{λ≥0} ‖A(λ + e_i)‖² with AᵀA = G (A from the eigendecomposition of G, negative round-off eigenvalues
clipped), using SciPy's active-set NNLS (Lawson–Hanson), which is exact on a rank-deficient G and needs no
regularisation. d = wᵀJ with w = Σ_i u_i (e_i + λ_i).

Tolerance: ⟨d, g_j⟩ = (Gw)_j ≥ 0 up to round-off (tested ≥ −1e-9 on 1000 random Jacobians).
Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization" (arXiv:2406.16232); TorchJD is the
authors' library (used here only as a test oracle).

IWRM: each example's loss is its own objective; ``iwrm_backward`` builds the per-example Jacobian with
``torch.func`` and writes UPGrad's direction to ``.grad``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .base import Combiner, check_hparam, need
from .jacobian import per_sample_jacobian, write_grad

__all__ = ["UPGrad", "upgrad_weights", "project_dual_cone_weights", "iwrm_backward"]


def _factor(G: np.ndarray) -> np.ndarray:
    """A with AᵀA = G (G symmetric PSD up to round-off)."""
    G = 0.5 * (G + G.T)
    s, V = np.linalg.eigh(G)
    s = np.clip(s, 0.0, None)
    return np.sqrt(s)[:, None] * V.T


def project_dual_cone_weights(G: np.ndarray) -> np.ndarray:
    """W [m, m]: row i holds e_i + λ_i, so that π_i = W[i] @ J is g_i projected onto {x : Jx ≥ 0}."""
    from scipy.optimize import nnls

    m = G.shape[0]
    scale = float(np.trace(G)) / m
    if scale <= 0.0:  # every gradient is zero: nothing conflicts
        return np.eye(m)
    A = _factor(G / scale)  # scale-free, so the NNLS tolerance is relative
    W = np.eye(m)
    for i in range(m):
        lam, _ = nnls(A, -A[:, i], maxiter=50 * m)
        W[i] += lam
    return W


def upgrad_weights(G: Tensor, pref: Tensor | None = None) -> Tensor:
    """w [m] with d = wᵀJ = Σ_i pref_i π_i, from the Gramian G = JJᵀ (any float dtype; solved in fp64)."""
    m = G.shape[0]
    u = np.full(m, 1.0 / m) if pref is None else pref.detach().cpu().to(torch.float64).numpy()
    W = project_dual_cone_weights(G.detach().cpu().to(torch.float64).numpy())
    return torch.from_numpy(u @ W).to(dtype=G.dtype, device=G.device)


class UPGrad(Combiner):
    """Jacobian descent with UPGrad: d = Σ_i u_i π_i, π_i = g_i projected onto the dual cone of J's rows.

    ``pref``: preference weights u (default uniform 1/m; non-negative). The direction conflicts with no
    objective (⟨d, g_i⟩ ≥ 0) and equals the mean gradient when no two gradients conflict.
    """

    name = "upgrad"

    def __init__(self, pref: Sequence[float] | None = None) -> None:
        if pref is not None:
            pref = [check_hparam(self.name, f"pref[{i}]", v, 0.0, 1e30) for i, v in enumerate(pref)]
            need(len(pref) > 0 and sum(pref) > 0, ValueError, f"{self.name}: pref must be non-empty with a positive sum")
        self.pref = pref

    def weights(self, J: Tensor) -> Tensor:
        self._check_rows(J)
        pref = None
        if self.pref is not None:
            need(len(self.pref) == J.shape[0], ValueError,
                 f"{self.name}: {len(self.pref)} preference weights for {J.shape[0]} losses")
            pref = torch.tensor(self.pref, dtype=torch.float64)
        Jd = J.to(torch.float64)
        return upgrad_weights(Jd @ Jd.T, pref)

    def combine(self, J: Tensor, values: Tensor | None = None) -> Tensor:
        w = self.weights(J)
        return (w.to(torch.float64) @ J.to(torch.float64)).to(J.dtype)

    def __repr__(self) -> str:
        return f"UPGrad(pref={self.pref})"


def iwrm_backward(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], inputs: Tensor, targets: Tensor,
                  combiner: Combiner | None = None) -> tuple[Tensor, Tensor]:
    """Instance-wise risk minimisation: every example's loss is an objective; UPGrad (default) combines them.

    Adds the direction to ``.grad`` of ``model``'s trainable parameters and returns (direction, per-example
    losses). Call ``opt.zero_grad()`` before and ``opt.step()`` after, as with ``backward()``.
    """
    combiner = combiner if combiner is not None else UPGrad()
    J, losses = per_sample_jacobian(model, loss_fn, inputs, targets, where=f"iwrm ({combiner.name})")
    d = combiner.combine(J, losses.detach().to(torch.float64))
    write_grad(d, model, combiner.name)
    return d, losses.detach()


