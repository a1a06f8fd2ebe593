"""Orthogonal-SGDM and regularized Muon, one matrix at a time (``W`` read as ``(shape[0], rest)``)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .muon_variants import polar


def _mat(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1)


def orthogonal_sgdm_step(W: Tensor, G: Tensor, state: dict, *, lr: float, mu: float, wd: float = 0.0) -> None:
    """Orthogonal-SGDM (Tuddenham, Prügel-Bennett & Hare, arXiv:2202.07052): SGD with momentum on the polar
    factor of the gradient (exact SVD)::

        O_t = U Vᵀ  (G_t = U Σ Vᵀ);   B_t = μ B_{t−1} + O_t;   W_t = (1 − η λ) W_{t−1} − η B_t
    """
    O = polar(_mat(G)).reshape(G.shape)
    B = state["B"] = mu * state.get("B", torch.zeros_like(W)) + O
    W.mul_(1 - lr * wd).sub_(lr * B)


def regularized_muon_step(W: Tensor, G: Tensor, state: dict, *, lr: float, beta: float, eps: float,
                          wd: float = 0.0) -> None:
    """Regularized Muon (our reading of "Move on Muon: A Hamiltonian probability gradient flow perspective of
    Muon")::

        M_t = β M_{t−1} + (1 − β) G_t
        W_t = (1 − η λ) W_{t−1} − η s M_t (M_tᵀ M_t + ε I)^{-1/2},   s = sqrt(max(1, m/n))

    ``(MᵀM + εI)^{-1/2}`` from the eigendecomposition of the n × n matrix ``MᵀM`` whatever the shape.
    """
    M = state["M"] = beta * state.get("M", torch.zeros_like(W)) + (1 - beta) * G
    A = _mat(M)
    m, n = A.shape
    lam, V = torch.linalg.eigh(A.T @ A + eps * torch.eye(n, dtype=A.dtype))
    P = A @ V @ torch.diag(lam.rsqrt()) @ V.T
    W.mul_(1 - lr * wd).sub_(lr * math.sqrt(max(1.0, m / n)) * P.reshape(W.shape))
