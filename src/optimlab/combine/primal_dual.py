"""Primal–dual constrained learning: a Lagrangian with dual variables and their own (ascent) step.

    minimise ℓ_0(θ)  subject to  ℓ_i(θ) ≤ c_i, i = 1..k
    d  = ∇ℓ_0 + Σ_i μ_i ∇ℓ_i                     (the primal direction, written to .grad)
    μ ← [μ + η_μ·(ℓ(θ) − c)]₊                     (projected dual ascent, after d is formed)

Losses in this order: the objective, then the k constraint losses (levels ``levels``). ``dual_lr``
(η_μ, default 0.01, multiplier units per unit of constraint violation per step); ``init`` the starting
multipliers (default 0). The primal step is the optimizer's.
Elenter, Chamon, Ribeiro, "Near-Optimal Solutions of Constrained Learning Problems" (ICLR 2024; arXiv id
not checked here); the rule is the textbook gradient descent–ascent on the empirical Lagrangian.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from .base import Combiner, check_hparam, need

__all__ = ["PrimalDual"]


class PrimalDual(Combiner):
    name = "primal_dual"
    needs_values = True

    def __init__(self, levels: Sequence[float], dual_lr: float = 0.01, init: float | Sequence[float] = 0.0) -> None:
        need(not isinstance(levels, (str, bytes)), TypeError, f"{self.name}: levels must be a sequence of numbers")
        levels = list(levels)
        need(len(levels) >= 1, ValueError, f"{self.name}: levels is empty; give one level per constraint")
        self.levels = [check_hparam(self.name, f"levels[{i}]", c, -1e30, 1e30) for i, c in enumerate(levels)]
        self.n_losses = 1 + len(self.levels)
        self.dual_lr = check_hparam(self.name, "dual_lr", dual_lr, 0.0, 1e6)
        inits = [init] * len(levels) if isinstance(init, (int, float)) else list(init)
        need(len(inits) == len(levels), ValueError,
             f"{self.name}: {len(inits)} initial multipliers for {len(levels)} constraints")
        self.multipliers = torch.tensor([check_hparam(self.name, f"init[{i}]", v, 0.0, 1e30)
                                         for i, v in enumerate(inits)], dtype=torch.float64)
        self.steps = 0

    def _order(self) -> str:
        return "objective, then one loss per constraint level"

    def combine(self, J: Tensor, values: Tensor | None = None) -> Tensor:
        self._check_rows(J)
        need(values is not None and values.shape == (J.shape[0],), ValueError,
             f"{self.name}: needs the {J.shape[0]} loss values to update the multipliers")
        need(bool(torch.isfinite(values).all()), ValueError, f"{self.name}: a loss value is not finite")
        mu = self.multipliers.to(J.dtype)
        d = J[0] + mu @ J[1:]
        slack = values[1:].to(torch.float64) - torch.tensor(self.levels, dtype=torch.float64)
        self.multipliers = (self.multipliers + self.dual_lr * slack).clamp_min(0.0)
        self.steps += 1
        return d

    def violation(self, values: Sequence[float]) -> list[float]:
        """max(0, ℓ_i − c_i) per constraint."""
        return [max(0.0, float(v) - c) for v, c in zip(values, self.levels)]

    def state_dict(self) -> dict[str, Any]:
        return {"combiner": self.name, "levels": list(self.levels), "dual_lr": self.dual_lr,
                "steps": self.steps, "multipliers": self.multipliers.clone()}

    def load_state_dict(self, sd: Any) -> None:
        self._check_sd(sd, {"combiner", "levels", "dual_lr", "steps", "multipliers"})
        need(sd["levels"] == self.levels and sd["dual_lr"] == self.dual_lr, ValueError,
             f"{self.name}: state dict saved with levels={sd['levels']!r}, dual_lr={sd['dual_lr']!r}; this "
             f"combiner has levels={self.levels!r}, dual_lr={self.dual_lr!r}")
        steps, mu = sd["steps"], sd["multipliers"]
        need(isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0, ValueError,
             f"{self.name}: saved 'steps' must be an int >= 0, got {steps!r}")
        need(isinstance(mu, Tensor) and mu.dtype == torch.float64 and mu.shape == (len(self.levels),), TypeError,
             f"{self.name}: saved 'multipliers' must be a float64 tensor of shape ({len(self.levels)},), got "
             f"{mu.dtype if isinstance(mu, Tensor) else type(mu).__name__}"
             f"{tuple(mu.shape) if isinstance(mu, Tensor) else ''}")
        need(bool(torch.isfinite(mu).all()) and bool((mu >= 0).all()), ValueError,
             f"{self.name}: saved multipliers must be finite and >= 0, got {mu.tolist()}")
        self.multipliers, self.steps = mu.clone(), steps

    def __repr__(self) -> str:
        return f"PrimalDual(levels={self.levels}, dual_lr={self.dual_lr})"

