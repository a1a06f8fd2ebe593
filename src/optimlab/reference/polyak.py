"""Polyak-type and energy step sizes, transcribed literally on the concatenated parameter vector (float64):
SPS_max (Loizou et al., arXiv:2002.10542), heavy ball with a Polyak step (our reading of Wang, Johansson,
Zhang, arXiv:2305.12939), SANIA AdaGrad-SQR / Adam-SQR (Abdukhakimov et al., arXiv:2312.17369), AEGD (Liu &
Tian, arXiv:2010.05109) and the induced-metric step (basic variant).

Each ``*_step(xs, gs, f, state, ...)`` takes the parameter tensors ``x_t`` (written in place), the gradients,
the loss value ``f(x_t)`` and a plain dict. No fast paths.
"""

from __future__ import annotations

import math

import torch

__all__ = ["sps_step", "polyak_hb_step", "sania_step", "aegd_step", "induced_metric_step"]


def _flat(ts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


def _write(xs: list[torch.Tensor], x: torch.Tensor) -> None:
    i = 0
    for xi in xs:
        xi.copy_(x[i:i + xi.numel()].view_as(xi))
        i += xi.numel()


def sps_step(xs, gs, f: float, state: dict, *, lr: float = 1.0, c: float = 0.5, f_star: float = 0.0,
             max_step: float = 10.0) -> None:
    """x ← x − lr·min((f − f*)₊/(c‖g‖²), γ_b)·g."""
    x, g = _flat(xs), _flat(gs)
    gg = float(g @ g)
    gamma = min(max(f - f_star, 0.0) / (c * gg), max_step) if gg > 0 else 0.0
    _write(xs, x - lr * gamma * g)


def polyak_hb_step(xs, gs, f: float, state: dict, *, lr: float = 1.0, momentum: float = 0.9, c: float = 1.0,
                   f_star: float = 0.0, max_step: float = 10.0) -> None:
    """With d = x_t − x_{t−1} (0 at the first step):
    γ = clip((f − f* + β⟨g, d⟩)/(c‖g‖²), 0, γ_b);  x_{t+1} = x_t − lr·γ·g + β·d."""
    x, g = _flat(xs), _flat(gs)
    d = state.get("d", torch.zeros_like(x))
    gg = float(g @ g)
    gamma = min(max((f - f_star + momentum * float(g @ d)) / (c * gg), 0.0), max_step) if gg > 0 else 0.0
    new = x - lr * gamma * g + momentum * d
    state["d"] = new - x
    _write(xs, new)


def sania_step(xs, gs, f: float, state: dict, *, lr: float = 1.0, preconditioner: str = "adagrad",
               beta2: float = 0.999, f_star: float = 0.0) -> None:
    """B ← B + g² (AdaGrad-SQR) or β₂B + (1−β₂)g² (Adam-SQR);
    x ← x − lr·(f − f*)₊/(gᵀB⁻¹g)·B⁻¹g  (B⁻¹g := 0 where B = 0)."""
    x, g = _flat(xs), _flat(gs)
    B = state.get("B", torch.zeros_like(x))
    B = B + g * g if preconditioner == "adagrad" else beta2 * B + (1 - beta2) * g * g
    state["B"] = B
    d = torch.where(B > 0, g / torch.where(B > 0, B, torch.ones_like(B)), torch.zeros_like(g))
    gbg = float(g @ d)
    gamma = max(f - f_star, 0.0) / gbg if gbg > 0 else 0.0
    _write(xs, x - lr * gamma * d)


def aegd_step(xs, gs, f: float, state: dict, *, lr: float = 0.1, c: float = 1.0) -> None:
    """r_0 = √(f(x_0) + c)·1;  v = g/(2√(f + c));  r ← r/(1 + 2η v²);  x ← x − 2η r v."""
    x, g = _flat(xs), _flat(gs)
    root = math.sqrt(f + c)
    if "r" not in state:
        state["r"] = torch.full_like(x, root)
    v = g / (2 * root)
    state["r"] = state["r"] / (1 + 2 * lr * v * v)
    _write(xs, x - 2 * lr * state["r"] * v)


def induced_metric_step(xs, gs, state: dict, *, lr: float = 0.01) -> None:
    """θ ← θ − lr·∇L/(1 + ‖∇L‖²)."""
    x, g = _flat(xs), _flat(gs)
    _write(xs, x - lr * g / (1 + float(g @ g)))
