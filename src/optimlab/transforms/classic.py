"""Classic per-coordinate and per-tensor step sizes: RMSProp, AdaGrad, AdaGrad-Norm, β-normalized steps.

* :class:`RMSPropScale` — torch.optim.RMSprop's rule (optionally centered, with its own momentum buffer).
* :class:`AdaGradScale` — torch.optim.Adagrad's rule (accumulated squares, ``lr_decay``).
* :class:`AdaGradNormScale` — one scalar accumulator per tensor: ``b² ← b² + ‖u‖²;  u ← u / b``.
* :class:`NormPowerScale` — ``u ← u / (δ + ‖u‖)^β`` per tensor (β-normalized gradient descent).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform

__all__ = ["RMSPropScale", "AdaGradScale", "AdaGradNormScale", "NormPowerScale"]


def _zeros(p: Tensor) -> Tensor:
    return torch.zeros_like(p, memory_format=torch.preserve_format)


class RMSPropScale(Transform):
    """torch.optim.RMSprop's rule (Tieleman & Hinton 2012; centered form: Graves 2013, arXiv:1308.0850):

    ``v ← α v + (1−α) u²``;  ``d = sqrt(v − ḡ²) + ε`` with ``ḡ ← α ḡ + (1−α) u`` (centered) or
    ``sqrt(v) + ε``;  ``u ← u / d``, or with momentum ``μ > 0``: ``b ← μ b + u/d;  u ← b``.
    State keys ``square_avg``, ``grad_avg`` (centered), ``momentum_buffer`` (momentum > 0), as torch names
    them. A scheduler that turns ``centered`` or ``momentum`` on mid-run starts that state at zero.
    """

    name = "rmsprop"
    rule = "v ← α·v + (1−α)·u²;  d = √(v − ḡ²) + ε (centered, ḡ ← α·ḡ + (1−α)·u) or √v + ε;  u ← u/d (μ = 0) " \
           "or b ← μ·b + u/d, u ← b"
    hparams = {
        "alpha": HParam("float", 0.99, "smoothing constant α of the squared-gradient average (unitless)",
                        low=0.0, high=1.0, high_open=True),
        "eps": HParam("float", 1e-8, "added to the denominator (gradient units)", low=0.0),
        "momentum": HParam("float", 0.0, "momentum μ of the buffer of normalised steps (unitless)", low=0.0,
                           high=1.0, high_open=True),
        "centered": HParam("bool", False, "divide by the estimated standard deviation (subtract the mean²)"),
    }

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        state = {"square_avg": _zeros(p)}
        if group["centered"]:
            state["grad_avg"] = _zeros(p)
        if group["momentum"] > 0:
            state["momentum_buffer"] = _zeros(p)
        return state

    def _state(self, b: Bucket, key: str) -> list[Tensor]:
        k = f"{self.name}.{key}"
        return [s.setdefault(k, _zeros(p)) for s, p in zip(b.states, b.params)]

    def update(self, b: Bucket) -> None:
        g = b.group
        alpha = g["alpha"]
        u = b.updates
        sq = b.state(self, "square_avg")
        torch._foreach_mul_(sq, alpha)
        torch._foreach_addcmul_(sq, u, u, 1 - alpha)
        if g["centered"]:
            ga = self._state(b, "grad_avg")
            torch._foreach_lerp_(ga, u, 1 - alpha)
            den = torch._foreach_addcmul(sq, ga, ga, value=-1)
            torch._foreach_sqrt_(den)
        else:
            den = torch._foreach_sqrt(sq)
        torch._foreach_add_(den, g["eps"])
        if g["momentum"] > 0:
            buf = self._state(b, "momentum_buffer")
            torch._foreach_mul_(buf, g["momentum"])
            torch._foreach_addcdiv_(buf, u, den)
            b.set_updates(buf, owned=False)
        else:
            b.set_ratio(u, den)


class AdaGradScale(Transform):
    """torch.optim.Adagrad's rule (Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning
    and Stochastic Optimization", JMLR 2011):

    ``s ← s + u²`` (``s`` starts at ``initial_accumulator_value``);
    ``u ← u / (sqrt(s) + ε) / (1 + (t − 1)·lr_decay)``. State key ``sum`` (torch's name).
    """

    name = "adagrad"
    rule = "s ← s + u²;  u ← u / (√s + ε) / (1 + (t−1)·lr_decay)"
    hparams = {
        "lr_decay": HParam("float", 0.0, "learning-rate decay: lr_t = lr / (1 + (t−1)·lr_decay) (per step)",
                           low=0.0),
        "initial_accumulator_value": HParam("float", 0.0, "starting value of the sum of squares "
                                                          "(squared gradient units)", low=0.0),
        "eps": HParam("float", 1e-10, "added to the denominator (gradient units)", low=0.0),
    }

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        return {"sum": torch.full_like(p, group["initial_accumulator_value"],
                                       memory_format=torch.preserve_format)}

    def update(self, b: Bucket) -> None:
        g = b.group
        u, s = b.updates, b.state(self, "sum")
        torch._foreach_addcmul_(s, u, u, 1.0)
        den = torch._foreach_sqrt(s)
        torch._foreach_add_(den, g["eps"])
        b.set_ratio(u, den)
        if g["lr_decay"] != 0:
            b.scale_by([1.0 / (1.0 + (t - 1) * g["lr_decay"]) for t in b.steps])


class AdaGradNormScale(Transform):
    """AdaGrad-Norm: one scalar accumulator per tensor (Ward, Wu & Bottou, "AdaGrad stepsizes: sharp
    convergence over nonconvex landscapes", arXiv:1806.01811):

    ``b² ← b² + ‖u‖²`` (``b`` starts at ``b0``);  ``u ← u / b``. State key ``b_sq`` (0-dimensional, the
    parameter's dtype: in bfloat16 the sum stops growing once an increment is below its resolution, which
    freezes the step size rather than breaking it).
    """

    name = "norm_accumulator"
    rule = "b² ← b² + ‖u‖²;  u ← u / b   (one b per tensor)"
    hparams = {"b0": HParam("float", 1e-2, "initial accumulator b_0 (gradient norm units)", low=0.0,
                            low_open=True)}

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        return {"b_sq": torch.full((), group["b0"] ** 2, dtype=p.dtype, device=p.device)}

    def update(self, b: Bucket) -> None:
        u, bsq = b.updates, b.state(self, "b_sq")
        n = torch._foreach_norm(u)
        torch._foreach_addcmul_(bsq, n, n)
        b.set_updates(torch._foreach_div(u, torch._foreach_sqrt(bsq)), owned=True)


class NormPowerScale(Transform):
    """β-normalized step, per tensor: ``u ← u / (δ + ‖u‖)^β`` (Chen, Zhou, Liang & Lu, "Generalized-Smooth
    Nonconvex Optimization is As Efficient As Smooth Nonconvex Optimization", arXiv:2303.02854: ``δ = 0``).

    ``β = 0`` is plain gradient descent, ``β = 1`` normalized GD (the step has norm ``lr`` when ``δ = 0``);
    ``δ > 0`` makes small gradients take proportionally small steps. A zero update stays zero.
    """

    name = "norm_power"
    rule = "u ← u / (δ + ‖u‖)^β   (per tensor)"
    hparams = {
        "norm_power": HParam("float", 1.0, "exponent β of the gradient norm in the denominator (unitless; the "
                                           "paper's β ∈ [α, 1])", low=0.0, high=1.0),
        "norm_offset": HParam("float", 0.0, "offset δ added to the norm (gradient norm units)", low=0.0),
    }

    def update(self, b: Bucket) -> None:
        g = b.group
        u = b.updates
        n = torch.stack(torch._foreach_norm(u))
        den = (n + g["norm_offset"]).pow(g["norm_power"]).clamp_min(torch.finfo(n.dtype).tiny)
        b.set_updates(torch._foreach_div(u, list(den.unbind(0))), owned=True)
