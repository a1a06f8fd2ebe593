"""(N-)HARPG's Hessian-aided recursive momentum (Fatkhullin, Barakat, Kireeva, He, "Stochastic Policy Gradient
Methods: Improved Sample Complexity for Fisher-non-degenerate Policies", ICML 2023, arXiv:2302.01734).

Per step t ≥ 2, with ``q ~ U(0, 1)``::

    θ̂ = q θ_t + (1 − q) θ_{t−1}
    v = ∇²f(θ̂) (θ_t − θ_{t−1})            (a Hessian-vector product at θ̂, on a sample drawn at θ̂)
    d ← β (d + v) + (1 − β) g_t             (g_t: the gradient at θ_t; the paper's η_t = 1 − β)
    θ ← θ − lr · d / ‖d‖                    (N-HARPG; ‖·‖ over all parameters)

and ``d = g_1`` at the first step. Because ``E_q[∇²f(θ̂)(θ_t − θ_{t−1})] = ∇f(θ_t) − ∇f(θ_{t−1})`` exactly
(the fundamental theorem of calculus along the segment), ``d`` is a recursive (STORM-type) estimator that needs
no importance sampling: the gradient difference is transported by one HVP on a fresh sample at θ̂.

The HVP at θ̂ is taken by re-evaluating the closure there (``needs={"reevaluate"}``) and differentiating its
gradients once more before the parameters are restored (:func:`.second_point.reevaluate_with`); the closure
must call ``loss.backward(create_graph=True)``. Cost: 2 closure calls per step (1 at the first step).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..core.context import sq_norm
from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.scaling import saturate_
from .second_point import hvp_probe, reevaluate_with

__all__ = ["HessianAidedMomentum", "harpg_q"]


def harpg_q(seed: int, step: int) -> float:
    """The step's ``q ~ U(0, 1)`` (a function of the seed and the step, so a checkpoint resumes exactly)."""
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))
    return float(torch.rand((), generator=gen, dtype=torch.float64))


class HessianAidedMomentum(Transform):
    """``d ← β(d + ∇²f(θ̂)(θ_t − θ_{t−1})) + (1−β)g``, θ̂ uniform on the segment; ``u = d/‖d‖`` (module doc)."""

    name = "harpg"
    rule = ("q ~ U(0,1); θ̂ = qθ + (1−q)θ_prev;  d ← β·(d + ∇²f(θ̂)(θ − θ_prev)) + (1−β)·g  (d = g at t = 1);  "
            "u ← d/‖d‖ (over all parameters)")
    hparams = {"momentum": HParam("float", 0.9, "momentum β = 1 − η: weight of the transported estimate "
                                  "(unitless)", low=0.0, high=1.0, high_open=True),
               "seed": HParam("int", 0, "seed of the q draws (q from (seed, step))", low=0)}

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"d": torch.zeros_like(p, memory_format=torch.preserve_format),
                "prev": p.detach().clone(memory_format=torch.preserve_format)}

    def _correction(self, b: Bucket) -> dict[int, Tensor]:
        """``∇²f(θ̂)(θ_t − θ_{t−1})`` for every parameter (by id), once a step; empty at every first step."""
        ctx = b.ctx
        st = ctx.opt.state
        group_of = {id(p): g for g in ctx.opt.param_groups for p in g["params"]}
        live = [p.grad is not None and st[p]["step"] > 1 for p in ctx.params]
        if not any(live):
            return {}
        q = harpg_q(group_of[id(b.params[0])]["seed"], max(st[p]["step"] for p in ctx.params if p.grad is not None))
        vectors = [p.detach() - st[p]["harpg.prev"] if on else None for p, on in zip(ctx.params, live)]
        deltas = [v * -(1.0 - q) if v is not None else None for v in vectors]  # θ̂ − θ_t = (1−q)(θ_prev − θ_t)
        _, _, hv = reevaluate_with(ctx, deltas, hvp_probe(ctx, vectors))
        # a parameter without a gradient graph at θ̂ (the closure did not reach it there) gets no transport term
        # this step: d ← β·d + (1−β)·g for it. (The Hessian at θ_t is no fallback: re-evaluating moved and restored
        # the parameters, which invalidates the graph of the gradients at θ_t.)
        return {id(p): h if h is not None else torch.zeros_like(p) for p, h, on in zip(ctx.params, hv, live) if on}

    def prepare(self, b: Bucket) -> None:
        ctx = b.ctx
        hv = ctx.shared("harpg.hv", lambda: self._correction(b))
        beta = b.group["momentum"]
        d = []
        for p, g, s, t in zip(b.params, b.grads, b.states, b.steps):
            g = g.detach()
            if t == 1 or id(p) not in hv:
                d.append(g.clone())
                continue
            new = (s["harpg.d"] + hv[id(p)]).mul_(beta).add_(g, alpha=1 - beta)
            d.append(new)
        saturate_(d)
        ctx.shared("harpg.d", dict)[id(b)] = d
        ctx.add("harpg.d_sq", sq_norm(d))

    def update(self, b: Bucket) -> None:
        d = b.ctx.shared("harpg.d", dict).pop(id(b))
        norm = float(b.ctx.total("harpg.d_sq")) ** 0.5
        torch._foreach_copy_(b.state(self, "d"), d)
        torch._foreach_copy_(b.state(self, "prev"), [p.detach() for p in b.params])
        b.set_updates(d, owned=True)
        b.scale_by([1.0 / norm if 0 < norm < float("inf") else 0.0] * len(b.params))
