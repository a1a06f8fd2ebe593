"""Cross-fitted AdamW, Sophia-H and Shampoo, one tensor at a time, in float64 (test oracles for
:mod:`optimlab.cross_fit`): the plain rules with the numerator fed ``g_A`` and the preconditioner statistics fed
``g_B`` (two microbatch groups of one batch; C2 of the coverage file, arXiv:2605.20756). Literal: every root by a
dense ``eigh``; nothing batched, scaled or cached beyond what the method keeps.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["adamw_cf_step", "sophia_h_cf_step", "shampoo_cf_step"]


def adamw_cf_step(p: Tensor, g_a: Tensor, g_b: Tensor, state: dict, *, lr: float, betas=(0.9, 0.999),
                  eps: float = 1e-8, weight_decay: float = 0.01) -> None:
    """t ← t+1;  m ← β1 m + (1−β1) g_A;  v ← β2 v + (1−β2) g_B²;
    p ← (1 − lr λ) p − lr · (m/(1−β1^t)) / (√(v/(1−β2^t)) + ε)."""
    t = state["t"] = state.get("t", 0) + 1
    m = betas[0] * state.get("m", torch.zeros_like(p)) + (1 - betas[0]) * g_a
    v = betas[1] * state.get("v", torch.zeros_like(p)) + (1 - betas[1]) * g_b * g_b
    state["m"], state["v"] = m, v
    u = (m / (1 - betas[0] ** t)) / ((v / (1 - betas[1] ** t)).sqrt() + eps)
    p.copy_(p * (1 - lr * weight_decay) - lr * u)


def sophia_h_cf_step(p: Tensor, g_a: Tensor, hvp_b: Callable[[Tensor], Tensor], z: Tensor, state: dict, *,
                     lr: float, betas=(0.965, 0.99), rho: float = 0.01, eps: float = 1e-12, update_period: int = 10,
                     weight_decay: float = 0.1) -> None:
    """t ← t+1;  m ← β₁m + (1−β₁)g_A;  if (t−1) mod k = 0: h ← β₂h + (1−β₂)·z⊙(H_B z);
    p ← p − lr·λ·p − lr·clip(m / max(ρh, ε), 1).  ``hvp_b(z)``: group B's Hessian times z."""
    t = state["t"] = state.get("t", 0) + 1
    m = betas[0] * state.get("m", torch.zeros_like(p)) + (1 - betas[0]) * g_a
    h = state.get("h", torch.zeros_like(p))
    if (t - 1) % update_period == 0:
        h = betas[1] * h + (1 - betas[1]) * z * hvp_b(z)
    state["m"], state["h"] = m, h
    p.copy_(p - lr * weight_decay * p - lr * torch.clamp(m / torch.clamp(rho * h, min=eps), -1.0, 1.0))


def _inv_root(a: Tensor, p: int, eps: float) -> Tensor:
    lam, v = torch.linalg.eigh(a)
    return v @ torch.diag((lam.clamp_min(0) + eps) ** (-1.0 / p)) @ v.T


def shampoo_cf_step(w: Tensor, g_a: Tensor, g_b: Tensor, state: dict, *, lr: float, betas=(0.9, 0.999),
                    matrix_eps: float = 1e-12, eps: float = 1e-8, k: int = 10, grafting: str = "adam",
                    weight_decay: float = 0.01) -> None:
    """One matrix, one block (its dims ≤ the block size)::

        t ← t+1;  m ← β1 m + (1−β1) G_A;  L ← β2 L + (1−β2) G_B G_Bᵀ;  R ← β2 R + (1−β2) G_Bᵀ G_B
        if (t−1) mod k = 0: P_L = (L + εI)^{-1/4}, P_R = (R + εI)^{-1/4}
        D = P_L m̂ P_R;  grafting "adam": v ← β2 v + (1−β2) G_B², A = m̂/(√v̂ + eps), D ← D·‖A‖_F/‖D‖_F
        W ← (1 − lr λ) W − lr D
    """
    b1, b2 = betas
    t = state["t"] = state.get("t", 0) + 1
    m = b1 * state.get("m", torch.zeros_like(w)) + (1 - b1) * g_a
    big_l = b2 * state.get("L", torch.zeros(w.shape[0], w.shape[0], dtype=w.dtype)) + (1 - b2) * g_b @ g_b.T
    big_r = b2 * state.get("R", torch.zeros(w.shape[1], w.shape[1], dtype=w.dtype)) + (1 - b2) * g_b.T @ g_b
    state["m"], state["L"], state["R"] = m, big_l, big_r
    if (t - 1) % k == 0:
        state["PL"], state["PR"] = _inv_root(big_l, 4, matrix_eps), _inv_root(big_r, 4, matrix_eps)
    m_hat = m / (1 - b1 ** t)
    d = state["PL"] @ m_hat @ state["PR"]
    if grafting == "adam":
        v = b2 * state.get("v", torch.zeros_like(w)) + (1 - b2) * g_b * g_b
        state["v"] = v
        a = m_hat / ((v / (1 - b2 ** t)).sqrt() + eps)
        d = d * (a.norm() / d.norm()) if d.norm() > 0 else d
    w.copy_(w * (1 - lr * weight_decay) - lr * d)
