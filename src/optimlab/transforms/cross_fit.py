"""Cross-fitted preconditioner statistics: the numerator (first moment) from one group of the batch's
microbatches, the preconditioner statistics from the other (C2 of the coverage file: "Correcting Stochastic
Update Bias in Preconditioned Language Model Optimizers", arXiv:2605.20756).

Estimating ``m`` and ``v`` (or Sophia's ``h``, Shampoo's ``L``/``R``) from the same gradient couples them: the
update ``m/√v`` is biased towards coordinates whose gradient noise happens to be small on that batch. With the
batch split into groups A and B, ``m`` is fed ``g_A`` (the step closure's gradient) and the statistics ``g_B``
(the closure's ``statistics`` part, re-evaluated in the pre-pass at the same parameters), so the two are
independent given the parameters.

Each transform here is the plain one with the statistics' input swapped: ``CrossFitAdamMoments`` (Adam's
``v`` from ``g_B``), ``CrossFitShampoo`` (``L``, ``R`` and the grafting ``v`` from ``G_B``), ``CrossFitSophia``
(the Hutchinson probe ``u⊙H_B u`` on group B's loss). State keys are the plain transforms' own. When the closure
says ``groups == 1`` (one microbatch: nothing to split) ``g_B = g_A`` and Adam and Shampoo take no second
evaluation: the step is the plain optimizer's. The user API is :mod:`optimlab.cross_fit`.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket
from ..linalg.scaling import saturate, saturate_
from .hessian import SophiaClip, probe
from .moments import AdamMoments
from .second_point import hvp_probe, reevaluate_with
from .shampoo import ShampooPrecondition

__all__ = ["CrossFitAdamMoments", "CrossFitShampoo", "CrossFitSophia", "statistics_closure"]


def statistics_closure(ctx: Any) -> Callable[[], Any]:
    """The closure's ``statistics`` part (group B), or a ``TypeError`` that says how to build one."""
    stats = getattr(ctx.closure, "statistics", None)
    if not callable(stats):
        raise TypeError(f"{ctx.name}: a cross-fitted optimizer needs the batch split into microbatch groups; build "
                        f"the closure with optimlab.cross_fit.microbatch_closure(opt, loss_fn, microbatches) (it "
                        f"carries closure.statistics, the loss of the preconditioner's group)")
    return stats


RATIO_CLIP = HParam("float", 0.0, "bound c on |m̂/(√v̂+ε)| per coordinate (0: no bound, the literal rule). A "
                    "coordinate whose gradient vanishes on group B but not on A (sparse inputs, rare tokens) "
                    "otherwise gets m̂/ε; plain Adam's ratio stays below (1−β1)/√((1−β2)(1−β1²/β2)) ≈ 7.3 at "
                    "betas (0.9, 0.999)", low=0.0)


def _clip_ratio(u: list[Tensor], c: float) -> list[Tensor]:
    if c > 0:
        torch._foreach_clamp_min_(u, -c)
        torch._foreach_clamp_max_(u, c)
    return u


def _single_group(ctx: Any) -> bool:
    return getattr(ctx.closure, "groups", 2) == 1


def _statistic_grads(b: Bucket) -> list[Tensor]:
    """``g_B`` for the bucket's parameters: group B's gradients, computed once a step in the pre-pass (a
    parameter group B does not reach keeps ``g_A``); ``g_A`` itself when there is one group."""
    ctx = b.ctx

    def compute() -> dict[int, Tensor] | None:
        stats = statistics_closure(ctx)
        if _single_group(ctx):
            return None
        _, grads, _ = reevaluate_with(ctx, [None] * len(ctx.params), lambda: None, closure=stats)
        return {id(p): g.detach() for p, g in zip(ctx.params, grads) if g is not None}

    found = ctx.shared("cross_fit.g_b", compute)
    if found is None:
        return [g.detach() for g in b.grads]
    return [found.get(id(p), g.detach()) for p, g in zip(b.params, b.grads)]


