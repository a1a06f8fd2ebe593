"""Schedule-Free SGD and AdamW (Defazio et al., "The Road Less Scheduled", arXiv:2405.15682) and SF-NorMuon
(Apte et al., "Anytime Training with Schedule-Free Spectral Optimization", arXiv:2605.23061), transcribed
literally with the three sequences kept explicitly.

Each ``*_step(y, g, state, ...)`` takes the parameter holding ``y_t``, the gradient ``g_t = ∇f(y_t)`` and a
plain dict (``t``, ``z``, ``x`` and the running weight sum), performs step ``t`` and writes ``y_{t+1}``
into the parameter. ``x_eval(state)`` is the point to evaluate. Float64-friendly; no fast paths.
"""

from __future__ import annotations

import math

import torch

__all__ = ["sf_sgd_step", "sf_adamw_step", "sf_normuon_step", "x_eval"]


def _begin(y: torch.Tensor, state: dict) -> int:
    if "z" not in state:  # z_1 = x_1 = the initial point
        state.update(t=0, z=y.detach().clone(), x=y.detach().clone(), weight_sum=0.0)
    state["t"] += 1
    return state["t"]


def _average(y: torch.Tensor, state: dict, t: int, gamma: float, beta: float, r: float, power: float) -> None:
    """``c_{t+1} = t^r γ_t^p / Σ_{i≤t} i^r γ_i^p``;  ``x_{t+1} = (1 − c) x_t + c z_{t+1}``;
    ``y_{t+1} = (1 − β) z_{t+1} + β x_{t+1}``."""
    weight = t**r * gamma**power if gamma > 0 else 0.0
    state["weight_sum"] += weight
    c = weight / state["weight_sum"] if state["weight_sum"] > 0 else 0.0
    state["x"] = (1 - c) * state["x"] + c * state["z"]
    y.copy_((1 - beta) * state["z"] + beta * state["x"])


def _warmup(lr: float, t: int, warmup: int) -> float:
    return lr * min(1.0, t / warmup) if warmup > 0 else lr


def sf_sgd_step(y: torch.Tensor, g: torch.Tensor, state: dict, *, lr: float, beta: float, wd: float = 0.0,
                warmup: int = 0, r: float = 0.0, weight_lr_power: float = 2.0) -> None:
    """Schedule-Free SGD (the paper's Eq. for SGD, with its warmup and weighting)::

        γ_t = γ·min(1, t/T_warmup)
        z_{t+1} = z_t − γ_t (g_t + λ y_t)
        x_{t+1} = (1 − c_{t+1}) x_t + c_{t+1} z_{t+1},   c_{t+1} = γ_t² / Σ_{i=1}^t γ_i²
        y_{t+1} = (1 − β) z_{t+1} + β x_{t+1}
    """
    t = _begin(y, state)
    gamma = _warmup(lr, t, warmup)
    state["z"] = state["z"] - gamma * (g + wd * y)
    _average(y, state, t, gamma, beta, r, weight_lr_power)


def sf_adamw_step(y: torch.Tensor, g: torch.Tensor, state: dict, *, lr: float, beta1: float, beta2: float,
                  eps: float, wd: float = 0.0, warmup: int = 0, r: float = 0.0,
                  weight_lr_power: float = 2.0) -> None:
    """Schedule-Free AdamW, Algorithm 1 of arXiv:2405.15682::

        v_t = β2 v_{t−1} + (1 − β2) g_t²
        γ_t = γ sqrt(1 − β2^t) min(1, t/T_warmup)
        z_{t+1} = z_t − γ_t g_t/(sqrt(v_t) + ε) − γ_t λ y_t
        c_{t+1} = γ_t² / Σ_{i=1}^t γ_i²
        x_{t+1} = (1 − c_{t+1}) x_t + c_{t+1} z_{t+1}
        y_{t+1} = (1 − β1) z_{t+1} + β1 x_{t+1}
    """
    t = _begin(y, state)
    v = state.get("v", torch.zeros_like(g))
    v = beta2 * v + (1 - beta2) * g * g
    state["v"] = v
    gamma = _warmup(lr, t, warmup) * math.sqrt(1 - beta2**t)
    state["z"] = state["z"] - gamma * g / (v.sqrt() + eps) - gamma * wd * y
    _average(y, state, t, gamma, beta1, r, weight_lr_power)


def sf_normuon_step(y: torch.Tensor, g: torch.Tensor, state: dict, *, lr: float, mu: float, beta1: float,
                    beta2: float, eps: float, wd: float = 0.0, warmup: int = 0) -> None:
    """SF-NorMuon on one matrix ``m × n`` (rows = output neurons), polar factor by exact SVD::

        m_t = μ m_{t−1} + (1 − μ) g_t;   P_t = U Vᵀ  (m_t = U Σ Vᵀ)
        v_t = β2 v_{t−1} + (1 − β2) mean_cols(P_t ⊙ P_t);   P̂_t = P_t ⊘ (sqrt(v_t) + ε)
        η_t = η min(1, t/T_warmup);   η̂_t = 0.2 η_t sqrt(mn) / ‖P̂_t‖_F
        z_{t+1} = z_t − η λ z_t − η̂_t P̂_t                      (decay at the fast iterate z)
        c_{t+1} = η_t² / Σ_{i≤t} η_i²;   x_{t+1} = (1 − c) x_t + c z_{t+1}
        y_{t+1} = (1 − β1) z_{t+1} + β1 x_{t+1}
    """
    t = _begin(y, state)
    m = mu * state.get("m", torch.zeros_like(g)) + (1 - mu) * g
    state["m"] = m
    U, _, Vh = torch.linalg.svd(m, full_matrices=False)
    P = U @ Vh
    v = beta2 * state.get("v", torch.zeros(g.shape[0], dtype=g.dtype)) + (1 - beta2) * (P * P).mean(dim=1)
    state["v"] = v
    P_hat = P / (v.sqrt() + eps)[:, None]
    eta_t = _warmup(lr, t, warmup)
    rows, cols = g.shape
    eta_hat = 0.2 * eta_t * math.sqrt(rows * cols) / P_hat.norm()
    state["z"] = state["z"] - lr * wd * state["z"] - eta_hat * P_hat
    _average(y, state, t, eta_t, beta1, 0.0, 2.0)


def x_eval(state: dict) -> torch.Tensor:
    """The averaged iterate ``x_t``, where the loss is evaluated."""
    return state["x"]
