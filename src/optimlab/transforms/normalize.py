"""Row, column and whole-matrix normalisation of matrix updates.

* :class:`Equilibrate` — MuonEq's row and/or column equilibration *before* Newton–Schulz.
* :class:`NorMuonNormalize` — NorMuon's neuron-wise (per-row) second moment *after* it, with the RMS rule.
* :class:`MatchRMS` — rescale an update to the RMS of an AdamW update (AdaMuon's last step).
* :class:`TrustRegionDirection` — the maximiser of ``⟨u, d⟩`` over the unit ball of a chosen norm
  (Frobenius, ℓ∞ or spectral): the step of the non-Euclidean trust-region family.

Every transform here works on the bucket stacked as one ``(B, rows, cols)`` tensor (conv kernels
flattened to ``(out, in·kh·kw)``; rows are output neurons), so it costs a few batched ops per bucket.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.scaling import pow2_scale, scaled_eps
from .orthogonalize import Orthogonalize, set_matrices, stack_matrices
from .sign import Sign

__all__ = ["Equilibrate", "NorMuonNormalize", "MatchRMS", "TrustRegionDirection", 
           "rms_align", "BETA2", "EPS", "RMS_TARGET"]

#: ``eps`` is shared with :class:`Orthogonalize` (a chain may declare a name only once, with one spec): one
#: value floors the Frobenius norm before Newton–Schulz *and* guards the denominators here.
EPS = Orthogonalize.hparams["eps"]
BETA2 = HParam("float", 0.95, "EMA coefficient β2 of the second moment of the orthogonalized update (unitless)",
               low=0.0, high=1.0, high_open=True)
#: RMS of an AdamW update that NorMuon and AdaMuon match ("Muon is Scalable for LLM Training", arXiv:2502.16982).
RMS_TARGET = 0.2


def rms_align(X: Tensor, eps: float) -> Tensor:
    """``X · 0.2·sqrt(rows·cols) / ‖X‖_F`` per matrix: every matrix gets RMS 0.2 (the norm floored at eps)."""
    rows, cols = X.shape[-2], X.shape[-1]
    # on X·f (f an exact power of two, max|X·f| ~ 1) the norm cannot overflow: same result, bit for bit
    f = pow2_scale(X, eps=eps)
    X = X * f
    nrm = torch.maximum(torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True), scaled_eps(eps, f, X.dtype, floor=True))
    return X * (RMS_TARGET * math.sqrt(rows * cols) / nrm)


class Equilibrate(Transform):
    """MuonEq's pre-orthogonalization equilibration: ``R``: ``u ← D_r^{-1/2} u``; ``C``: ``u ← u D_c^{-1/2}``;
    ``RC``: both, with ``D_r`` and ``D_c`` both taken from the same ``u`` (the authors' parallel form).

    ``D_r = diag(Σ_j u_ij² + ε)`` and ``D_c = diag(Σ_i u_ij² + ε)`` are the row and column squared norms of
    the current update (no running statistic: the scales are recomputed each step, O(rows + cols) memory).
    Row normalisation gives every row unit norm, which removes row-scale mismatch — the marginal part of
    the condition number that finite-step Newton–Schulz is sensitive to. Paper: Chang et al., "MuonEq:
    Balancing Before Orthogonalization with Lightweight Equilibration" (arXiv:2603.28254); ε and the
    parallel RC form follow the authors' code (MaeChd/muon-eq).
    """

    name = "equilibrate"
    same_shape = True
    rule = "u ← D_r^{-1/2} u (r) | u D_c^{-1/2} (c) | D_r^{-1/2} u D_c^{-1/2} (rc);  D = row/col Σu² + ε"
    hparams = {
        "equilibrate": HParam("choice", "r", "which marginals to equilibrate before Newton–Schulz: rows "
                                             "(output neurons), columns, or both", choices=("r", "c", "rc")),
        "eq_eps": HParam("float", 1e-8, "added to each row/column squared norm (squared update units)", low=0.0),
    }

    def update(self, b: Bucket) -> None:
        mode, eps = b.group["equilibrate"], b.group["eq_eps"]
        X = stack_matrices(b.updates)
        # Squares of X·f (f = 2^-k, max|X·f| ~ 1) cannot overflow or underflow; with eps·f² in place of
        # eps, X·f·D'^{-1/2} = X·D^{-1/2} exactly (one factor f more for "rc", whose result scales as 1/X).
        # The floor at the smallest normal number maps a zero row to zero even with eq_eps = 0.
        f = pow2_scale(X, eps=eps, power=2)
        X.mul_(f)
        sq = X.square()
        eps_f = scaled_eps(eps, f, X.dtype, power=2, floor=True)
        scale = None
        if "r" in mode:
            scale = (sq.sum(-1, keepdim=True) + eps_f).rsqrt()
        if "c" in mode:
            col = (sq.sum(-2, keepdim=True) + eps_f).rsqrt()
            scale = col if scale is None else scale * col * f
        X.mul_(scale)
        set_matrices(b, X)


class NorMuonNormalize(Transform):
    """NorMuon's neuron-wise normalisation of an orthogonalized update ``O`` (rows = output neurons):

    ``v ← β2 v + (1−β2)·mean_cols(O ⊙ O)``;  ``Ô = O / (sqrt(v) + ε)``;  ``u = 0.2·sqrt(m n)/‖Ô‖_F · Ô``.

    The last step is the paper's learning-rate rule ``η̂ = 0.2 η sqrt(mn)/‖Ô‖_F``: the step has RMS
    ``0.2·lr`` (AdamW's), so ``lr`` is on AdamW's scale. ``v`` has one entry per row (state key ``v``).
    No bias correction (the paper's Algorithm 1; a per-matrix factor would cancel in the RMS rule anyway).
    Paper: Li, Liu, Liang, Chen & Zhao, "NorMuon: Making Muon more efficient and scalable"
    (arXiv:2510.05491), Algorithm 1. Hyperparameters ``beta2``, ``eps`` (shared with Orthogonalize).
    """

    name = "normuon"
    same_shape = True
    rule = "v ← β2·v + (1−β2)·mean_cols(u²);  û = u/(√v + ε);  u ← 0.2·√(mn)·û/‖û‖_F"
    hparams = {"beta2": BETA2, "eps": EPS}

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        return {"v": torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)}

    def update(self, b: Bucket) -> None:
        beta2, eps = b.group["beta2"], b.group["eps"]
        O = stack_matrices(b.updates)
        vs = b.state(self, "v")
        torch._foreach_lerp_(vs, list(O.square().mean(-1).unbind(0)), 1 - beta2)
        den = torch.stack(vs).sqrt_().add_(eps).unsqueeze(-1)
        set_matrices(b, rms_align(O.div_(den), eps))


class MatchRMS(Transform):
    """``u ← 0.2·sqrt(m n)/‖u‖_F · u`` per matrix: the update gets AdamW's RMS, 0.2 (AdaMuon's
    "RMS-aligned rescaling", Si, Zhang & Shen, arXiv:2507.11005), so ``lr`` is on AdamW's scale."""

    name = "match_rms"
    same_shape = True
    rule = "u ← 0.2·√(mn)·u/‖u‖_F"
    hparams = {"eps": EPS}

    def update(self, b: Bucket) -> None:
        set_matrices(b, rms_align(stack_matrices(b.updates), b.group["eps"]))


class TrustRegionDirection(Transform):
    """``u ← argmax_{‖d‖ ≤ 1} ⟨u, d⟩`` — the first-order trust-region step in the norm ``norm``:

    * ``"frobenius"`` (ℓ2 of the matrix): ``u/‖u‖_F`` — normalized SGD with momentum;
    * ``"linf"`` (max entry): ``sign(u)`` — signSGD with momentum;
    * ``"spectral"``: ``U Vᵀ`` for ``u = U Σ Vᵀ`` — Muon (Newton–Schulz or exact SVD, as :class:`Orthogonalize`).

    The norm is taken per matrix (layer-wise), i.e. the trust region of the whole model is the product of
    the per-layer balls. Paper: Kovalev, "Understanding Gradient Orthogonalization for Deep Learning via
    Non-Euclidean Trust-Region Optimization" (arXiv:2503.12645).
    """

    name = "trust_region"
    same_shape = True
    rule = "u ← argmax_{‖d‖≤1}⟨u, d⟩: u/‖u‖_F (frobenius) | sign(u) (linf) | U Vᵀ (spectral)"
    hparams = {"norm": HParam("choice", "spectral", "norm whose unit ball is the trust region (per matrix)",
                              choices=("spectral", "frobenius", "linf")),
               **Orthogonalize.hparams}

    def __init__(self) -> None:
        # The spectral and ℓ∞ cases are exactly those transforms: delegate rather than restate them.
        self._polar, self._sign = Orthogonalize(), Sign()

    def check(self, group: dict, owner: str) -> None:
        self._polar.check(group, owner)

    def update(self, b: Bucket) -> None:
        norm = b.group["norm"]
        if norm == "spectral":
            self._polar.update(b)
        elif norm == "linf":
            self._sign.update(b)
        else:
            X = stack_matrices(b.updates)
            f = pow2_scale(X, eps=b.group["eps"])  # exact rescaling: ‖X·f‖ neither overflows nor underflows
            X.mul_(f)
            nrm = torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True)
            X.div_(torch.maximum(nrm, scaled_eps(b.group["eps"], f, X.dtype, floor=True)))
            set_matrices(b, X)
