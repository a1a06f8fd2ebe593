"""Pion's multiplicative update: rotate each weight matrix on both sides instead of adding a step.

Pion (Shi, Li, Qiu, Wen, Buchholz & Liu, "Pion: A Spectrum-Preserving Optimizer via Orthogonal
Equivalence Transformation", arXiv:2605.12492) updates ``W`` (m × n) as ``W ← R_out W R_in`` with
orthogonal ``R_out`` (m × m) and ``R_in`` (n × n), so the singular values of ``W`` never change. The
generators are the gradient projected on the skew-symmetric matrices of each side, smoothed by
Adam-type moments::

    G_out = g Wᵀ − W gᵀ,  G_in = Wᵀ g − gᵀ W                         (skew-symmetric)
    m ← β1 m + (1−β1) G,  v ← β2 v + (1−β2) G⊙G,  A = −m / (sqrt(v) + ε)   (per side; A is skew)
    α = c·sqrt(m n) / (‖A_out W + W A_in‖_F + ε)
    W ← R(lr·α·A_out) W R(lr·α·A_in)

``α`` fixes the first-order change ``lr·α·(A_out W + W A_in)`` to RMS ``lr·c`` per entry, so a common
scale of both moments (e.g. Adam's bias correction) cancels; none is applied. ``R`` maps a skew
matrix to a rotation: ``"expm"`` (exact matrix exponential, default), ``"cayley"`` (exact rotation,
``(I − X/2)⁻¹ (I + X/2)``) or ``"taylor2"`` (``I + X + X²/2``, the second-order truncation used in the
public description of Pion: cheaper, but ``R Rᵀ = I + X⁴/4`` so the spectrum drifts at O(lr⁴)).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.lowrank import work_dtype
from ..linalg.scaling import pow2_scale, saturate
from .orthogonalize import matrix_view

__all__ = ["PionRotation", "rotation", "ROTATION_MAPS"]

ROTATION_MAPS = ("expm", "cayley", "taylor2")


def rotation(X: Tensor, method: str) -> Tensor:
    """The rotation ``R(X)`` of a batch of skew-symmetric ``X`` (``(..., d, d)``) by ``method``."""
    if method == "expm":
        return torch.linalg.matrix_exp(X)
    eye = torch.eye(X.shape[-1], dtype=X.dtype, device=X.device)
    if method == "cayley":
        return torch.linalg.solve(eye - 0.5 * X, eye + 0.5 * X)
    if method == "taylor2":
        return eye + X + 0.5 * (X @ X)
    raise ValueError(f"rotation: method must be one of {ROTATION_MAPS}, got {method!r}")


class PionRotation(Transform):
    """Pion's whole matrix step; a terminal transform whose ``apply`` rotates the weights.

    State per parameter (in its dtype): ``exp_avg_out``/``exp_avg_sq_out`` (m × m) and
    ``exp_avg_in``/``exp_avg_sq_in`` (n × n) for the flattened ``(m, n)`` matrix. No weight decay: a
    shrink would change the spectrum Pion preserves. Numerics: the generators are formed from
    ``g·2^-k`` (no overflow, no inf − inf) and saturate at ±max/2 of the state dtype; ``v`` then follows
    torch's Adam (``inf`` when ``G²`` overflows, making that entry of ``A`` zero).
    """

    name = "pion"
    same_shape = True
    rule = ("G_out = gWᵀ − Wgᵀ, G_in = Wᵀg − gᵀW; A = −m̂/(√v̂+ε) per side; "
            "α = c√(mn)/‖A_out W + W A_in‖_F;  W ← R(lr α A_out) W R(lr α A_in)")
    hparams = {
        "betas": HParam("betas", (0.9, 0.999), "decay rates of the generator moments (unitless)",
                        low=0.0, high=1.0, high_open=True),
        "eps": HParam("float", 1e-8, "added to sqrt(v) and to the norm in α (generator units)", low=0.0,
                      low_open=True),
        "rms_target": HParam("float", 0.2, "c: RMS of the first-order weight change per unit lr "
                                           "(weight units)", low=0.0, low_open=True),
        "rotation_map": HParam("choice", "expm", "map from a skew generator to a rotation",
                               choices=ROTATION_MAPS),
    }

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        m, n = p.shape[0], math.prod(p.shape[1:])
        out = p.new_zeros((m, m))
        inn = p.new_zeros((n, n))
        return {"exp_avg_out": out, "exp_avg_sq_out": out.clone(), "exp_avg_in": inn,
                "exp_avg_sq_in": inn.clone()}

    def update(self, b: Bucket) -> None:
        """Nothing: the generators depend on the weights, so the whole step runs in :meth:`apply`."""

    def _moments(self, b: Bucket, side: str, G: Tensor) -> Tensor:
        beta1, beta2 = b.group["betas"]
        m, v = b.state(self, f"exp_avg_{side}"), b.state(self, f"exp_avg_sq_{side}")
        # G is a product of the gradient and the weights: near the top of the range its exact value may
        # not fit the state dtype. It saturates at ±max/2 (then v = inf, as in torch's Adam, and that entry
        # of A is 0) rather than reaching inf, where m/sqrt(v) = inf/inf would be NaN.
        Gs = [x.to(m[0].dtype) for x in saturate(G, m[0].dtype).unbind(0)]
        torch._foreach_lerp_(m, Gs, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, Gs, Gs, value=1 - beta2)
        M, V = torch.stack(m).to(G.dtype), torch.stack(v).to(G.dtype)
        return -M / (V.sqrt() + b.group["eps"])

    def apply(self, b: Bucket) -> None:
        g = b.group
        wd = work_dtype(b.params[0].dtype)
        W = torch.stack([matrix_view(p).to(wd) for p in b.params])
        D = torch.stack([matrix_view(x).to(wd) for x in b.grads])
        # generators from D·f (f = 2^-k, max|D·f| ~ 1: no overflow, no inf − inf), then divided by f:
        # exact, so ordinary results are unchanged bit for bit
        f = pow2_scale(D)
        D = D * f
        a_out = self._moments(b, "out", (D @ W.mT - W @ D.mT) / f)
        a_in = self._moments(b, "in", (W.mT @ D - D.mT @ W) / f)
        if g["lr"] == 0:
            return
        rows, cols = W.shape[-2], W.shape[-1]
        first_order = torch.linalg.vector_norm(a_out @ W + W @ a_in, dim=(-2, -1), keepdim=True)
        step = g["lr"] * g["rms_target"] * math.sqrt(rows * cols) / (first_order + g["eps"])
        W = rotation(step * a_out, g["rotation_map"]) @ W @ rotation(step * a_in, g["rotation_map"])
        for p, w in zip(b.params, W.unbind(0)):
            p.copy_(w.reshape(p.shape))
