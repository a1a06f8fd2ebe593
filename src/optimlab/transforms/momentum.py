"""Momentum, written once: heavy ball (torch.optim.SGD's rule) and EMA (Muon's rule), each with Nesterov."""

from __future__ import annotations

import torch

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform

__all__ = ["HeavyBall", "EMAMomentum"]

MOMENTUM = HParam("float", 0.9, "momentum coefficient (unitless)", low=0.0, high=1.0, high_open=True)
NESTEROV = HParam("bool", False, "use the Nesterov look-ahead")


def _zero_buffer(p: torch.Tensor, group: dict) -> dict[str, torch.Tensor]:
    return {"momentum_buffer": torch.zeros_like(p, memory_format=torch.preserve_format)}


class HeavyBall(Transform):
    """torch.optim.SGD's momentum: ``b <- mu b + (1 - dampening) u`` (``b <- u`` on the first step);
    the update is ``u + mu b`` with Nesterov, else ``b``."""

    name = "momentum"
    rule = "b ← μ·b + (1−τ)·u  (b ← u at step 1);  u ← u + μ·b (nesterov) or b"
    hparams = {
        "momentum": HParam("float", 0.0, "momentum coefficient (unitless)", low=0.0, high=1.0, high_open=True),
        "dampening": HParam("float", 0.0, "dampening τ of the gradient term (unitless)", low=0.0, high=1.0),
        "nesterov": NESTEROV,
    }
    init = staticmethod(_zero_buffer)

    def check(self, group: dict, owner: str) -> None:
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"{owner}: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']!r}, dampening={group['dampening']!r}")

    def update(self, b: Bucket) -> None:
        mu = b.group["momentum"]
        if mu == 0:
            return
        u, bufs = b.updates, b.state(self, "momentum_buffer")
        first = [i for i, s in enumerate(b.steps) if s == 1]
        if len(first) == len(bufs):
            torch._foreach_copy_(bufs, u)
        else:
            # Parameters in their first step copy the update (torch's rule); the rest accumulate.
            for i in first:
                bufs[i].copy_(u[i])
            rest = [i for i in range(len(bufs)) if b.steps[i] != 1]
            rb = [bufs[i] for i in rest]
            torch._foreach_mul_(rb, mu)
            torch._foreach_add_(rb, [u[i] for i in rest], alpha=1 - b.group["dampening"])
        if b.group["nesterov"]:
            b.set_updates(torch._foreach_add(u, bufs, alpha=mu), owned=True)
        else:
            b.set_updates(bufs, owned=False)


class EMAMomentum(Transform):
    """Exponential moving average: ``b <- mu b + (1 - mu) u``; the update is ``(1 - mu) u + mu b`` with
    Nesterov, else ``b`` (torch.optim.Muon's and Keller Jordan's rule)."""

    name = "momentum"
    rule = "b ← μ·b + (1−μ)·u;  u ← (1−μ)·u + μ·b (nesterov) or b"
    hparams = {"momentum": MOMENTUM, "nesterov": HParam("bool", True, "use the Nesterov look-ahead")}
    init = staticmethod(_zero_buffer)

    def update(self, b: Bucket) -> None:
        mu = b.group["momentum"]
        u, bufs = b.updates, b.state(self, "momentum_buffer")
        torch._foreach_lerp_(bufs, u, 1 - mu)
        if b.group["nesterov"]:
            b.set_updates(torch._foreach_lerp(u, bufs, mu), owned=True)
        else:
            b.set_updates(bufs, owned=False)
