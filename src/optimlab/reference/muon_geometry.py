"""Pion, Kaon, AuON, Hybrid-AuON, ROOT and Drop-Muon, transcribed one matrix at a time from their papers.

Plain float64-friendly formulas in each paper's notation, written independently of the fast transforms
(only the seeded draws — Kaon's singular values, Drop-Muon's layers — and ROOT's published coefficient
table are shared, since they are data, not arithmetic). ``W`` is a 2-D weight, ``g`` its gradient.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..transforms.spectral import kaon_noise, root_coefficients
from ..transforms.subset import active_layers

__all__ = ["pion_step", "kaon_step", "auon_step", "hybrid_auon_step", "root_step", "drop_muon_step"]

JORDAN = (3.4445, -4.7750, 2.0315)


def _muon_momentum(g: Tensor, state: dict, mu: float, nesterov: bool) -> Tensor:
    """Keller Jordan's momentum: ``B ← μB + (1−μ)g``; returns ``(1−μ)g + μB`` (Nesterov) or ``B``."""
    B = state.setdefault("B", torch.zeros_like(g))
    B.mul_(mu).add_(g, alpha=1 - mu)
    return (1 - mu) * g + mu * B if nesterov else B.clone()


def _quintic(X: Tensor, coeffs: list[tuple[float, float, float]]) -> Tensor:
    """``X ← aX + b(XXᵀ)X + c(XXᵀ)²X`` for each (a, b, c), on the wide orientation, from ``X/‖X‖_F``."""
    tall = X.shape[0] > X.shape[1]
    X = X.T if tall else X
    X = X / X.norm()
    for a, b, c in coeffs:
        A = X @ X.T
        X = a * X + b * A @ X + c * A @ A @ X
    return X.T if tall else X


def _descend(W: Tensor, D: Tensor, lr: float, wd: float, scale: float) -> None:
    W.mul_(1 - lr * wd).sub_(lr * scale * D)


def _muon_scale(W: Tensor) -> float:
    return math.sqrt(max(1.0, W.shape[0] / W.shape[1]))


def pion_step(W: Tensor, g: Tensor, state: dict, *, lr: float, beta1: float, beta2: float, eps: float,
              c: float, rotation: str = "expm") -> None:
    """Pion (arXiv:2605.12492), as publicly described::

        G_in = Wᵀg − gᵀW,   G_out = gWᵀ − Wgᵀ
        m ← β1 m + (1−β1) G,   v ← β2 v + (1−β2) G⊙G,   A = −m/(√v + ε)        (each side)
        α = c √(d_out d_in) / (‖A_out W + W A_in‖_F + ε)
        W ← E(ηα A_out) W E(ηα A_in),   E = exp | Cayley | I + X + X²/2
    """
    G_in = W.T @ g - g.T @ W
    G_out = g @ W.T - W @ g.T
    A = {}
    for side, G in (("in", G_in), ("out", G_out)):
        m = state.setdefault("m_" + side, torch.zeros_like(G))
        v = state.setdefault("v_" + side, torch.zeros_like(G))
        m.mul_(beta1).add_((1 - beta1) * G)
        v.mul_(beta2).add_((1 - beta2) * G * G)
        A[side] = -m / (v.sqrt() + eps)
    d_out, d_in = W.shape
    alpha = c * math.sqrt(d_out * d_in) / ((A["out"] @ W + W @ A["in"]).norm() + eps)

    def E(X: Tensor) -> Tensor:
        eye = torch.eye(X.shape[0], dtype=X.dtype)
        if rotation == "expm":
            return torch.linalg.matrix_exp(X)
        if rotation == "cayley":
            return torch.linalg.inv(eye - X / 2) @ (eye + X / 2)
        return eye + X + X @ X / 2

    W.copy_(E(lr * alpha * A["out"]) @ W @ E(lr * alpha * A["in"]))


