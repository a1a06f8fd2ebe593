"""Step sizes from distances and norms: DoG (global and per tensor), polynomial iterate averaging, and the
induced-metric step. Global rules read their reductions over all parameters from the step context's
pre-pass (:mod:`optimlab.core.context`); per-tensor rules stay inside their bucket.

Step sizes are Python floats (one device sync per step for the global rules, one per bucket for L-DoG):
they go into ``scale_by`` so the chain's ``p ← p − lr·u`` applies them, and the group's ``lr`` stays a
multiplier that schedulers may change (1 = the paper's rule).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..core.context import dists, norms, sq_dist, sq_norm
from ..core.hparams import HParam
from ..core.transform import Bucket, Transform

__all__ = ["DoG", "LayerwiseDoG", "PolyAverage", "InducedMetric"]

REPS_REL = HParam("float", 1e-6, "initial movement r_ε relative to 1 + ‖x₀‖ (unitless); the paper suggests 1e-4 "
                  "with batch norm", low=0.0, low_open=True)
DOG_EPS = HParam("float", 1e-8, "added to the first Σ‖g‖² (gradient units²)", low=0.0)


def _x0(p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
    return {"x0": p.detach().clone(memory_format=torch.preserve_format)}


class DoG(Transform):
    """Distance over Gradients with norms over *all* parameters of the optimizer (Ivgi, Hinder, Carmon,
    arXiv:2302.12022): ``η_t = r̄_t / √(ε + Σ_{i≤t}‖g_i‖²)``, ``r̄_t = max(r_ε, max_{i≤t}‖x_i − x_0‖)``,
    ``r_ε = reps_rel·(1 + ‖x_0‖)``. State: ``x0`` (tensor) and the running ``rbar``, ``G`` (floats,
    the same in every parameter; a parameter that joins late takes the current values)."""

    name = "dog"
    rule = "η = r̄/√(ε + Σ_i ‖g_i‖²),  r̄ = max(r_ε, max_i ‖x_i − x₀‖) (norms over all parameters);  u ← η·g"
    hparams = {"reps_rel": REPS_REL, "eps": DOG_EPS}
    scalar_state = {"rbar": 0.0, "G": 0.0}
    init = staticmethod(_x0)

    def prepare(self, b: Bucket) -> None:
        ctx = b.ctx
        zero = torch.zeros((), dtype=torch.float64 if b.params[0].dtype == torch.float64 else torch.float32,
                           device=b.params[0].device)
        ctx.add("dog.g_sq", sq_norm(b.grads))
        first = [i for i, s in enumerate(b.steps) if s == 1]
        rest = [i for i, s in enumerate(b.steps) if s != 1]
        x0s = b.state(self, "x0")
        # ‖x_t − x₀‖ is 0 on a parameter's first step; ‖x₀‖ is only needed then (for r_ε)
        ctx.add("dog.dist_sq", sq_dist([b.params[i] for i in rest], [x0s[i] for i in rest]) if rest else zero)
        ctx.add("dog.x0_sq", sq_norm([b.params[i] for i in first]) if first else zero)
        prev = ctx.shared("dog.prev", lambda: {"rbar": 0.0, "G": 0.0})
        prev["rbar"] = max(prev["rbar"], *(s[f"{self.name}.rbar"] for s in b.states))
        prev["G"] = max(prev["G"], *(s[f"{self.name}.G"] for s in b.states))

    def _eta(self, b: Bucket) -> tuple[float, float, float]:
        ctx, group = b.ctx, b.group
        g_sq, dist_sq, x0_sq = torch.stack([ctx.total(k).double() for k in
                                            ("dog.g_sq", "dog.dist_sq", "dog.x0_sq")]).tolist()
        prev = ctx.shared("dog.prev", dict)
        rbar = max(prev["rbar"], math.sqrt(dist_sq)) if prev["rbar"] > 0 else group["reps_rel"] * (1 + math.sqrt(x0_sq))
        G = (prev["G"] if prev["G"] > 0 else group["eps"]) + g_sq
        return rbar, G, rbar / math.sqrt(G) if G > 0 else 0.0

    def update(self, b: Bucket) -> None:
        rbar, G, eta = b.ctx.shared("dog.eta", lambda: self._eta(b))
        for s in b.states:
            s[f"{self.name}.rbar"], s[f"{self.name}.G"] = rbar, G
        b.scale_by([eta] * len(b.params))


class LayerwiseDoG(Transform):
    """L-DoG: the DoG rule for each tensor on its own (arXiv:2302.12022, Sec. 3):
    ``η_t = r̄_t / √(ε + Σ_{i≤t}‖g_i‖²)`` with the norms of that tensor only. No global pass."""

    name = "ldog"
    rule = "per tensor: η = r̄/√(ε + Σ_i ‖g_i‖²),  r̄ = max(r_ε, max_i ‖x_i − x₀‖);  u ← η·g"
    hparams = {"reps_rel": REPS_REL, "eps": DOG_EPS}
    scalar_state = {"rbar": 0.0, "G": 0.0}
    init = staticmethod(_x0)

    def update(self, b: Bucket) -> None:
        first = all(t == 1 for t in b.steps)  # x = x₀: no distance yet, ‖x₀‖ needed for r_ε
        x_n = norms(b.params)
        d_n = torch.zeros_like(x_n) if first else dists(b.params, b.state(self, "x0"))
        g_n, d_n, x_n = torch.stack([norms(b.grads).to(x_n.dtype), d_n, x_n]).double().tolist()
        eps, reps = b.group["eps"], b.group["reps_rel"]
        etas = []
        for s, gn, dn, xn, t in zip(b.states, g_n, d_n, x_n, b.steps):
            k_r, k_g = f"{self.name}.rbar", f"{self.name}.G"
            s[k_r] = reps * (1 + xn) if t == 1 else max(s[k_r], dn)
            s[k_g] = (eps if t == 1 else s[k_g]) + gn * gn
            etas.append(s[k_r] / math.sqrt(s[k_g]) if s[k_g] > 0 else 0.0)
        b.scale_by(etas)


class PolyAverage(Transform):
    """Applies ``p ← p − lr·u``, then (``average=True``) polynomial-decay averaging (Shamir & Zhang 2013,
    as the DoG paper recommends): ``x̄_t = (1 − w_t) x̄_{t−1} + w_t x_t``, ``w_t = (γ+1)/(t+γ)``.
    ``opt.eval()`` swaps the average into the parameters, ``opt.train()`` swaps it back (bit-exact)."""

    name = "avg"
    rule = "p ← p − lr·u;  x̄ ← x̄ + (γ+1)/(t+γ)·(p − x̄) (average=True; eval() puts x̄ in the parameters)"
    hparams = {"average": HParam("bool", False, "keep the polynomial average x̄ (eval() evaluates at it)"),
               "gamma": HParam("float", 8.0, "averaging exponent γ (unitless; 0 = uniform average)", low=0.0)}

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"xbar": p.detach().clone(memory_format=torch.preserve_format)} if group["average"] else {}

    def update(self, b: Bucket) -> None:
        """Nothing to transform: this block only applies the update (and averages)."""

    def apply(self, b: Bucket) -> None:
        b.descend(b.group["lr"])
        key = f"{self.name}.xbar"
        if not b.group["average"] or key not in b.states[0]:
            return
        gamma = b.group["gamma"]
        for w in sorted(set(b.steps)):
            idx = [i for i, t in enumerate(b.steps) if t == w]
            weight = (gamma + 1) / (w + gamma)
            torch._foreach_lerp_([b.states[i][key] for i in idx], [b.params[i] for i in idx], weight)

    def _swap(self, params: list[Tensor], states: list[dict], group: dict) -> None:
        key = f"{self.name}.xbar"
        for p, s in zip(params, states):
            if key in s:
                tmp = p.detach().clone()
                p.copy_(s[key])
                s[key].copy_(tmp)

    to_eval = _swap
    to_train = _swap


class InducedMetric(Transform):
    """The induced-metric step, basic variant (C19, derived reading, unverified against the paper): the metric
    ``I + ∇L∇Lᵀ`` of the loss graph gives ``u = g / (1 + ‖g‖²)`` with ‖g‖ over all parameters."""

    name = "induced_metric"
    rule = "u ← g / (1 + ‖g‖²)  (‖g‖ over all parameters)"

    def prepare(self, b: Bucket) -> None:
        b.ctx.add("induced_metric.g_sq", sq_norm(b.grads))

    def update(self, b: Bucket) -> None:
        s = b.ctx.shared("induced_metric.scale", lambda: 1.0 / (1.0 + float(b.ctx.total("induced_metric.g_sq"))))
        b.scale_by([s] * len(b.params))
