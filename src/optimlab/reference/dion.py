"""Dion, transcribed one matrix at a time from Algorithm 1 of the paper (centralized form)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["dion_step"]


def dion_step(X: Tensor, G: Tensor, state: dict, *, lr: float, mu: float, wd: float, eps: float = 1e-8) -> None:
    """Dion, Ahn et al., "Dion: Distributed Orthonormalized Updates" (arXiv:2504.05295)::

        B_t = M_{t−1} + G_t
        P_t = QR(B_t Q_{t−1}).Q,   R_t = B_tᵀ P_t                   (PowerIter1, warm start Q_{t−1})
        M_t = B_t − (1 − μ) P_t R_tᵀ                               (error feedback)
        Q_t = ColumnNormalize(R_t)
        X_t = (1 − ηλ) X_{t−1} − η √(m/n) P_t Q_tᵀ

    ``state`` must hold the initial ``Q`` (n × r); ``M`` starts at zero.
    """
    M = state.setdefault("M", torch.zeros_like(G))
    Q = state["Q"]
    B = M + G
    P, _ = torch.linalg.qr(B @ Q)
    R = B.T @ P
    state["M"] = B - (1 - mu) * P @ R.T
    Q = R / (R.norm(dim=0, keepdim=True) + eps)
    state["Q"] = Q
    m, n = X.shape
    X.mul_(1 - lr * wd).sub_(lr * math.sqrt(m / n) * P @ Q.T)
