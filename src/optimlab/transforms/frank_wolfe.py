"""Zeroth-order Frank–Wolfe (Sahu, Zaheer, Kar, "Towards Gradient Free and Projection Free Stochastic
Optimization", AISTATS 2019, arXiv:1810.03233) and the linear minimization oracles it needs.

One directional derivative per step along ``z`` uniform on the unit sphere of all parameters (seeded,
regenerated as in :mod:`.zeroth_order`), averaged into ``g``; the step moves toward the constraint set's
vertex that minimizes ``⟨g, v⟩``: no projection, no gradient. With ``t`` the 0-based step::

    c_t = 2/(d^{3/2}(t+8)^{1/3}),  ρ_t = 4/(d^{1/3}(t+8)^{2/3}),  γ_t = 2/(t+8)
    g ← (1−ρ_t) g + ρ_t·d·[f(x + c_t z) − f(x)]/c_t · z;   v = argmin_{v∈C} ⟨g, v⟩;   x ← (1−γ_t) x + γ_t v

The set ``C`` is a product over parameter tensors (each tensor in its own ball/simplex/box).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from .zeroth_order import CHUNK, _check_contiguous, _chunk_z, _chunks, _mix, _Perturbation, refuse_nonfinite, trainable

__all__ = ["lmo", "ZOFrankWolfe", "schedule"]


def lmo(g: Tensor, constraint: str, radius: float) -> Tensor:
    """argmin over the set of ⟨g, v⟩: ℓ1 ball (a signed vertex), simplex {v ≥ 0, Σv = r} (a vertex), box
    [−r, r] (the sign pattern; 0 where g is 0)."""
    flat = g.reshape(-1)
    v = torch.zeros_like(flat)
    if constraint == "l1":
        k = int(flat.abs().argmax())
        v[k] = -radius * (1.0 if flat[k] >= 0 else -1.0)
    elif constraint == "simplex":
        v[int(flat.argmin())] = radius
    elif constraint == "box":
        v = -radius * torch.sign(flat)
    else:
        raise ValueError(f"lmo: constraint must be 'l1', 'simplex' or 'box', got {constraint!r}")
    return v.view_as(g)


def schedule(t: int, d: int) -> tuple[float, float, float]:
    """(c_t, ρ_t, γ_t) of Sahu et al. for the 0-based step t in dimension d."""
    return 2 / (d**1.5 * (t + 8) ** (1 / 3)), 4 / (d ** (1 / 3) * (t + 8) ** (2 / 3)), 2 / (t + 8)


class ZOFrankWolfe(Transform):
    """The averaged one-direction estimate (state ``grad_avg``) and the Frank–Wolfe step toward the LMO's vertex."""

    name = "zo_fw"
    rule = "g ← (1−ρ)g + ρ·d·[f(x+cz) − f(x)]/c·z;  v = LMO_C(g);  x ← (1−γ)x + γv"
    hparams = {
        "constraint": HParam("choice", "l1", "the set C of each parameter tensor", choices=("l1", "simplex", "box")),
        "radius": HParam("float", 1.0, "ℓ1 radius, simplex total or box half-width (parameter units)", low=0.0,
                         low_open=True),
        "seed": HParam("int", 0, "seed of the directions", low=0, high=2**31 - 1),
    }

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        return {"grad_avg": torch.zeros_like(p)}

    def prepare(self, b: Bucket) -> None:
        b.ctx.shared("zo_fw", lambda: self._estimate(b.ctx, b.group, b.steps[0]))

    def _estimate(self, ctx: Any, group: dict, step: int) -> dict[str, Any]:
        params = trainable(ctx)
        _check_contiguous(ctx.name, params)
        d = sum(p.numel() for p in params)
        c, rho, gamma = schedule(step - 1, d)
        seed = group["seed"]
        keys = [[_mix(seed, step, 0, i, k) for k, _ in _chunks(p)] for i, p in enumerate(params)]
        sq = sum(float(_chunk_z(p, keys[i][k], v.numel()).double().square().sum())
                 for i, p in enumerate(params) for k, v in _chunks(p))
        norm = math.sqrt(sq)
        f0 = ctx.value()
        pert = _Perturbation(params, c / norm, keys)  # x + c·z/‖z‖
        try:
            pert.move(+1)
            f1 = ctx.value()
        finally:
            pert.move(0)
        ctx.loss = f0
        if not refuse_nonfinite(ctx, f0, (float(f0), float(f1)), "x and x + c·z"):
            return {"coef": 0.0, "rho": 0.0, "gamma": 0.0, "keys": keys, "index": {}}
        coef = d * (float(f1) - float(f0)) / c / norm  # times the raw Gaussian chunks
        return {"coef": coef, "rho": rho, "gamma": gamma, "keys": keys,
                "index": {id(p): i for i, p in enumerate(params)}}

    def update(self, b: Bucket) -> None:
        est = b.ctx.shared("zo_fw", lambda: self._estimate(b.ctx, b.group, b.steps[0]))
        for p, g in zip(b.params, b.state(self, "grad_avg")):
            i = est["index"][id(p)]
            g.mul_(1 - est["rho"])
            gv = g.view(-1)
            for k, v in _chunks(p):
                gv[k * CHUNK:k * CHUNK + v.numel()].add_(_chunk_z(p, est["keys"][i][k], v.numel()),
                                                         alpha=est["rho"] * est["coef"])

    def apply(self, b: Bucket) -> None:
        est = b.ctx.shared("zo_fw", lambda: self._estimate(b.ctx, b.group, b.steps[0]))
        gamma = min(1.0, b.group["lr"] * est["gamma"])
        if gamma == 0:
            return
        for p, g in zip(b.params, b.state(self, "grad_avg")):
            v = lmo(g, b.group["constraint"], b.group["radius"])
            p.mul_(1 - gamma).add_(v, alpha=gamma)