class CrossFitAdamMoments(AdamMoments):
    """Adam's ratio with ``m`` from ``g_A`` and ``v`` from ``g_B``: ``m ← β1 m + (1−β1) g_A``,
    ``v ← β2 v + (1−β2) g_B²``, ``u = m̂ / (√v̂ + ε)``."""

    def __init__(self) -> None:
        super().__init__(amsgrad=False)
        self.hparams = {**AdamMoments.hparams, "ratio_clip": RATIO_CLIP}
        self.rule = ("m ← β1·m + (1−β1)·g_A;  v ← β2·v + (1−β2)·g_B²;  u ← m/(1−β1^t) / (sqrt(v/(1−β2^t)) + ε), "
                     "clipped to [−c, c] when ratio_clip c > 0")

    def fuse(self, transforms: tuple) -> None:
        return None  # torch's fused kernel feeds one gradient to both moments

    def prepare(self, b: Bucket) -> None:
        b.ctx.shared("cross_fit.adam", dict)[id(b)] = _statistic_grads(b)

    def update(self, b: Bucket) -> None:
        beta1, beta2 = b.group["betas"]
        g_b = b.ctx.shared("cross_fit.adam", dict).pop(id(b))
        m, v = b.state(self, "exp_avg"), b.state(self, "exp_avg_sq")
        torch._foreach_lerp_(m, b.updates, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, g_b, g_b, 1 - beta2)
        den = torch._foreach_sqrt(v)
        torch._foreach_div_(den, [(1 - beta2**t) ** 0.5 for t in b.steps])
        torch._foreach_add_(den, b.group["eps"])
        b.set_ratio(m, den)
        b.scale_by([1 / (1 - beta1**t) for t in b.steps])
        if b.group["ratio_clip"] > 0:
            b.set_updates(_clip_ratio(b.updates, b.group["ratio_clip"]), owned=True)


class CrossFitShampoo(ShampooPrecondition):
    """Shampoo with ``m`` from ``G_A`` and the statistics ``L``, ``R`` (and Adam grafting's ``v``) from ``G_B``."""

    rule = ("m ← β1 m + (1−β1) G_A;  L ← β2 L + (1−β2) G_B G_Bᵀ, R ← β2 R + (1−β2) G_Bᵀ G_B;  "
            "D = (L+εI)^{-1/4} m̂ (R+εI)^{-1/4};  u ← D·‖A‖/‖D‖, A = m̂/(√v̂+eps) (v from G_B; |A| ≤ c when ratio_clip "
            "c > 0)")
    hparams = {**ShampooPrecondition.hparams, "ratio_clip": RATIO_CLIP}

    def prepare(self, b: Bucket) -> None:
        b.ctx.shared("cross_fit.shampoo", dict)[id(b)] = _statistic_grads(b)

    def _statistics(self, b: Bucket) -> list[Tensor]:
        return b.ctx.shared("cross_fit.shampoo", dict)[id(b)]

    def _adam_direction(self, b: Bucket, m_hat: list[Tensor]) -> list[Tensor]:
        return _clip_ratio(super()._adam_direction(b, m_hat), b.group["ratio_clip"])

    def update(self, b: Bucket) -> None:
        super().update(b)
        b.ctx.shared("cross_fit.shampoo", dict).pop(id(b))


class CrossFitSophia(SophiaClip):
    """Sophia-H with ``m`` from ``g_A`` and the Hutchinson estimate ``ĥ = u⊙(H_B u)`` from group B's loss (its
    closure builds the double-backward graph); the probes ``u`` are Sophia-H's own (seed, step, index)."""

    needs_statistics_graph = True
    rule = "m ← β₁m + (1−β₁)g_A;  every k steps h ← β₂h + (1−β₂)·u⊙H_B u;  u ← clip(m / max(ρ·h, ε), 1)"

    def prepare(self, b: Bucket) -> None:
        if not self._due(b):
            return
        ctx = b.ctx
        seed = b.group["seed"]

        def compute() -> dict[int, Tensor]:
            stats = statistics_closure(ctx)
            st = ctx.opt.state
            zs = [probe(p, seed, int(st[p].get("step", 0)) if p in st else 0, i, "gaussian")
                  for i, p in enumerate(ctx.params)]
            _, _, hz = reevaluate_with(ctx, [None] * len(ctx.params), hvp_probe(ctx, zs), closure=stats)
            # a parameter group B's loss does not reach (no graph there) gets no curvature this step: ĥ = 0
            return {id(p): saturate(z * h.to(z.dtype)) if h is not None else torch.zeros_like(z)
                    for p, z, h in zip(ctx.params, zs, hz)}

        diag = ctx.shared(f"cross_fit.sophia.{seed}", compute)
        ctx.shared("sophia.h_hat", dict)[id(b)] = saturate_([diag[id(p)].clone() for p in b.params])
