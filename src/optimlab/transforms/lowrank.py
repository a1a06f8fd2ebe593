"""Dion's low-rank orthonormalized update with error feedback (single device).

Dion (Ahn, Xu, Abreu & Langford, "Dion: Distributed Orthonormalized Updates", arXiv:2504.05295,
Algorithm 1, centralized form) keeps, per matrix ``X`` (m × n), a buffer ``M`` and a warm-start right
factor ``Q`` (n × r)::

    B = M + G                            # buffer plus the new gradient (no decay here)
    P = orth(B Q);  R = Bᵀ P             # one warm-started power-iteration step (QR on P)
    M ← B − (1 − μ) P Rᵀ                 # error feedback: what the rank-r step did not use stays
    Q ← ColumnNormalize(R)               # the next warm start
    u = P Qᵀ                             # the update direction, scaled by sqrt(m/n)

At full rank (``r = min(m, n)``) ``P Rᵀ = B``, so ``M = μ B``: ``B`` is then heavy-ball momentum, and
``P Qᵀ`` approaches the polar factor of ``B`` as the warm-started power iteration aligns ``P`` with the
singular vectors (it equals it exactly once ``P``'s columns are ``B``'s left singular vectors).
"""

from __future__ import annotations

import math

import torch

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.lowrank import column_normalize, power_iteration_step, work_dtype
from ..linalg.scaling import pow2_scale, saturate, scaled_eps
from .orthogonalize import matrix_view

__all__ = ["DionLowRank", "dion_rank", "dion_initial_q"]


def dion_rank(shape: torch.Size, rank_fraction: float) -> int:
    """``r = ceil(rank_fraction · min(m, n))`` clipped to ``[1, min(m, n)]`` for the flattened matrix."""
    m, n = shape[0], math.prod(shape[1:])
    k = min(m, n)
    return max(1, min(k, math.ceil(rank_fraction * k - 1e-9)))


def dion_initial_q(shape: torch.Size, rank_fraction: float, seed: int, dtype: torch.dtype,
                   device: torch.device) -> torch.Tensor:
    """The initial right factor: standard normal ``(n, r)`` drawn from ``seed`` (the same for every
    matrix of one shape; the reference code draws ``torch.randn`` from the global RNG instead)."""
    n, r = math.prod(shape[1:]), dion_rank(shape, rank_fraction)
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, r), generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


class DionLowRank(Transform):
    """``u ← sqrt(m/n) · P Qᵀ`` from one power-iteration step on ``M + G``, with error feedback into ``M``.

    State per parameter: ``momentum_buffer`` (the parameter's shape) and ``Q`` (``n × r``), both in the
    parameter's dtype; the arithmetic runs in float32 (float64 for float64 parameters). Conv kernels
    are flattened to ``(out, in·kh·kw)``. The shape factor ``sqrt(m/n)`` (fan-out over fan-in) is the
    one of the reference implementation (``dion_simple.py`` in github.com/microsoft/dion).
    Numerics: the step runs on ``(M + G)·2^-k`` (exact; no overflow in ``M + G``, ``B Q`` or the column
    norms), and the buffer saturates at ±max/2 of its dtype where its exact value does not fit.
    """

    name = "dion"
    same_shape = True
    rule = "B = M + G; P = orth(B Q); R = Bᵀ P; M ← B − (1−μ)PRᵀ; Q ← colnorm(R); u ← √(m/n)·P Qᵀ"
    hparams = {
        "momentum": HParam("float", 0.95, "μ: share of the captured rank-r part kept in the buffer "
                                          "(error feedback; unitless)", low=0.0, high=1.0, high_open=True),
        "rank_fraction": HParam("float", 1.0, "rank r as a fraction of min(m, n) (unitless)",
                                low=0.0, high=1.0, low_open=True),
        "eps": HParam("float", 1e-8, "floor added to the column norms of R (gradient units)", low=0.0,
                      low_open=True),
        "q_seed": HParam("int", 0, "seed of the initial right factor Q", low=0),
    }

    def init(self, p: torch.Tensor, group: dict) -> dict[str, torch.Tensor]:
        return {"momentum_buffer": torch.zeros_like(p, memory_format=torch.preserve_format),
                "Q": dion_initial_q(p.shape, group["rank_fraction"], group["q_seed"], p.dtype, p.device)}

    def update(self, b: Bucket) -> None:
        g = b.group
        wd = work_dtype(b.params[0].dtype)
        bufs, qs = b.state(self, "momentum_buffer"), b.state(self, "Q")
        G = torch.stack([matrix_view(x).to(wd) for x in b.updates])
        M = torch.stack([matrix_view(x).to(wd) for x in bufs])
        # The whole step is computed on B·f with f = 2^-k, 2^k >= max(|M|, |G|) per matrix: an exact
        # rescaling (bit-identical results for ordinary inputs) under which neither M + G nor B Q nor the
        # column norms of R can overflow. P and the update are scale-free; R and the buffer scale with f.
        f = torch.minimum(pow2_scale(M), pow2_scale(G, eps=g["eps"]))
        B = M * f + G * f
        Q = torch.stack(qs).to(wd)
        P, R = power_iteration_step(B, Q)
        B.baddbmm_(P, R.mT, alpha=-(1.0 - g["momentum"]))  # error feedback: B becomes the new M
        Q_new = column_normalize(R, scaled_eps(g["eps"], f, wd, floor=True))
        U = P @ Q_new.mT
        # The buffer is a sum of gradients (like torch.optim.SGD's momentum, ~G/(1−μ)): near the top of
        # the range its exact value does not fit the dtype; it saturates at ±max/2 instead of reaching inf.
        M_new = saturate(B / f, bufs[0].dtype)
        for buf, q, m_new, q_new in zip(bufs, qs, M_new.unbind(0), Q_new.unbind(0)):
            buf.copy_(m_new.reshape(buf.shape))
            q.copy_(q_new)
        p0 = b.params[0]
        b.set_updates([u.to(p0.dtype).reshape(p.shape) for u, p in zip(U.unbind(0), b.params)], owned=True)
        rows, cols = p0.shape[0], math.prod(p0.shape[1:])
        b.scale_by([math.sqrt(rows / cols)] * len(b.params))
