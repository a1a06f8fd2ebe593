"""The safe-step radius of softmax cross-entropy (ghosts of softmax), a diagnostic.

Along a step ``x + τ·v`` (``v`` a unit direction), the logits move at first order as ``z + τ·a`` with
``a = J v`` (one JVP of the logits). The cross-entropy of a sample, a log-sum-exp of linear functions of τ,
has complex singularities at distance ``π/Δ_a`` from the real axis, ``Δ_a = max_k a_k − min_k a_k`` the
spread of the logit velocities; so its Taylor series in τ converges only for ``τ < ρ_a = π/Δ_a`` (the
multiclass lower bound; for two classes the exact radius is ``√(δ² + π²)/Δ_a`` with δ the logit margin).
The radius of a batch is the minimum over its samples. ``r = τ/ρ_a`` is the step in units of the radius;
the paper finds no failure at r < 1.

Paper: "Ghosts of Softmax: Complex Singularities That Limit Safe Step Sizes in Cross-Entropy",
arXiv:2603.13552.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .operators import model_jvp

__all__ = ["logit_spread", "radius_from_velocities", "safe_radius", "binary_radius"]


def logit_spread(velocities: torch.Tensor) -> torch.Tensor:
    """``Δ_a`` per sample: max − min of the logit velocities over the last (class) dimension."""
    a = velocities.reshape(-1, velocities.shape[-1])
    return a.amax(-1) - a.amin(-1)


def radius_from_velocities(velocities: torch.Tensor) -> float:
    """``ρ_a = π / max_n Δ_a(n)`` (the batch radius, in units of the direction's length); inf when the
    logits do not move."""
    spread = float(logit_spread(velocities).max())
    return math.pi / spread if spread > 0 else math.inf


def binary_radius(margin: torch.Tensor, velocities: torch.Tensor) -> torch.Tensor:
    """Two classes: the exact radius ``√(δ² + π²)/Δ_a`` per sample (δ = z₁ − z₀, Δ_a = |a₁ − a₀|)."""
    spread = logit_spread(velocities)
    return torch.sqrt(margin.reshape(-1) ** 2 + math.pi ** 2) / spread


def safe_radius(model: nn.Module, inputs: Any, direction: Sequence[torch.Tensor | None],
                normalize: bool = True) -> dict[str, Any]:
    """The safe-step radius of ``model`` on ``inputs`` along ``direction`` (one tensor per trainable
    parameter, in ``model.parameters()`` order).

    Returns ``{"rho": ρ_a, "norm": ‖v‖, "spread": Δ_a per sample, "logits": z}``; with ``normalize`` the
    direction is scaled to unit length first, so ρ_a is a distance in parameter space (a step of length τ
    has ``r = τ/ρ_a``); otherwise ρ_a is in multiples of ``direction``.
    """
    norm = math.sqrt(sum(float(v.double().square().sum()) for v in direction if v is not None))
    if norm == 0:
        raise ValueError("safe_radius: the direction is zero")
    vs = [None if v is None else (v / norm if normalize else v) for v in direction]
    jv, z = model_jvp(model, inputs, vs)
    return {"rho": radius_from_velocities(jv), "norm": norm, "spread": logit_spread(jv), "logits": z}
