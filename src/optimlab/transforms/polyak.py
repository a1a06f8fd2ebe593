"""Step sizes from the loss value: Polyak steps (SPS_max, heavy-ball Polyak, SANIA's preconditioned Polyak)
and AEGD's energy. All read the closure's loss from the step context (recipes declare ``needs={"loss"}``,
plus ``"global"`` for the norms over all parameters, computed in the pre-pass).

The loss gap ``f − f*`` is clipped at 0 (a loss below the assumed optimum gives a zero step, not a step
uphill), and a zero gradient gives a zero step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..core.context import dot, sq_norm
from ..core.hparams import HParam
from ..core.transform import Bucket, Transform

__all__ = ["PolyakStep", "PolyakHeavyBall", "SaniaPolyak", "EnergyAdaptive"]

F_STAR = HParam("float", 0.0, "lower bound f* of the loss (loss units)")
MAX_STEP = HParam("float", 10.0, "cap γ_b of the Polyak step (parameter units per gradient unit)", low=0.0,
                  low_open=True)


def _gap(b: Bucket) -> float:
    return max(b.ctx.loss_value - b.group["f_star"], 0.0)


class PolyakStep(Transform):
    """SPS_max (Loizou et al., "Stochastic Polyak Step-size for SGD", arXiv:2002.10542):
    ``γ = min((f − f*)/(c‖g‖²), γ_b)`` with ‖g‖ over all parameters; ``u ← γ·g``."""

    name = "sps"
    rule = "γ = min((f − f*)/(c·‖g‖²), γ_b)  (‖g‖ over all parameters);  u ← γ·g"
    hparams = {"c": HParam("float", 0.5, "Polyak constant c (unitless)", low=0.0, low_open=True),
               "f_star": F_STAR, "max_step": MAX_STEP}

    def prepare(self, b: Bucket) -> None:
        b.ctx.add("sps.g_sq", sq_norm(b.grads))

    def _gamma(self, b: Bucket) -> float:
        g_sq = float(b.ctx.total("sps.g_sq"))
        return min(_gap(b) / (b.group["c"] * g_sq), b.group["max_step"]) if g_sq > 0 else 0.0

    def update(self, b: Bucket) -> None:
        gamma = b.ctx.shared("sps.gamma", lambda: self._gamma(b))
        b.scale_by([gamma] * len(b.params))


class PolyakHeavyBall(Transform):
    """Heavy ball with a Polyak step (D13; our reading of Wang, Johansson, Zhang, arXiv:2305.12939): choose γ_t
    in ``x_{t+1} = x_t − γ_t g_t + β(x_t − x_{t−1})`` to minimise the bound on ‖x_{t+1} − x*‖² that convexity
    gives, ``γ_t = (f − f* + β⟨g_t, x_t − x_{t−1}⟩)/(c‖g_t‖²)``, clipped to [0, γ_b]. Kept as torch's momentum
    buffer: ``b ← βb + γ_t g``, ``p ← p − lr·b`` (lr = 1 is the rule; then x_t − x_{t−1} = −lr·b)."""

    name = "polyak_momentum"
    rule = ("γ = clip((f − f* − β·lr·⟨g, b⟩)/(c·‖g‖²), 0, γ_b) (over all parameters);  b ← β·b + γ·g;  u ← b")
    hparams = {"momentum": HParam("float", 0.9, "heavy-ball coefficient β (unitless)", low=0.0, high=1.0,
                                  high_open=True),
               "c": HParam("float", 1.0, "Polyak constant c (unitless; 1 is the derivation's)", low=0.0,
                           low_open=True),
               "f_star": F_STAR, "max_step": MAX_STEP}

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"momentum_buffer": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def prepare(self, b: Bucket) -> None:
        ctx = b.ctx
        ctx.add("polyak_momentum.g_sq", sq_norm(b.grads))
        # β⟨g, x_t − x_{t−1}⟩ with x_t − x_{t−1} = −lr·b (per group: groups may differ in lr or β)
        scale = -b.group["lr"] * b.group["momentum"]
        ctx.add("polyak_momentum.gd", scale * dot(b.grads, b.state(self, "momentum_buffer")))

    def _gamma(self, b: Bucket) -> float:
        g_sq, gd = torch.stack([b.ctx.total(k).double() for k in
                                ("polyak_momentum.g_sq", "polyak_momentum.gd")]).tolist()
        if g_sq <= 0:
            return 0.0
        num = b.ctx.loss_value - b.group["f_star"] + gd
        return min(max(num / (b.group["c"] * g_sq), 0.0), b.group["max_step"])

    def update(self, b: Bucket) -> None:
        gamma = b.ctx.shared("polyak_momentum.gamma", lambda: self._gamma(b))
        bufs = b.state(self, "momentum_buffer")
        torch._foreach_mul_(bufs, b.group["momentum"])
        torch._foreach_add_(bufs, b.grads, alpha=gamma)
        b.set_updates(bufs, owned=False)


class SaniaPolyak(Transform):
    """SANIA's preconditioned Polyak step (Abdukhakimov et al., arXiv:2312.17369), diagonal B without a square
    root (scale invariant): AdaGrad-SQR ``B ← B + g²``, Adam-SQR ``B ← β₂B + (1−β₂)g²``;
    ``u = (f − f*)/‖g‖²_{B⁻¹} · B⁻¹g`` with ‖g‖²_{B⁻¹} = Σ g²/B over all parameters. Any constant factor
    of B cancels, so Adam's bias correction is not needed; B = 0 only where every gradient so far was 0
    (there ``B⁻¹g := 0``)."""

    name = "sania"
    rule = "B ← B + g² (adagrad) or β₂B + (1−β₂)g² (adam);  d = g/B;  u ← (f − f*)/⟨g, d⟩ · d"
    hparams = {"preconditioner": HParam("choice", "adagrad", "diagonal B: AdaGrad-SQR or Adam-SQR",
                                        choices=("adagrad", "adam")),
               "beta2": HParam("float", 0.999, "Adam-SQR decay β₂ of B (unitless)", low=0.0, high=1.0,
                               high_open=True),
               "f_star": F_STAR}

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"precond": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def prepare(self, b: Bucket) -> None:
        # B and d are computed here, into new tensors: the state is written in update(), after the pre-pass
        B = b.state(self, "precond")
        sq = torch._foreach_mul(b.grads, b.grads)
        if b.group["preconditioner"] == "adagrad":
            new = torch._foreach_add(B, sq)
        else:
            beta2 = b.group["beta2"]
            new = torch._foreach_mul(B, beta2)
            torch._foreach_add_(new, sq, alpha=1 - beta2)
        tiny = torch.finfo(b.params[0].dtype).tiny
        d = torch._foreach_div(b.grads, torch._foreach_clamp_min(new, tiny))
        b.ctx.shared("sania.buckets", dict)[id(b)] = (new, d)
        b.ctx.add("sania.gBg", dot(b.grads, d))

    def _gamma(self, b: Bucket) -> float:
        gbg = float(b.ctx.total("sania.gBg"))
        return _gap(b) / gbg if gbg > 0 else 0.0

    def update(self, b: Bucket) -> None:
        gamma = b.ctx.shared("sania.gamma", lambda: self._gamma(b))
        new, d = b.ctx.shared("sania.buckets", dict).pop(id(b))
        torch._foreach_copy_(b.state(self, "precond"), new)
        b.set_updates(d, owned=True)
        b.scale_by([gamma] * len(b.params))


class EnergyAdaptive(Transform):
    """AEGD (Liu & Tian, "AEGD: Adaptive Gradient Descent with Energy", arXiv:2010.05109):
    ``v = g/(2√(f + c))``, ``r ← r/(1 + 2η v²)`` (elementwise; r₀ = √(f(x₀) + c)), ``u = 2 r v`` applied as
    ``x ← x − η u`` with η = lr. The energy ``r`` (state ``aegd.r``) never increases, for any η."""

    name = "aegd"
    rule = "v = g/(2√(f+c));  r ← r/(1 + 2·lr·v²);  u ← 2·r·v"
    hparams = {"c": HParam("float", 1.0, "shift c with f + c > 0 (loss units)", low=0.0, low_open=True)}

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"r": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def prepare(self, b: Bucket) -> None:
        shifted = b.ctx.loss_value + b.group["c"]
        if not shifted > 0:
            raise ValueError(f"{b.ctx.name}: AEGD needs f + c > 0, got f = {b.ctx.loss_value!r}, "
                             f"c = {b.group['c']!r}; raise c")

    def update(self, b: Bucket) -> None:
        root = math.sqrt(b.ctx.loss_value + b.group["c"])
        rs = b.state(self, "r")
        for i, t in enumerate(b.steps):
            if t == 1:
                rs[i].fill_(root)
        v = torch._foreach_mul(b.grads, 1.0 / (2 * root))
        den = torch._foreach_mul(v, v)
        torch._foreach_mul_(den, 2 * b.group["lr"])
        torch._foreach_add_(den, 1.0)
        torch._foreach_div_(rs, den)
        torch._foreach_mul_(v, rs)
        torch._foreach_mul_(v, 2.0)
        b.set_updates(v, owned=True)
