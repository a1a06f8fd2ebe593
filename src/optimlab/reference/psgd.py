"""PSGD Kron (whitening and HVP pairs), one matrix at a time, literally: triangular ``Q_L``, ``Q_R`` updated by
the normalised Lie-group step of Li (arXiv:2402.04553; the Kron form of psgd_torch). Test oracle."""

from __future__ import annotations

import torch
from torch import Tensor


def _lower_bound(T: Tensor) -> Tensor:
    """``‖T y‖`` with ``y = Tᵀx/‖Tᵀx‖`` and ``x`` the column of ``T/max|T|`` with the largest norm, times max|T|."""
    a = T.abs().max()
    if a == 0:
        return a
    Tn = T / a
    x = Tn[:, int((Tn * Tn).sum(0).argmax())]
    y = Tn.T @ x
    y = y / y.norm()
    return (Tn @ y).norm() * a


def psgd_fit(QL: Tensor, QR: Tensor, v: Tensor, h: Tensor, mu: float) -> tuple[Tensor, Tensor]:
    """One fit step of both factors on the pair ``(v, h)``::

        A = Q_L h Q_Rᵀ;  B = Q_L^{-T} v Q_R^{-1}
        Q_L ← Q_L − μ triu(AAᵀ − BBᵀ) Q_L / ‖AAᵀ + BBᵀ‖₂⁻;   Q_R ← Q_R − μ triu(AᵀA − BᵀB) Q_R / ‖AᵀA + BᵀB‖₂⁻
    """
    A = QL @ h @ QR.T
    B = torch.linalg.inv(QL).T @ v @ torch.linalg.inv(QR)
    T1, T2 = A @ A.T, B @ B.T
    QLn = QL - mu * torch.triu(T1 - T2) @ QL / _lower_bound(T1 + T2)
    T1, T2 = A.T @ A, B.T @ B
    QRn = QR - mu * torch.triu(T1 - T2) @ QR / _lower_bound(T1 + T2)
    return QLn, QRn


def psgd_kron_step(W: Tensor, G: Tensor, state: dict, *, t: int, v: Tensor | None, hv: Tensor | None, lr: float,
                   momentum: float, precond_lr: float, clip_rms: float, weight_decay: float) -> None:
    """``m ← β m + (1−β) G``; if ``v`` is given, fit ``Q`` on ``(v, hv)`` (``hv`` None: whitening, ``h = m̂``);
    ``u = Q_LᵀQ_L m̂ Q_RᵀQ_R``, RMS clipped to ``clip_rms``; ``W ← (1 − ηλ) W − η u``."""
    m, n = G.shape
    if "m" not in state:
        state.update(m=torch.zeros_like(G), QL=torch.eye(m, dtype=G.dtype), QR=torch.eye(n, dtype=G.dtype))
    state["m"] = momentum * state["m"] + (1 - momentum) * G
    mh = state["m"] / (1 - momentum**t)
    if v is not None:
        state["QL"], state["QR"] = psgd_fit(state["QL"], state["QR"], v, mh if hv is None else hv, precond_lr)
    QL, QR = state["QL"], state["QR"]
    U = QL.T @ QL @ mh @ QR.T @ QR
    rms = U.square().mean().sqrt()
    if clip_rms > 0 and rms > clip_rms:
        U = U * (clip_rms / rms)
    W.mul_(1 - lr * weight_decay).sub_(lr * U)
