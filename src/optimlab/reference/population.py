"""Consensus-based optimization, transcribed literally particle by particle (float64), for parity tests.

Carrillo, Jin, Li, Zhu (2021), anisotropic CBO; the rule as stated in Riedl, Klock, Geldhauser, Fornasier,
"Gradient is All You Need?" (arXiv:2306.09778): v_α = Σ_i x_i ω_α(x_i)/Σ_i ω_α(x_i), ω_α = e^{−αf};
x_i ← x_i − λΔt(x_i − v_α) + σ√Δt·(x_i − v_α)⊙ξ_i.
"""

from __future__ import annotations

import math

import torch

__all__ = ["cbo_step"]


def cbo_step(f, xs: list[torch.Tensor], xis: list[torch.Tensor], *, alpha: float, lam: float, sigma: float,
             dt: float) -> list[torch.Tensor]:
    """One step for particles ``xs`` (1-D tensors) with noises ``xis``; returns the new particles."""
    fs = [float(f(x)) for x in xs]
    fmin = min(fs)
    ws = [math.exp(-alpha * (fi - fmin)) for fi in fs]  # e^{−αf} up to a common factor (it cancels)
    v = sum(w * x for w, x in zip(ws, xs)) / sum(ws)
    return [x - lam * dt * (x - v) + sigma * math.sqrt(dt) * (x - v) * xi for x, xi in zip(xs, xis)]
