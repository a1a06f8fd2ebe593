"""Sign-based rules: the sign of the update, and Lion's interpolated sign."""

from __future__ import annotations

import torch

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform

__all__ = ["Sign", "LionSign"]


class Sign(Transform):
    """``u <- sign(u)`` (signSGD / Signum, Bernstein et al., arXiv:1802.04434)."""

    name = "sign"
    rule = "u ← sign(u)"

    def update(self, b: Bucket) -> None:
        u = b.writable()
        torch._foreach_sign_(u)


class LionSign(Transform):
    """Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", arXiv:2302.06675):
    ``u <- sign(β1 m + (1-β1) g);  m <- β2 m + (1-β2) g``."""

    name = "lion"
    rule = "u ← sign(β1·m + (1−β1)·g);  m ← β2·m + (1−β2)·g"
    hparams = {"betas": HParam("betas", (0.9, 0.99), "interpolation β1 and momentum β2 (unitless)", low=0.0,
                               high=1.0, high_open=True)}

    def init(self, p: torch.Tensor, group: dict) -> dict[str, torch.Tensor]:
        return {"exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def update(self, b: Bucket) -> None:
        beta1, beta2 = b.group["betas"]
        g, m = b.updates, b.state(self, "exp_avg")
        c = torch._foreach_lerp(m, g, 1 - beta1)
        torch._foreach_sign_(c)
        torch._foreach_lerp_(m, g, 1 - beta2)
        b.set_updates(c, owned=True)
