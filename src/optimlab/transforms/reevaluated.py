"""Rules that evaluate the gradient at a second point each step (``needs={"reevaluate"}``): finite-difference
gradient regularization, implicit gradient transport, online-to-nonconvex conversion, the SPIDER estimator
and SMB's model-building step; and exact gradient regularization (``needs={"hvp"}``).

The second evaluation happens in the pre-pass (``prepare``), once per step for all parameters of the
optimizer, before any parameter moves: the first bucket's hook calls ``ctx.reevaluate`` through
``ctx.shared``, the others read the result. A parameter that gets no gradient at the second point (the
closure does not reach it) keeps its gradient at the current point there.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..core.context import dot, sq_norm
from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.scaling import saturate_

__all__ = ["FDGradReg", "ExactGradReg", "ImplicitTransport", "OnlineToNonconvex", "Spider", "ModelBuilding"]


def _second_point(b: Bucket, key: str, delta: Callable[[Tensor, dict], Tensor | None]) -> dict[int, Tensor]:
    """Gradients at ``x + δ`` for every parameter (by id), ``δ = delta(p, its group)``; computed once a step."""
    ctx = b.ctx

    def compute() -> dict[str, Any]:
        groups = {id(p): g for g in ctx.opt.param_groups for p in g["params"]}
        deltas = [None if p.grad is None else delta(p, groups[id(p)]) for p in ctx.params]
        loss, grads = ctx.reevaluate(deltas)
        out = {id(p): (g if g is not None else p.grad) for p, g in zip(ctx.params, grads) if p.grad is not None}
        return {"loss": loss, "grads": out}

    return ctx.shared(key, compute)


def _grads_at(b: Bucket, found: dict[str, Any]) -> list[Tensor]:
    return [found["grads"][id(p)] for p in b.params]


class FDGradReg(Transform):
    """Finite-difference gradient regularization (Karakida, Takase, Hayase, Osawa, "Understanding Gradient
    Regularization in Deep Learning: Efficient Finite-Difference Computation and Implicit Bias",
    arXiv:2210.02720): ``g̃ = g + (γ/h)(∇L(θ + h·g) − g)`` ≈ ∇(L + (γ/2)‖∇L‖²) (the ascent step ``h·g``)."""

    name = "fd_gr"
    rule = "g' = ∇L(θ + h·g);  u ← g + (γ/h)(g' − g)"
    hparams = {"gr_gamma": HParam("float", 0.05, "regularization strength γ of (γ/2)‖∇L‖² (parameter units² per "
                                  "loss unit)", low=0.0),
               "gr_h": HParam("float", 0.05, "finite-difference step h along the gradient (parameter units per "
                              "gradient unit)", low=0.0, low_open=True)}

    def prepare(self, b: Bucket) -> None:
        _second_point(b, "fd_gr", lambda p, g: p.grad * g["gr_h"])

    def update(self, b: Bucket) -> None:
        gp = _grads_at(b, b.ctx.shared("fd_gr", dict))
        c = b.group["gr_gamma"] / b.group["gr_h"]
        u = torch._foreach_sub(gp, b.grads)
        torch._foreach_mul_(u, c)
        torch._foreach_add_(u, b.grads)
        b.set_updates(u, owned=True)


class ExactGradReg(Transform):
    """Exact gradient regularization: ``u = g + γ·H g`` = ∇(L + (γ/2)‖∇L‖²), one Hessian-vector product by
    double backward (the closure calls ``loss.backward(create_graph=True)``)."""

    name = "gr"
    rule = "u ← g + γ·∇²L·g"
    hparams = {"gr_gamma": FDGradReg.hparams["gr_gamma"]}

    def prepare(self, b: Bucket) -> None:
        ctx = b.ctx

        def compute() -> dict[int, Tensor]:
            gs = [p.grad.detach() if p.grad is not None else torch.zeros_like(p) for p in ctx.params]
            return {id(p): h for p, h in zip(ctx.params, ctx.hvp(gs))}

        ctx.shared("gr.hg", compute)

    def update(self, b: Bucket) -> None:
        hg = b.ctx.shared("gr.hg", dict)
        grads = [g.detach() for g in b.grads]
        u = torch._foreach_add(grads, [hg[id(p)] for p in b.params], alpha=b.group["gr_gamma"])
        b.set_updates(u, owned=True)


MOMENTUM = HParam("float", 0.9, "momentum β (unitless)", low=0.0, high=1.0, high_open=True)


class ImplicitTransport(Transform):
    """Implicit gradient transport (Arnold, Manzagol, Babanezhad, Mitliagkas, Le Roux, "Reducing the variance
    in online optimization by transporting past gradients", arXiv:1906.03532), normalized as in N-PG-IGT
    (Fatkhullin, Barakat, Kireeva, He, arXiv:2302.01734): ``d ← β d + (1−β)∇f(θ_t + (β/(1−β))(θ_t −
    θ_{t−1}))``; ``u = d/‖d‖`` (‖·‖ over all parameters), so ``x ← x − lr·d/‖d‖``."""

    name = "igt"
    rule = "d ← β·d + (1−β)·∇f(θ + β/(1−β)·(θ − θ_prev));  u ← d/‖d‖ (over all parameters)"
    hparams = {"momentum": MOMENTUM}

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"d": torch.zeros_like(p, memory_format=torch.preserve_format),
                "prev": p.detach().clone(memory_format=torch.preserve_format)}

    def prepare(self, b: Bucket) -> None:
        ctx = b.ctx

        def delta(p: Tensor, g: dict) -> Tensor:  # every state exists by now (created before the pre-pass)
            beta = g["momentum"]
            return (p - ctx.opt.state[p]["igt.prev"]) * (beta / (1 - beta))

        found = _second_point(b, "igt", delta)
        d = [torch.lerp(s["igt.d"], gp, 1 - b.group["momentum"]) for s, gp in zip(b.states, _grads_at(b, found))]
        ctx.shared("igt.d", dict)[id(b)] = d
        ctx.add("igt.d_sq", sq_norm(d))

    def update(self, b: Bucket) -> None:
        d = b.ctx.shared("igt.d", dict).pop(id(b))
        norm = float(b.ctx.total("igt.d_sq")) ** 0.5
        torch._foreach_copy_(b.state(self, "d"), d)
        torch._foreach_copy_(b.state(self, "prev"), b.params)
        b.set_updates(d, owned=True)
        b.scale_by([1.0 / norm if norm > 0 else 0.0] * len(b.params))


class OnlineToNonconvex(Transform):
    """Online-to-nonconvex conversion (Cutkosky, Mehta, Orabona, "Optimal Stochastic Non-smooth Non-convex
    Optimization through Online-to-Non-convex Conversion", arXiv:2302.03775) with clipped online gradient
    descent as the online learner: ``x_t = x_{t−1} + Δ_t``, the gradient taken at ``w_t = x_{t−1} + s_tΔ_t``,
    ``s_t ~ U[0, 1]``; ``Δ_{t+1} = clip_D(Δ_t − lr·g(w_t))`` (‖·‖ over all parameters, radius D).

    Kept as ``Δ = −lr·m``: ``m ← clip_{D/lr}(m)``, ``w = x − s·lr·m``, ``x ← x − lr·m``, ``m ← m + g(w)`` — the
    same iterates at a constant lr, and a schedule's lr scales the step (lr = 0: no step). D and lr for the
    clip are the first group's."""

    name = "o2nc"
    rule = "m ← clip_{D/lr}(m);  s ~ U[0,1];  g = ∇f(x − s·lr·m);  x ← x − lr·m;  m ← m + g"
    hparams = {"radius": HParam("float", 1e-2, "radius D of the online learner's ball, the largest step "
                                "(parameter units)", low=0.0, low_open=True),
               "seed": HParam("int", 0, "seed of the s_t draws (s_t from (seed, step))", low=0)}

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"m": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def _s_and_clip(self, b: Bucket) -> tuple[float, float]:
        ctx = b.ctx
        gen = torch.Generator().manual_seed(int(b.group["seed"]) * 1_000_003 + int(b.steps[0]))
        s = float(torch.rand((), generator=gen, dtype=torch.float64))
        ms = [ctx.opt.state[p]["o2nc.m"] for p in ctx.params if p.grad is not None]
        norm = float(sq_norm(ms)) ** 0.5 if ms else 0.0
        lr = b.group["lr"]
        scale = min(1.0, b.group["radius"] / (lr * norm)) if norm > 0 and lr > 0 else 1.0
        return s, scale

    def prepare(self, b: Bucket) -> None:
        ctx = b.ctx
        s, scale = ctx.shared("o2nc.s", lambda: self._s_and_clip(b))
        _second_point(b, "o2nc", lambda p, g: ctx.opt.state[p]["o2nc.m"] * (-s * scale * g["lr"]))

    def update(self, b: Bucket) -> None:
        _, scale = b.ctx.shared("o2nc.s", lambda: self._s_and_clip(b))
        m = b.state(self, "m")
        torch._foreach_mul_(m, scale)
        u = [x.clone() for x in m]
        torch._foreach_add_(m, _grads_at(b, b.ctx.shared("o2nc", dict)))
        saturate_(m)
        b.set_updates(u, owned=True)


class Spider(Transform):
    """SPIDER / SARAH recursive gradient estimator (Fang, Li, Lin, Zhang, arXiv:1807.01695), on the closure's
    batch: ``v_t = ∇f_S(x_t) − ∇f_S(x_{t−1}) + v_{t−1}``, refreshed to ``v_t = ∇f_S(x_t)`` every q steps (the
    paper's refresh uses a large batch: pass one through the closure on those steps); ``u ← v``."""

    name = "spider"
    rule = "v ← g(x_t) − g(x_{t−1}) + v  (same batch);  every q steps v ← g;  u ← v"
    hparams = {"spider_q": HParam("int", 10, "refresh period q (steps)", low=1)}

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"v": torch.zeros_like(p, memory_format=torch.preserve_format),
                "prev": p.detach().clone(memory_format=torch.preserve_format)}

    def prepare(self, b: Bucket) -> None:
        ctx = b.ctx
        refresh = ctx.shared("spider.refresh", lambda: (b.steps[0] - 1) % b.group["spider_q"] == 0)
        if refresh:
            return
        _second_point(b, "spider", lambda p, g: ctx.opt.state[p]["spider.prev"] - p)

    def update(self, b: Bucket) -> None:
        v, prev = b.state(self, "v"), b.state(self, "prev")
        if b.ctx.shared("spider.refresh", lambda: True):
            torch._foreach_copy_(v, b.grads)
            saturate_(v)
        else:
            gp = _grads_at(b, b.ctx.shared("spider", dict))
            diff = saturate_(torch._foreach_sub(b.grads, gp))  # the difference first: g and g' may be huge
            torch._foreach_add_(v, diff)
            saturate_(v)
        torch._foreach_copy_(prev, b.params)
        b.set_updates(v, owned=False)


class ModelBuilding(Transform):
    """SMB, stochastic model building (Birbil, Martin, Onay, Öztoprak, "Bolstering Stochastic Gradient Descent
    with Model Building", arXiv:2111.07058), our reading: the trial SGD step ``s = −lr·g`` is re-evaluated
    (f⁺, g⁺ on the same batch); if ``f⁺ ≤ f − c·lr‖g‖²`` (Armijo, over all parameters) the trial step is taken;
    otherwise, per tensor, the secant curvature ``κ = ⟨s, g⁺ − g⟩/‖s‖²`` along s builds the quadratic model
    and the step along −g is shortened to its minimiser, length ``min(lr, 1/κ)`` per gradient unit (κ ≤ 0:
    no shortening)."""

    name = "smb"
    rule = ("trial s = −lr·g; f⁺, g⁺ at x + s;  Armijo holds: u ← g;  else per tensor κ = ⟨s, g⁺−g⟩/‖s‖², "
            "u ← min(1, 1/(lr·κ))·g")
    hparams = {"armijo_c": HParam("float", 1e-4, "sufficient-decrease constant c (unitless)", low=0.0, high=1.0)}

    def prepare(self, b: Bucket) -> None:
        ctx = b.ctx
        found = _second_point(b, "smb", lambda p, g: p.grad * (-g["lr"]))
        ctx.add("smb.g_sq", sq_norm(b.grads) * b.group["lr"] * b.group["armijo_c"])
        ctx.shared("smb.f_plus", lambda: float(found["loss"].detach() if isinstance(found["loss"], Tensor)
                                              else found["loss"]))

    def _accept(self, b: Bucket) -> bool:
        return b.ctx.shared("smb.f_plus", float) <= b.ctx.loss_value - float(b.ctx.total("smb.g_sq"))

    def update(self, b: Bucket) -> None:
        if b.ctx.shared("smb.accept", lambda: self._accept(b)):
            return
        lr = b.group["lr"]
        gp = _grads_at(b, b.ctx.shared("smb", dict))
        scales = []
        for g, h in zip(b.grads, gp):
            gg = float(dot([g], [g]))
            # s = −lr·g: κ = ⟨s, g⁺ − g⟩/‖s‖² = −⟨g, g⁺ − g⟩/(lr‖g‖²)  (gᵀHg/‖g‖² on a quadratic)
            kappa = -float(dot([g], [torch.sub(h, g)])) / (lr * gg) if gg > 0 and lr > 0 else 0.0
            scales.append(min(1.0, 1.0 / (lr * kappa)) if kappa > 0 and lr > 0 else 1.0)
        b.scale_by(scales)
