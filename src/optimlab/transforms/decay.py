"""Weight decay, written once: coupled (L2 added to the gradient) and decoupled (AdamW's shrink)."""

from __future__ import annotations

import torch

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform

__all__ = ["CoupledDecay", "DecoupledDecay"]


def weight_decay_spec(default: float) -> HParam:
    return HParam("float", default, "weight decay λ (per unit of lr, unitless)", low=0.0)


class CoupledDecay(Transform):
    """L2 regularisation folded into the update: ``u <- u + λ p`` (torch's ``weight_decay`` for SGD/Adam)."""

    name = "weight_decay"
    rule = "u ← u + λ·p"
    hparams = {"weight_decay": weight_decay_spec(0.0)}

    def update(self, b: Bucket) -> None:
        wd = b.group["weight_decay"]
        if wd != 0:
            b.set_updates(torch._foreach_add(b.updates, b.params, alpha=wd), owned=True)


class DecoupledDecay(Transform):
    """Decoupled decay (Loshchilov & Hutter, arXiv:1711.05101): ``p <- (1 - lr λ) p`` before the step.

    It shrinks the parameters directly (the one transform that writes them) so that it equals
    torch.optim.AdamW/Muon bit for bit; the update itself never reads ``p`` afterwards.
    """

    name = "decoupled_decay"
    rule = "p ← (1 − lr·λ)·p"
    hparams = {"weight_decay": weight_decay_spec(0.01)}

    def update(self, b: Bucket) -> None:
        wd = b.group["weight_decay"]
        if wd != 0:
            torch._foreach_mul_(b.params, 1 - b.group["lr"] * wd)
