"""Muon variants (NorMuon, AdaMuon, AdaGO, MuonEq, MiMuon, the non-Euclidean trust region) and CLion,
transcribed one tensor at a time from their papers' update rules, in the papers' notation.

Matrices are ``W`` of shape ``m × n`` (a tensor with more dimensions is read as ``(shape[0], rest)``, rows =
output neurons). ``Orth(X) = U Vᵀ`` for ``X = U Σ Vᵀ`` is computed exactly by SVD in the input's dtype
(singular values below ``max(m, n)·eps·σ_max`` count as zero), unless an ``orth`` function is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

Orth = Callable[[Tensor], Tensor]


def _nonzero(S: Tensor, m: int, n: int) -> Tensor:
    return S > S.max() * (max(m, n) * torch.finfo(S.dtype).eps)


def polar(X: Tensor) -> Tensor:
    """``U Vᵀ`` over the nonzero singular values of the matrix ``X``."""
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    keep = _nonzero(S, *X.shape).to(X.dtype)
    return (U * keep) @ Vh


def _mat(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1)


def normuon_step(W: Tensor, G: Tensor, state: dict, *, lr: float, beta1: float, beta2: float, eps: float,
                 wd: float, nesterov: bool = False, orth: Orth = polar) -> None:
    """NorMuon, Algorithm 1 of Li et al., "NorMuon: Making Muon more efficient and scalable" (arXiv:2510.05491)::

        M_t = β1 M_{t-1} + (1 − β1) G_t
        O_t = NS5(M_t)
        v_t = β2 v_{t-1} + (1 − β2) mean_cols(O_t ⊙ O_t)          (v_t ∈ R^m)
        Ô_t = O_t ⊘ (sqrt(V_t) + ε)                                (V_t: v_t broadcast over columns)
        η̂_t = 0.2 η sqrt(mn) / ‖Ô_t‖_F
        W_t = W_{t-1} − η λ W_{t-1} − η̂_t Ô_t

    ``nesterov=True`` orthogonalizes ``(1 − β1) G_t + β1 M_t`` instead (the authors' code).
    """
    m = W.shape[0]
    n = W.numel() // m
    M = beta1 * state.get("M", torch.zeros_like(W)) + (1 - beta1) * G
    state["M"] = M
    O = orth(_mat((1 - beta1) * G + beta1 * M if nesterov else M))
    v = beta2 * state.get("v", torch.zeros(m, dtype=W.dtype)) + (1 - beta2) * (O * O).mean(dim=1)
    state["v"] = v
    O_hat = O / (v.sqrt()[:, None] + eps)
    eta_hat = 0.2 * lr * math.sqrt(m * n) / torch.linalg.norm(O_hat)
    W.sub_(lr * wd * W + eta_hat * O_hat.reshape(W.shape))


def adamuon_step(W: Tensor, G: Tensor, state: dict, *, lr: float, beta1: float, beta2: float, eps: float,
                 wd: float, orth: Orth = polar) -> None:
    """AdaMuon, Si, Zhang & Shen, "AdaMuon: Adaptive Muon Optimizer" (arXiv:2507.11005, v2/v3)::

        M_t = β1 M_{t-1} + (1 − β1) G_t
        O_t = NewtonSchulz(Sign(M_t))
        V_t = β2 V_{t-1} + (1 − β2) O_t ⊙ O_t
        Ô_t = O_t ⊘ (sqrt(V_t) + ε)
        W_t = W_{t-1} − η (0.2 sqrt(mn) / ‖Ô_t‖_F · Ô_t + λ W_{t-1})
    """
    m = W.shape[0]
    n = W.numel() // m
    M = beta1 * state.get("M", torch.zeros_like(W)) + (1 - beta1) * G
    state["M"] = M
    O = orth(_mat(torch.sign(M)))
    V = beta2 * state.get("V", torch.zeros_like(O)) + (1 - beta2) * O * O
    state["V"] = V
    O_hat = O / (V.sqrt() + eps)
    W.sub_(lr * (0.2 * math.sqrt(m * n) / torch.linalg.norm(O_hat) * O_hat.reshape(W.shape) + wd * W))


def adago_step(W: Tensor, G: Tensor, state: dict, *, lr: float, mu: float, gamma: float, eps: float, v0: float,
               wd: float = 0.0, orth: Orth = polar) -> None:
    """AdaGO, Zhang, Liu & Schaeffer, "AdaGrad Meets Muon: Adaptive Stepsizes for Orthogonal Updates"
    (arXiv:2509.02981)::

        M_t = μ M_{t-1} + (1 − μ) G_t
        v_t² = v_{t-1}² + min(‖G_t‖², γ²)                          (v_0 given)
        α_t = max(ε, η min(‖G_t‖, γ) / v_t)
        W_t = W_{t-1} − α_t Orth(M_t)

    with decoupled weight decay ``W ← W − η λ W`` when ``wd`` is not zero (not in the paper's algorithm).
    """
    M = mu * state.get("M", torch.zeros_like(W)) + (1 - mu) * G
    state["M"] = M
    g_norm = float(torch.linalg.norm(G))
    v_sq = state.get("v_sq", v0 ** 2) + min(g_norm ** 2, gamma ** 2)
    state["v_sq"] = v_sq
    alpha = max(eps, lr * min(g_norm, gamma) / math.sqrt(v_sq))
    W.sub_(lr * wd * W + alpha * orth(_mat(M)).reshape(W.shape))


def muoneq_step(W: Tensor, G: Tensor, state: dict, *, lr: float, mu: float, wd: float, mode: str = "r",
                eps: float = 1e-8, nesterov: bool = True, adjust: str = "original", orth: Orth = polar) -> None:
    """MuonEq, Chang et al., "MuonEq: Balancing Before Orthogonalization with Lightweight Equilibration"
    (arXiv:2603.28254), in the form of the authors' code (MaeChd/muon-eq)::

        B_t = μ B_{t-1} + G_t;   M_t = G_t + μ B_t (Nesterov) or B_t
        D_r = diag(Σ_j M_ij² + ε),  D_c = diag(Σ_i M_ij² + ε)          (both from M_t)
        M̃_t = D_r^{-1/2} M_t (R)  |  M_t D_c^{-1/2} (C)  |  D_r^{-1/2} M_t D_c^{-1/2} (RC)
        W_t = (1 − η λ) W_{t-1} − η s Orth(M̃_t)

    ``s = sqrt(max(1, m/n))`` (``adjust="original"``) or ``0.2 sqrt(max(m, n))`` (``"match_rms_adamw"``,
    the code's LLM setting).
    """
    B = mu * state.get("B", torch.zeros_like(W)) + G
    state["B"] = B
    M = _mat(G + mu * B if nesterov else B)
    m, n = M.shape
    M_tilde = M
    if "r" in mode:
        M_tilde = M_tilde / (M.square().sum(dim=1, keepdim=True) + eps).sqrt()
    if "c" in mode:
        M_tilde = M_tilde / (M.square().sum(dim=0, keepdim=True) + eps).sqrt()
    s = math.sqrt(max(1.0, m / n)) if adjust == "original" else 0.2 * math.sqrt(max(m, n))
    W.mul_(1 - lr * wd).sub_(lr * s * orth(M_tilde).reshape(W.shape))


def mimuon_step(W: Tensor, G: Tensor, state: dict, *, lr: float, beta: float, tau: float, wd: float) -> None:
    """MiMuon, Huang, Luo & Chen, "MiMuon: Mixed Muon Optimizer with Improved Generalization for Large
    Models" (arXiv:2605.19619), with the exact SVD::

        M_t = β M_{t-1} + (1 − β) G_t = U_t Σ_t V_tᵀ
        α_t = 0 if min_{i≠j} |σ_i − σ_j| > τ (over the nonzero σ) else 1
        W_t = W_{t-1} − η (U_t Σ_t^{α_t} V_tᵀ + λ W_{t-1})
    """
    M = beta * state.get("M", torch.zeros_like(W)) + (1 - beta) * G
    state["M"] = M
    U, S, Vh = torch.linalg.svd(_mat(M), full_matrices=False)
    sigma = S[_nonzero(S, *_mat(M).shape)].tolist()
    gap = min((abs(a - b) for i, a in enumerate(sigma) for b in sigma[i + 1:]), default=math.inf)
    alpha = 0 if gap > tau else 1
    keep = _nonzero(S, *_mat(M).shape).to(S.dtype)
    D = (U * (S ** alpha * keep)) @ Vh
    state["alpha"] = alpha
    W.sub_(lr * (D.reshape(W.shape) + wd * W))


def trust_region_step(x: Tensor, g: Tensor, state: dict, *, lr: float, beta: float, norm: str,
                      wd: float = 0.0) -> None:
    """Stochastic non-Euclidean trust-region gradient method with momentum, Kovalev, "Understanding Gradient
    Orthogonalization for Deep Learning via Non-Euclidean Trust-Region Optimization" (arXiv:2503.12645)::

        m_k = (1 − α) m_{k-1} + α g_k                               (α = 1 − β)
        x_{k+1} = argmin_{‖x − x_k‖ ≤ η} ⟨m_k, x⟩ = x_k − η argmax_{‖d‖≤1} ⟨m_k, d⟩

    argmax: ``m/‖m‖_2`` (ℓ2 = Frobenius), ``sign(m)`` (ℓ∞), ``U Vᵀ`` (spectral), per matrix; decoupled weight
    decay ``x ← x − η λ x`` when ``wd`` is not zero.
    """
    alpha = 1 - beta
    m = (1 - alpha) * state.get("m", torch.zeros_like(x)) + alpha * g
    state["m"] = m
    if norm == "frobenius":
        d = m / torch.linalg.norm(m)
    elif norm == "linf":
        d = torch.sign(m)
    else:
        d = polar(_mat(m)).reshape(x.shape)
    x.sub_(lr * (d + wd * x))


def clion_step(theta: Tensor, g: Tensor, state: dict, *, lr: float, beta1: float, beta2: float, nu: float,
               wd: float = 0.0) -> None:
    """CLion, Huang, Zhang & Chen, "CLion: Efficient Cautious Lion Optimizer with Enhanced Generalization"
    (arXiv:2604.14587)::

        c_t = β1 m_{t-1} + (1 − β1) g_t
        h(c_t) = sign(c_t) if min_{j ∈ S_t} |c_{t,j}| ≥ ν else c_t     (S_t: the nonzero entries of c_t)
        θ_t = θ_{t-1} − η (h(c_t) + λ θ_{t-1})
        m_t = β2 m_{t-1} + (1 − β2) g_t
    """
    m = state.get("m", torch.zeros_like(theta))
    c = beta1 * m + (1 - beta1) * g
    nonzero = c[c != 0].abs()
    h = torch.sign(c) if (nonzero.numel() == 0 or nonzero.min() >= nu) else c
    theta.sub_(lr * (h + wd * theta))
    state["m"] = beta2 * m + (1 - beta2) * g
