"""ASGO and DASGO: one-sided structured preconditioning of matrix gradients.

An et al., "ASGO: Adaptive Structured Gradient Optimization" (arXiv:2503.20762). For a gradient ``G`` (m × n) with ``m ≤ n`` (otherwise the same on the right)::

    V ← β2 V + (1−β2) G Gᵀ      (β2 = 1: the analysed sum V ← V + G Gᵀ)
    M ← β1 M + (1−β1) G
    every k steps: P = (V + εI)^{-1/2}
    W ← W − η P M

The smaller side keeps the statistic ``min(m, n)²``; DASGO keeps only its diagonal (a vector), making the
step a per-row (or per-column) AdaGrad-type scaling.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.roots import inv_root, root_dtype
from ..linalg.scaling import pow2_scale, saturate
from .blocks import scaled_grams
from .orthogonalize import matrix_view, set_matrices, stack_matrices
from .shampoo import MATRIX_EPS, PRECOND_BETAS, PRECOND_FREQ, ROOT_METHOD, ema_or_sum_

__all__ = ["ASGOPrecondition"]


class ASGOPrecondition(Transform):
    """``u ← (V + εI)^{-1/2} M`` on the smaller side of each matrix (``diagonal=True``: DASGO), batched.

    State per parameter (its dtype): ``exp_avg`` (parameter shape) and ``V``, ``V_root`` (s × s, or ``(s,)``
    for DASGO), ``s = min(rows, cols)`` of the flattened matrix. The cached root is state (bit-identical
    resume). Numerics as Shampoo's: statistics from ``G·2^-k``, saturated; roots on scaled statistics with
    ``ε`` floored at the smallest normal number; the product formed from ``M·2^-k``.
    """

    same_shape = True
    hparams = {"betas": PRECOND_BETAS, "matrix_eps": MATRIX_EPS, "precondition_frequency": PRECOND_FREQ,
               "root_method": ROOT_METHOD}

    def __init__(self, diagonal: bool = False):
        self.diagonal = diagonal
        self.name = "dasgo" if diagonal else "asgo"
        self.rule = ("V ← β2 V + (1−β2) diag(GGᵀ) (smaller side);  M ← β1 M + (1−β1) G;  u ← (V + ε)^{-1/2} ⊙ M"
                     if diagonal else
                     "V ← β2 V + (1−β2) GGᵀ (smaller side);  M ← β1 M + (1−β1) G;  every k steps P = (V+εI)^{-1/2};"
                     "  u ← P M")

    def check(self, group: dict, owner: str) -> None:
        if group["betas"][0] == 1.0:
            raise ValueError(f"{owner}: betas[0] must be in [0, 1), got {group['betas'][0]!r}")

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        m, n = matrix_view(p).shape if p.ndim >= 2 else (1, p.numel())
        s = min(m, n)
        shape = (s,) if self.diagonal else (s, s)
        return {"exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format), "V": p.new_zeros(shape),
                "V_root": p.new_zeros(shape)}

    def update(self, b: Bucket) -> None:
        g = b.group
        beta1, beta2 = g["betas"]
        p0 = b.params[0]
        dt, wd = p0.dtype, root_dtype(p0.dtype)
        G = stack_matrices(b.updates, dtype=wd) if p0.ndim >= 2 else torch.stack(b.updates).to(wd).unsqueeze(-2)
        left = G.shape[-2] <= G.shape[-1]
        SL, SR = scaled_grams(G, dt, left, not left)
        S = SL if left else SR
        if self.diagonal:
            S = torch.diagonal(S, dim1=-2, dim2=-1)
        V, Vr = b.state(self, "V"), b.state(self, "V_root")
        ema_or_sum_(V, list(S.to(dt).unbind(0)), beta2)
        m = b.state(self, "exp_avg")
        torch._foreach_lerp_(m, b.updates, 1 - beta1)
        due = [i for i, t in enumerate(b.steps) if (t - 1) % g["precondition_frequency"] == 0]
        if due:
            A = torch.stack([V[i] for i in due]).to(wd)
            if self.diagonal:
                f = pow2_scale(A, dim=-1)
                eps_f = torch.clamp(f.double() * g["matrix_eps"], min=torch.finfo(wd).tiny).to(wd)
                X = (A.clamp_min(0) * f + eps_f).rsqrt() * f.double().sqrt().to(wd)
            else:
                X = inv_root(A, 2, g["matrix_eps"], g["root_method"])
            torch._foreach_copy_([Vr[i] for i in due], list(X.to(dt).unbind(0)))
        M = stack_matrices(m, dtype=wd) if p0.ndim >= 2 else torch.stack(m).to(wd).unsqueeze(-2)
        f = pow2_scale(M)
        P = torch.stack(Vr).to(wd)
        Ms = M * f
        if self.diagonal:
            U = P.unsqueeze(-1) * Ms if left else Ms * P.unsqueeze(-2)
        else:
            U = P @ Ms if left else Ms @ P
        U = saturate(U * (1 / f), dt)  # exact: f is a power of two
        if p0.ndim >= 2:
            set_matrices(b, U, dt)
        else:
            b.set_updates([u.reshape(p.shape).to(dt) for u, p in zip(U.unbind(0), b.params)], owned=True)
