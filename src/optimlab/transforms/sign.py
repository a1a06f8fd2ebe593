"""Sign-based rules: the sign of the update, Lion's interpolated sign, and CLion's cautious version of it."""

from __future__ import annotations

import torch

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform

__all__ = ["Sign", "LionSign", "CautiousLionSign"]


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


class CautiousLionSign(Transform):
    """CLion (Huang, Zhang & Chen, "CLion: Efficient Cautious Lion Optimizer with Enhanced Generalization",
    arXiv:2604.14587): Lion's ``c = β1 m + (1-β1) g``, but the sign is taken only when it is safe:

    ``u = sign(c)`` if ``min_{j: c_j ≠ 0} |c_j| ≥ ν``, else ``u = c`` (the identity); then
    ``m <- β2 m + (1-β2) g``. A tiny nonzero ``c_j`` is what makes ``sign`` unstable in the data (Lion's
    generalization bound degrades with the smallest nonzero entry); below ν the step falls back to
    momentum SGD. The paper states the test for the whole parameter vector; here it is made per
    parameter tensor (the same when the model has one tensor).
    """

    name = "clion"
    rule = "c ← β1·m + (1−β1)·g;  u ← sign(c) if min_{c_j≠0}|c_j| ≥ ν else c;  m ← β2·m + (1−β2)·g"
    hparams = {"betas": LionSign.hparams["betas"],
               "sign_threshold": HParam("float", 1e-8, "ν: least magnitude of every nonzero entry of c for "
                                                       "the sign step (gradient units)", low=0.0)}

    def init(self, p: torch.Tensor, group: dict) -> dict[str, torch.Tensor]:
        return {"exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def update(self, b: Bucket) -> None:
        beta1, beta2 = b.group["betas"]
        nu = b.group["sign_threshold"]
        g, m = b.updates, b.state(self, "exp_avg")
        c = torch._foreach_lerp(m, g, 1 - beta1)
        for x in c:  # one gate per tensor; no host sync: the choice stays on the device
            a = x.abs()
            smallest = torch.where(a > 0, a, torch.inf).amin() if x.numel() else a.new_tensor(torch.inf)
            x.copy_(torch.where(smallest >= nu, x.sign(), x))
        torch._foreach_lerp_(m, g, 1 - beta2)
        b.set_updates(c, owned=True)