def kaon_step(W: Tensor, g: Tensor, state: dict, *, lr: float, mu: float, wd: float, nesterov: bool,
              step: int, index: int, seed: int, low: float = 0.0, high: float = 1.0, noise: str = "uniform",
              chaotic_steps: int = 5) -> None:
    """Kaon (arXiv:2605.11181): Muon with the momentum's singular values replaced by noise::

        M = U Σ Vᵀ,   O = U diag(ξ) Vᵀ,   ξ_i ~ Uniform[low, high]      (σ_i ≈ 0 → ξ_i = 0)
        or (noise="chaotic")  X₀ = M/‖M‖_F,  X ← 4.1 (I − XXᵀ)² X  (T times),  O = X/1.175
        W ← (1 − ηλ) W − η √max(1, m/n) O
    """
    M = _muon_momentum(g, state, mu, nesterov)
    if noise == "chaotic":
        X = M / M.norm()
        eye = torch.eye(X.shape[0], dtype=X.dtype)
        for _ in range(chaotic_steps):
            Y = eye - X @ X.T
            X = 4.1 * Y @ Y @ X
        O = X / 1.175
    else:
        U, S, Vh = torch.linalg.svd(M, full_matrices=False)
        xi = kaon_noise(seed, step, index, S.numel(), low, high).to(M.dtype)
        xi[S <= S.max() * max(M.shape) * torch.finfo(M.dtype).eps] = 0.0
        O = U @ torch.diag(xi) @ Vh
    _descend(W, O, lr, wd, _muon_scale(W))


def _auon_map(X: Tensor) -> Tensor:
    G = X / (X.norm() + 1e-7)
    return G / (torch.sqrt(torch.mean(torch.cosh(G) ** 2)) + 1e-8)


def auon_step(W: Tensor, g: Tensor, state: dict, *, lr: float, mu: float, wd: float, nesterov: bool = True) -> None:
    """AuON (arXiv:2509.24320, v1)::

        ĝ = Nesterov momentum,  G = ĝ/(‖ĝ‖_F + 1e-7),  U = G/(√(mean cosh(G)²) + 1e-8)
        θ ← (1 − ηλ) θ − η √max(1, m/n) U
    """
    _descend(W, _auon_map(_muon_momentum(g, state, mu, nesterov)), lr, wd, _muon_scale(W))


def hybrid_auon_step(W: Tensor, g: Tensor, state: dict, *, lr: float, mu: float, wd: float,
                     nesterov: bool = True) -> None:
    """Hybrid-AuON (arXiv:2509.24320): one Jordan Newton–Schulz step, then AuON's map."""
    M = _muon_momentum(g, state, mu, nesterov)
    _descend(W, _auon_map(_quintic(M, [JORDAN])), lr, wd, _muon_scale(W))


def root_step(W: Tensor, g: Tensor, state: dict, *, lr: float, mu: float, wd: float, quantile: float = 0.9,
              steps: int = 5, nesterov: bool = True) -> None:
    """ROOT (arXiv:2511.20626, Algorithm "ROOT" and the reference code)::

        M_t = μ M_{t−1} + G_t                      (Nesterov: M̃ = G_t + μ M_t)
        ε = quantile_0.9(|M̃|) + 1e-9,  O = T_ε[M̃] = sign(M̃) max(|M̃| − ε, 0),  B = M̃ − O
        B^orth = AdaNewton(B)                       (5 steps, (a, b, c) by shape)
        θ ← (1 − ηλ) θ − η · 0.2 √max(m, n) · B^orth
    """
    M = state.setdefault("M", torch.zeros_like(g))
    M.mul_(mu).add_(g)
    Mt = g + mu * M if nesterov else M.clone()
    eps = torch.quantile(Mt.abs().flatten(), quantile) + 1e-9
    O = torch.sign(Mt) * torch.relu(Mt.abs() - eps)
    B = Mt - O
    X = _quintic(B, [root_coefficients(*W.shape)] * steps)
    _descend(W, X, lr, wd, 0.2 * math.sqrt(max(W.shape)))


def drop_muon_step(Ws: list[Tensor], gs: list[Tensor], states: list[dict], *, step: int, lr: float, mu: float,
                   wd: float, seed: int, sampling: str = "progressive", keep_prob: float = 0.5) -> list[bool]:
    """Drop-Muon (arXiv:2510.02239) over layers ``1..b`` (input side first); returns the active set::

        S^k ~ D                              (progressive: s^k uniform, S^k = {s^k, …, b})
        i ∉ S^k:  M_i and X_i unchanged
        i ∈ S^k:  M_i ← μ M_i + (1−μ) ∇_i f = U Σ Vᵀ,   X_i ← (1 − ηλ) X_i − η √max(1, m/n) U Vᵀ
    """
    active = active_layers(seed, step, len(Ws), sampling, keep_prob)
    for W, g, st, on in zip(Ws, gs, states, active):
        if not on:
            continue
        M = _muon_momentum(g, st, mu, nesterov=False)
        U, _, Vh = torch.linalg.svd(M, full_matrices=False)
        _descend(W, U @ Vh, lr, wd, _muon_scale(W))
    return active
