"""Subset-Norm step sizes and Subspace-Momentum (SNSM; Nguyen, Nguyen, Ene & Nguyen, "Efficient Adaptive
Optimization via Subset-Norm and Subspace-Momentum", arXiv:2411.07120).

For a matrix update ``G`` (m × n, conv kernels flattened) take the tall orientation ``X`` (``M × N``, ``M >= N``;
``X = Gᵀ`` when ``m < n``). The coordinate subsets are the ``M`` rows of ``X`` (the paper's heuristic:
one subset per slice of the larger dimension, reduced over the smaller one), so the second moment is one
number per row — ``O(max(m, n))`` state instead of ``O(mn)``::

    v ← β2 v + (1−β2) Σ_j X_{ij}²                       subset norm (per row i)
    subspace momentum (rank r basis Q, N × r, refreshed every T steps; the momentum restarts at zero
    at each refresh after the first, as the reference code does by default):
        R = X Q;  m ← β1 m + (1−β1) R;  num = m Qᵀ + (X − R Qᵀ)
    or plain momentum (Subset-Norm only):  m ← β1 m + (1−β1) X;  num = m
    u = num / (sqrt(v) + ε) · sqrt(1−β2^t)/(1−β1^t)

Bias correction and ε placement as in the reference code (github.com/timmytonga/sn-sm, ``GenericOptim``):
the step size carries ``sqrt(1−β2^t)/(1−β1^t)``, ε is added to ``sqrt(v)``.
"""

from __future__ import annotations

import math

import torch

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.lowrank import work_dtype
from ..linalg.projectors import power_basis, projected_rank, svd_basis
from ..linalg.scaling import pow2_scale, saturate, scaled_eps
from .moments import BETAS
from .orthogonalize import matrix_view
from .projected import PROJ_ITERS, RANK_FRACTION, UPDATE_PROJ_GAP, oriented_shape, refresh_due

__all__ = ["SubsetNormMomentum"]

SN_EPS = HParam("float", 1e-8, "added to sqrt of the subset's second moment (gradient units × sqrt(subset size))",
                low=0.0)


class SubsetNormMomentum(Transform):
    """Subset-Norm adaptive step size with Subspace-Momentum (``subspace=True``) or full momentum."""

    same_shape = True

    def __init__(self, subspace: bool = True):
        self.subspace = subspace
        self.name = "snsm" if subspace else "adamw_sn"
        self.hparams = {"betas": BETAS, "eps": SN_EPS}
        if subspace:
            self.hparams.update({"rank_fraction": RANK_FRACTION, "update_proj_gap": UPDATE_PROJ_GAP,
                                 "proj_iters": PROJ_ITERS})
        num = ("R = X Q; m ← β1·m + (1−β1)·R; num = m Qᵀ + (X − R Qᵀ) (Q: top-r SVD every T steps, m reset)"
               if subspace else "m ← β1·m + (1−β1)·X; num = m")
        self.rule = (f"v_i ← β2·v_i + (1−β2)·Σ_j X_ij² (rows of the tall view X); {num}; "
                     f"u ← num/(sqrt(v) + ε)·sqrt(1−β2^t)/(1−β1^t)")

    def init(self, p: torch.Tensor, group: dict) -> dict[str, torch.Tensor]:
        M, N, tr = oriented_shape(p)
        z = {"exp_avg_sq": torch.zeros(M, dtype=p.dtype, device=p.device)}
        if self.subspace:
            r = projected_rank(N, group["rank_fraction"])
            z["exp_avg"] = torch.zeros((r, M) if tr else (M, r), dtype=p.dtype, device=p.device)
            z["basis"] = torch.zeros(N, r, dtype=p.dtype, device=p.device)
        else:
            z["exp_avg"] = torch.zeros((N, M) if tr else (M, N), dtype=p.dtype, device=p.device)
        return z

    def update(self, b: Bucket) -> None:
        g, p0 = b.group, b.params[0]
        beta1, beta2 = g["betas"]
        wd = work_dtype(p0.dtype)
        M, N, tr = oriented_shape(p0)
        # G is this step's own copy, scaled and then overwritten by the update in place: one bucket-sized
        # temporary, as a gradient copy
        G = torch.stack([matrix_view(x).to(wd) for x in b.updates])
        X = G.mT if tr else G  # (B, M, N)
        v = b.state(self, "exp_avg_sq")
        # the sum of squares of the unscaled rows (an overflow gives +inf, as Adam's exp_avg_sq in torch)
        V = torch.stack([x.to(wd) for x in v]).mul_(beta2).add_(
            torch.linalg.vector_norm(X, dim=-1).square(), alpha=1 - beta2)
        f = pow2_scale(G)
        G.mul_(f)  # X·f from here on
        ms = b.state(self, "exp_avg")
        m = torch.stack([x.to(wd) for x in ms])
        m = m.mT if tr else m  # tall: (B, M, r) or (B, M, N)
        if self.subspace:
            Q = self._basis(b, X, G, tr)
            for i, t in enumerate(b.steps):
                if t > 1 and refresh_due(t, g["update_proj_gap"]):
                    m[i].zero_()
            Rs = X @ Q
            m.lerp_(saturate(Rs / f, p0.dtype), 1 - beta1)
            D = m * f - Rs  # num·f = X·f + D Qᵀ (m Qᵀ + X − R Qᵀ, scaled)
            if tr:
                G.baddbmm_(Q, D.mT)
            else:
                G.baddbmm_(D, Q.mT)
        else:
            m.lerp_(saturate(X / f, p0.dtype), 1 - beta1)
            G.copy_((m.mT if tr else m) * f)
        den = V.sqrt().unsqueeze(-1) * f + scaled_eps(g["eps"], f, wd, floor=True)  # (B, M, 1)
        G.div_(den.mT if tr else den)  # the scale f cancels; +inf in v gives 0
        for x, new in zip(v, V.unbind(0)):
            x.copy_(new)
        for x, new in zip(ms, (m.mT if tr else m).unbind(0)):
            x.copy_(saturate(new, x.dtype))
        b.set_updates([u.to(p0.dtype).reshape(p.shape) for u, p in zip(G.unbind(0), b.params)], owned=True)
        b.scale_by([math.sqrt(1 - beta2**t) / (1 - beta1**t) for t in b.steps])

    def _basis(self, b: Bucket, Xs, Gs, tr) -> torch.Tensor:
        g = b.group
        qs = b.state(self, "basis")
        Q = torch.stack([x.to(Xs.dtype) for x in qs])
        due = [i for i, t in enumerate(b.steps) if refresh_due(t, g["update_proj_gap"])]
        if due:
            r = Q.shape[-1]
            warm = [i for i in due if b.steps[i] > 1] if g["proj_iters"] > 0 else []
            cold = [i for i in due if i not in warm]
            for i in cold:  # one matrix at a time: the SVD's workspace is one matrix, not the bucket
                Q[i] = svd_basis(Gs[i:i + 1], r, tr)[0]
            if warm:
                Q[warm] = power_basis(Xs[warm], Q[warm], g["proj_iters"])
            for i in due:
                qs[i].copy_(Q[i])
            Q = torch.stack([x.to(Xs.dtype) for x in qs])
        return Q
