"""The empirical Łojasiewicz exponent of a training trajectory.

The Łojasiewicz gradient inequality ‖∇L(θ)‖ ≥ c·(L(θ) − L*)^θ_L holds near a critical point for analytic
losses; θ_L = 1/2 is the Polyak–Łojasiewicz (strongly convex-like) case, where gradient flow converges
linearly, and θ_L ∈ (1/2, 1) gives sublinear rates. Following the empirical use in "From Optimization
Dynamics to Generalization Bounds via Łojasiewicz Gradient Inequality" (the fit below), the exponent is the
slope of the least-squares line

    log ‖∇L(θ_t)‖ = c + θ_L · log(L(θ_t) − L*)

over the recorded points of a trajectory (steps where L − L* > 0 and the gradient is non-zero).
``lojasiewicz_fit(losses, grad_norms, l_star)`` fits it; ``LojasiewiczTracker`` records (L, ‖∇L‖) after each
``backward()`` of a training loop.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

__all__ = ["LojasiewiczFit", "lojasiewicz_fit", "LojasiewiczTracker"]


@dataclass
class LojasiewiczFit:
    """exponent θ_L (slope), log_constant c (intercept), r2 of the fit, points used, and the window
    (first, last index into the given sequences) after dropping non-positive gaps."""

    exponent: float
    log_constant: float
    r2: float
    points: int
    window: tuple[int, int]

    @property
    def constant(self) -> float:
        return math.exp(self.log_constant)


def lojasiewicz_fit(losses: Sequence[float], grad_norms: Sequence[float], l_star: float = 0.0, *,
                    start: int = 0, stop: int | None = None, min_gap: float = 0.0) -> LojasiewiczFit:
    """Least-squares fit of log‖∇L‖ against log(L − L*) over ``losses[start:stop]``.

    Points with L − L* ≤ ``min_gap`` or a zero / non-finite gradient norm are dropped (the log is undefined
    there; ``min_gap`` can exclude a noise floor). ValueError with fewer than 3 usable points or when all
    usable gaps are equal (no slope to fit).
    """
    if len(losses) != len(grad_norms):
        raise ValueError(f"lojasiewicz_fit: {len(losses)} losses but {len(grad_norms)} gradient norms")
    stop = len(losses) if stop is None else stop
    idx = [i for i in range(start, stop)
           if math.isfinite(losses[i]) and math.isfinite(grad_norms[i])
           and losses[i] - l_star > min_gap and grad_norms[i] > 0]
    if len(idx) < 3:
        raise ValueError(f"lojasiewicz_fit: need >= 3 points with L - L* > {min_gap:g} and a non-zero gradient, "
                         f"got {len(idx)}")
    x = torch.tensor([math.log(losses[i] - l_star) for i in idx], dtype=torch.float64)
    y = torch.tensor([math.log(grad_norms[i]) for i in idx], dtype=torch.float64)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    if sxx <= 1e-24:
        raise ValueError("lojasiewicz_fit: every usable point has the same loss gap; no slope to fit")
    slope = float(xc @ (y - y.mean())) / sxx
    intercept = float(y.mean()) - slope * float(x.mean())
    resid = y - (intercept + slope * x)
    yc = y - y.mean()
    r2 = 1.0 - float(resid @ resid) / max(float(yc @ yc), 1e-300)
    return LojasiewiczFit(slope, intercept, r2, len(idx), (idx[0], idx[-1]))


@dataclass
class LojasiewiczTracker:
    """Record (loss, ‖∇L‖) during training: call ``record(loss, params)`` after ``backward()`` (before the
    optimizer step); ``fit(l_star)`` returns the :class:`LojasiewiczFit` of everything recorded."""

    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)

    def record(self, loss: float | torch.Tensor, params: Iterable[torch.Tensor]) -> None:
        sq = 0.0
        for p in params:
            if p.grad is not None:
                sq += float(p.grad.detach().double().pow(2).sum())
        self.losses.append(float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss))
        self.grad_norms.append(math.sqrt(sq))

    def fit(self, l_star: float = 0.0, **kwargs) -> LojasiewiczFit:
        return lojasiewicz_fit(self.losses, self.grad_norms, l_star, **kwargs)
