"""Adaptivity around an orthogonalized update: how far to step, and whether to orthogonalize at all.

* :class:`OrthoSecondMoment` — AdaMuon's element-wise second moment of the orthogonalized update.
* :class:`AdaGradNormStep` — AdaGO's scalar AdaGrad-norm step size times the orthogonal direction.
* :class:`SpectralGapGate` — MiMuon's choice, per matrix and step, between the orthogonalized momentum
  and the momentum itself, by the gap between the momentum's singular values.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from .normalize import BETA2, EPS
from .orthogonalize import set_matrices, stack_matrices
from .orthogonalize import Orthogonalize

__all__ = ["OrthoSecondMoment", "AdaGradNormStep", "SpectralGapGate", "min_singular_gap"]


class OrthoSecondMoment(Transform):
    """AdaMuon's variance-adaptive scaling of an orthogonalized update ``O``, element by element:

    ``V ← β2 V + (1−β2)·O ⊙ O``;  ``u = O / (sqrt(V) + ε)``  (state key ``exp_avg_sq``; no bias correction:
    the RMS alignment that follows removes any per-matrix factor). Paper: Si, Zhang & Shen, "AdaMuon:
    Adaptive Muon Optimizer" (arXiv:2507.11005).
    """

    name = "ortho_second_moment"
    rule = "V ← β2·V + (1−β2)·u²;  u ← u/(√V + ε)"
    hparams = {"beta2": BETA2, "eps": EPS}

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        return {"exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def update(self, b: Bucket) -> None:
        beta2 = b.group["beta2"]
        u, v = b.updates, b.state(self, "exp_avg_sq")
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, u, u, 1 - beta2)
        den = torch._foreach_sqrt(v)
        torch._foreach_add_(den, b.group["eps"])
        b.set_updates(torch._foreach_div(u, den), owned=True)


class AdaGradNormStep(Transform):
    """AdaGO's step size: an AdaGrad-norm accumulator of clipped gradient norms, one scalar per matrix.

    ``v² ← v² + min(‖g‖_F, γ)²``;  ``α = max(ε, lr·min(‖g‖_F, γ)/v)``;  ``u ← (α/lr)·u``, so that the
    engine's ``p ← p − lr·u`` steps by ``α`` along the (orthogonal) direction ``u``. ``g`` is this step's
    raw gradient (not the momentum); ``v`` starts at ``v0``. At ``lr = 0`` the floor ε is not applied (a
    zero learning rate means no step, as schedulers expect). State key ``v_sq`` (0-dimensional).
    Paper: Zhang, Liu & Schaeffer, "AdaGrad Meets Muon: Adaptive Stepsizes for Orthogonal Updates"
    (arXiv:2509.02981).
    """

    name = "adagrad_norm"
    same_shape = True
    rule = "v² ← v² + min(‖g‖_F, γ)²;  u ← max(ε/lr, min(‖g‖_F, γ)/v)·u  (step α = max(ε, lr·min(‖g‖,γ)/v))"
    hparams = {
        "gamma": HParam("float", 10.0, "clip γ of the gradient's Frobenius norm (gradient units)",
                        low=0.0, low_open=True),
        "min_step": HParam("float", 5e-4, "floor ε of the step size α (spectral norm of the step)", low=0.0),
        "v0": HParam("float", 1e-6, "initial value v_0 of the accumulated gradient norm (gradient units)",
                     low=0.0, low_open=True),
    }

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        return {"v_sq": torch.full((), group["v0"] ** 2, dtype=p.dtype, device=p.device)}

    def update(self, b: Bucket) -> None:
        g = b.group
        n = torch.stack(torch._foreach_norm(b.grads)).clamp_max_(g["gamma"])
        vs = b.state(self, "v_sq")
        torch._foreach_add_(vs, list((n * n).unbind(0)))
        ratio = n / torch.stack(vs).sqrt()
        if g["lr"] > 0:
            ratio.clamp_min_(g["min_step"] / g["lr"])
        X = stack_matrices(b.updates)
        set_matrices(b, X.mul_(ratio.to(X.dtype).view(-1, 1, 1)))


def min_singular_gap(M: Tensor) -> Tensor:
    """``min_{i≠j} |σ_i − σ_j|`` over the nonzero singular values of each matrix of ``M`` (..., m, n).

    Computed in float32 (float64 for float64 input); "nonzero": ``σ > max(m, n)·eps·σ_max`` with the eps of
    that dtype (``torch.linalg.matrix_rank``'s tolerance), so only numerically zero directions are left out.
    Sorted singular values make the minimum pairwise gap the minimum adjacent one; fewer than two nonzero
    singular values give ``inf``.
    """
    s = torch.linalg.svdvals(M if M.dtype == torch.float64 else M.float())
    m, n = M.shape[-2], M.shape[-1]
    keep = s > s[..., :1] * (max(m, n) * torch.finfo(s.dtype).eps)
    gaps = torch.where(keep[..., 1:], s[..., :-1] - s[..., 1:], torch.inf)
    if gaps.shape[-1] == 0:
        return torch.full(s.shape[:-1], torch.inf, dtype=s.dtype, device=s.device)
    return gaps.amin(-1)


class SpectralGapGate(Transform):
    """MiMuon's cautious orthogonalization of the momentum ``M = U Σ Vᵀ``, per matrix and step:

    ``u = U Σ^α Vᵀ`` with ``α = 0`` (``U Vᵀ``, Muon's step) when the nonzero singular values of ``M`` are
    all at least ``τ`` apart, else ``α = 1`` (``M`` itself, momentum SGD's step). A small gap makes the polar
    factor unstable in ``M`` (the analysis's ``1/κ`` factor); there the method falls back to SGD.
    The gap test costs one ``svdvals`` per matrix per step; the direction uses :class:`Orthogonalize`'s
    settings (Newton–Schulz or SVD). Paper: Huang, Luo & Chen, "MiMuon: Mixed Muon Optimizer with
    Improved Generalization for Large Models" (arXiv:2605.19619).
    """

    name = "spectral_gap_gate"
    same_shape = True
    rule = "u ← U Vᵀ if min_{i≠j}|σ_i(u) − σ_j(u)| > τ else u   (u = U Σ Vᵀ)"
    hparams = {"gap_threshold": HParam("float", 1e-4, "τ: least gap between the momentum's nonzero singular "
                                                      "values for which it is orthogonalized (gradient units)",
                                       low=0.0),
               **Orthogonalize.hparams}

    def __init__(self) -> None:
        self._polar = Orthogonalize()

    def check(self, group: dict, owner: str) -> None:
        self._polar.check(group, owner)

    def update(self, b: Bucket) -> None:
        M = stack_matrices(b.updates)
        orthogonal = (min_singular_gap(M) > b.group["gap_threshold"]).view(-1, 1, 1)
        self._polar.update(b)
        O = stack_matrices(b.updates)
        set_matrices(b, torch.where(orthogonal, O, M.to(O.dtype)))
