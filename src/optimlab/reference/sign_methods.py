"""Lion and Signum, transcribed from their papers' pseudo-code."""

from __future__ import annotations

import torch


def lion_step(theta: torch.Tensor, g: torch.Tensor, state: dict, *, lr: float, beta1: float, beta2: float,
              wd: float) -> None:
    """Lion, Algorithm 2 of Chen et al., "Symbolic Discovery of Optimization Algorithms" (arXiv:2302.06675)::

        c_t = β1 m_{t-1} + (1 − β1) g_t
        θ_t = θ_{t-1} − η_t (sign(c_t) + λ θ_{t-1})
        m_t = β2 m_{t-1} + (1 − β2) g_t
    """
    m = state.setdefault("m", torch.zeros_like(theta))
    c = beta1 * m + (1 - beta1) * g
    theta.sub_(lr * (torch.sign(c) + wd * theta))
    state["m"] = beta2 * m + (1 - beta2) * g


def signum_step(x: torch.Tensor, g: torch.Tensor, state: dict, *, lr: float, beta: float, wd: float = 0.0) -> None:
    """Signum, Algorithm 3 of Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems"
    (arXiv:1802.04434)::

        m_{k+1} = (1 − β) g_k + β m_k
        x_{k+1} = x_k − δ sign(m_{k+1})

    with decoupled weight decay ``x ← x − δ λ x`` when ``wd`` is not zero (not in the paper's algorithm).
    """
    m = state.setdefault("m", torch.zeros_like(x))
    m = (1 - beta) * g + beta * m
    state["m"] = m
    x.sub_(lr * (torch.sign(m) + wd * x))
