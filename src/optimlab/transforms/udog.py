"""U-DoG: UniXGrad's extragradient with averaging, step sizes from DoG's distance over gradients.

Kavis, Levy, Bach, Cevher, "UniXGrad: A Universal, Adaptive Algorithm with Optimal Guarantees for
Constrained Optimization" (NeurIPS 2019), arXiv:1910.13857, is the base; Kreisler, Ivgi, Hinder, Carmon,
"Accelerated Parameter-Free Stochastic Optimization" (COLT 2024), arXiv:2404.00666, make its step size
parameter-free. Our reading (the paper's iterate-stabilization details need the paper), with weights
``α_t = t``, ``A_t = Σ_{i≤t} α_i`` and norms over all parameters of the optimizer:

    x̃_t = (α_t y_{t−1} + A_{t−1} z̄_{t−1}) / A_t;   M_t = ∇f(x̃_t)
    r̄_t = max(r_ε, max_{i<t} ‖y_i − x_0‖);   G_t = ε + Σ_{i<t} α_i²‖g_i − M_i‖² + α_t²‖M_t‖²;   η_t = lr·r̄_t/√G_t
    z_t = y_{t−1} − α_t η_t M_t;   z̄_t = (α_t z_t + A_{t−1} z̄_{t−1}) / A_t;   g_t = ∇f(z̄_t)
    y_t = y_{t−1} − α_t η_t g_t

The parameters hold the output point z̄ (x_0 = y_0 = z̄_0). Step t starts at z̄_{t−1} with the closure's
gradient g_{t−1}: it finishes ``y_{t−1}``, re-evaluates at x̃_t, and moves the parameters to z̄_t — two
gradients per step, as UniXGrad. ``lr = 0`` skips the step (state untouched). One step size for the whole
optimizer: ``lr``, ``reps_rel`` and ``eps`` are read from the first group that steps.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..core.context import sq_dist, sq_norm
from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.scaling import saturate_
from .stepsize import DOG_EPS, REPS_REL

__all__ = ["UDoG"]


class UDoG(Transform):
    name = "udog"
    rule = ("x̃ = (α_t y + A_{t−1} z̄)/A_t;  M = ∇f(x̃);  η = lr·r̄/√(ε + Σα_i²‖g_i − M_i‖² + α_t²‖M‖²);  "
            "z = y − α_t η M;  z̄ ← (α_t z + A_{t−1} z̄)/A_t;  y ← y − α_t η ∇f(z̄) (next step)")
    hparams = {"reps_rel": REPS_REL, "eps": DOG_EPS}
    scalar_state = {"t": 0.0, "rbar": 0.0, "G": 0.0, "eta": 0.0}

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        x0 = p.detach().clone(memory_format=torch.preserve_format)
        return {"x0": x0, "y": x0.clone(), "M": torch.zeros_like(x0)}

    def prepare(self, b: Bucket) -> None:
        b.ctx.shared("udog", lambda: self._global(b))

    def _global(self, b: Bucket) -> dict[str, Any]:
        ctx = b.ctx
        ps = [p for p in ctx.params if p.grad is not None]
        sts = [ctx.opt.state[p] for p in ps]
        group = b.group
        if group["lr"] == 0:
            return {"skip": True}
        k = self.name
        t = int(max(s[f"{k}.t"] for s in sts)) + 1
        prev = next(s for s in sts if s[f"{k}.t"] == t - 1) if t > 1 else sts[0]
        rbar, G, eta_prev = prev[f"{k}.rbar"], prev[f"{k}.G"], prev[f"{k}.eta"]
        ys, xs0, Ms = [s[f"{k}.y"] for s in sts], [s[f"{k}.x0"] for s in sts], [s[f"{k}.M"] for s in sts]
        grads = [p.grad for p in ps]
        if t == 1:
            y_new = [y.clone() for y in ys]
            rbar = group["reps_rel"] * (1 + float(sq_norm(xs0)) ** 0.5)
            G = group["eps"]
        else:  # finish y_{t−1} with g_{t−1} = ∇f(z̄_{t−1}), the closure's gradient
            a = float(t - 1)
            y_new = saturate_(torch._foreach_add(ys, grads, alpha=-a * eta_prev))
            G += a * a * float(sq_dist(grads, Ms))
            rbar = max(rbar, float(sq_dist(y_new, xs0)) ** 0.5)
        alpha, A_prev, A = float(t), t * (t - 1) / 2.0, t * (t + 1) / 2.0
        ynew = {id(p): y for p, y in zip(ps, y_new)}
        if t == 1:
            M = {id(p): p.grad for p in ps}
        else:
            _, gm = ctx.reevaluate([None if p.grad is None else (ynew[id(p)] - p) * (alpha / A) for p in ctx.params])
            M = {id(p): (g if g is not None else p.grad) for p, g in zip(ctx.params, gm) if p.grad is not None}
        G_t = G + alpha * alpha * float(sq_norm([M[id(p)] for p in ps]))
        eta = group["lr"] * rbar / math.sqrt(G_t) if G_t > 0 and math.isfinite(G_t) else 0.0
        return {"skip": False, "t": t, "rbar": rbar, "G": G, "eta": eta, "y": ynew, "M": M,
                "alpha": alpha, "A_prev": A_prev, "A": A}

    def update(self, b: Bucket) -> None:
        pass

    def apply(self, b: Bucket) -> None:
        g = b.ctx.shared("udog", dict)
        if g["skip"]:
            return
        k, alpha, A_prev, A = self.name, g["alpha"], g["A_prev"], g["A"]
        for p, s in zip(b.params, b.states):
            y, M = g["y"][id(p)], g["M"][id(p)]
            z = y - (alpha * g["eta"]) * M
            p.mul_(A_prev / A).add_(z, alpha=alpha / A)  # z̄_t = (α_t z_t + A_{t−1} z̄_{t−1})/A_t
            s[f"{k}.y"].copy_(y)
            s[f"{k}.M"].copy_(M)
            s[f"{k}.t"], s[f"{k}.rbar"], s[f"{k}.G"], s[f"{k}.eta"] = float(g["t"]), g["rbar"], g["G"], g["eta"]
        saturate_(b.params)
