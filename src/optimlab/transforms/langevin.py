"""Langevin dynamics (SGLD) with optional projection to the sphere and iterate averaging.

``x ← x − lr·g + √(2·lr/β)·ξ`` with ξ ~ N(0, I) (Welling & Teh, ICML 2011), then, with ``sphere=True``,
``x ← x/‖x‖`` per tensor; the running mean of the iterates is kept in ``avg`` (its direction is the
estimator of "Improved high-dimensional estimation with Langevin dynamics and stochastic weight
averaging"). The noise is regenerated from (seed, step, parameter index) like the zeroth-order
directions, so a resumed run continues bit-identically and nothing is stored.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from .zeroth_order import direction

__all__ = ["Langevin"]


class Langevin(Transform):
    name = "langevin"
    rule = "x ← x − lr·g + √(2·lr/β)·ξ;  x ← x/‖x‖ (sphere);  avg ← avg + (x − avg)/t"
    hparams = {
        "beta": HParam("float", 1e4, "inverse temperature β (inverse loss units)", low=0.0, low_open=True),
        "sphere": HParam("bool", False, "project each tensor to the unit sphere after the step"),
        "seed": HParam("int", 0, "seed of the noise", low=0, high=2**31 - 1),
    }

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        return {"avg": torch.zeros_like(p)}

    def update(self, b: Bucket) -> None:
        pass  # the update is the gradient; apply() adds the noise and averages

    def apply(self, b: Bucket) -> None:
        g = b.group
        lr, scale = g["lr"], math.sqrt(2 * g["lr"] / g["beta"])
        index = {id(p): i for i, p in enumerate(b.ctx.params)}
        u = b.updates
        for p, x, st, t in zip(b.params, u, b.states, b.steps):
            p.add_(x.to(p.dtype), alpha=-lr)
            if scale > 0:
                p.add_(direction(p, g["seed"], t, 0, index[id(p)]), alpha=scale)
            if g["sphere"]:
                n = p.norm()
                if n > 0:
                    p.div_(n)
            avg = st[f"{self.name}.avg"]
            avg.add_(p - avg, alpha=1 / t)
