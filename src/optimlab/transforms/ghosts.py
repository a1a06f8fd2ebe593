"""The ghosts-of-softmax step controller: any chain's step, scaled so that it stays inside the safe radius.

Paper: "Ghosts of Softmax: Complex Singularities That Limit Safe Step Sizes in Cross-Entropy",
arXiv:2603.13552 (see :mod:`optimlab.diagnostics.ghosts`).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..diagnostics.ghosts import logit_spread

__all__ = ["SafeRadiusStep"]


class SafeRadiusStep(Transform):
    """Last transform of a chain: holds back the chain's step ``Δ = −lr·u`` of every bucket, then (post-pass,
    once per step over all parameters) takes one JVP of the closure's outputs along Δ, ``a = J Δ``, so that
    ``r = τ/ρ_a = max_n Δ_a(n)/π`` (τ = ‖Δ‖; ρ_a the radius along Δ/τ), and applies ``s·Δ`` with
    ``s = min(1, c/r)``: the step length never exceeds ``c·ρ_a``. State: ``r`` (the ratio before scaling) and
    ``scale`` (s) of the last step, per parameter (the same numbers on every parameter of the optimizer)."""

    name = "ghosts"
    rule = "Δ = −lr·u;  r = max_n(max_k (JΔ)_nk − min_k (JΔ)_nk)/π;  x ← x + min(1, c/r)·Δ"
    hparams = {"radius_c": HParam("float", 1.0, "largest step in units of the safe radius ρ_a (unitless; the "
                                  "first group's value is used for the whole optimizer)", low=0.0, low_open=True)}

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"r": torch.zeros((), dtype=torch.float32, device=p.device),
                "scale": torch.ones((), dtype=torch.float32, device=p.device)}

    def update(self, b: Bucket) -> None:
        pass

    def apply(self, b: Bucket) -> None:
        u = b.updates
        lr = b.group["lr"]
        steps = [x.to(p.dtype) * (-lr) for x, p in zip(u, b.params)]
        b.ctx.shared("ghosts.steps", dict).update({id(p): d for p, d in zip(b.params, steps)})
        b.ctx.shared("ghosts.c", lambda: b.group["radius_c"])

    def _factor(self, b: Bucket) -> tuple[float, float]:
        ctx = b.ctx
        steps = ctx.shared("ghosts.steps", dict)
        vectors = [steps.get(id(p)) for p in ctx.params]
        jv, _ = ctx.jvp(vectors)
        r = float(logit_spread(jv).max()) / math.pi if jv.numel() else 0.0
        c = ctx.shared("ghosts.c", lambda: b.group["radius_c"])
        if not math.isfinite(r):
            return r, 0.0  # a step whose logit velocities overflow is not taken
        return r, (min(1.0, c / r) if r > 0 else 1.0)

    def finish(self, b: Bucket) -> None:
        r, s = b.ctx.shared("ghosts.factor", lambda: self._factor(b))
        steps = b.ctx.shared("ghosts.steps", dict)
        torch._foreach_add_(b.params, [steps[id(p)] for p in b.params], alpha=s)
        for st in b.states:
            st["ghosts.r"].fill_(min(r, 3e38))
            st["ghosts.scale"].fill_(s)
