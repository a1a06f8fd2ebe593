"""Dion distributed as its paper intends: the power iteration on row blocks, with only small collectives.

Dion (Ahn, Xu, Abreu & Langford, arXiv:2504.05295, Section 3 and the distributed Algorithm): the step
``B = M + G;  P = orth(B Q);  R = Bᵀ P;  M ← B − (1−μ) P Rᵀ;  Q ← colnorm(R);  u = P Qᵀ`` never needs the
whole ``B`` on one device. With ``B`` split by rows over the ranks of a shard group (``B_s``: rank ``s``'s
rows; FSDP2's ``Shard(0)``), and ``Q`` (``n × r``) replicated:

1. ``f`` (the exact power-of-two rescaling of :class:`~optimlab.transforms.DionLowRank`) from the global
   ``max|M|``, ``max|G|`` and ``max|B|``: all-gathers of one number per matrix (a max is exact);
2. ``P_s = B_s Q`` locally (``m_s × r``); all-gather the row blocks of ``P`` (``m × r`` in all) and
   ``P = orth(P)`` on every rank (the same QR on the same bits: replicated);
3. ``R = Σ_s B_sᵀ P_s``: each rank's ``n × r`` partial product, all-reduced as a reduce-scatter (an
   all-to-all of row blocks; rank ``q`` sums the partials of its block in rank order) and an all-gather of
   the summed blocks: the paper's all-reduce, with every rank holding the same bits whatever the backend;
4. ``Q ← colnorm(R)``, ``M_s ← B_s − (1−μ) P_s Rᵀ``, ``u_s = P_s Qᵀ``: local.

Bytes per matrix and step: about ``(N−1)/N·(m + 2n)·r`` elements received per rank, against
``(N−1)/N·(2·m·n + n·r)`` for the DDP owner all-gather of ``u``, ``M``, ``Q``: about ``r/n`` of it
(``(m + 2n)/(2m)·r/n``).
No rank ever holds a whole ``B`` under FSDP2.

**DDP** (replicated parameters) runs the same collectives on *virtual* row blocks (rank ``s`` computes
the partial products of its block of rows); every rank then finishes the whole matrix (``M``, ``Q``, ``u``)
from the gathered ``P`` and ``R``, so the state stays replicated.

**Parity.** Not bit-exact with one process: the single-process ``R = Bᵀ P`` is one matmul reducing over
all ``m`` rows, here a sum of ``N`` partial products (floating-point reassociation, ~1 ULP of ``R`` per
step); everything else (the scalings, the QR of the gathered ``P``, the row products) is the same bits.
Measured in tests/distributed/test_dion.py; the tolerance is stated there.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..linalg.lowrank import column_normalize, orthonormal_basis, work_dtype
from ..linalg.scaling import pow2_scale, saturate, scaled_eps
from ..transforms import DionLowRank
from .comm import as_bytes, from_bytes, padded

__all__ = ["DionJob", "dion_steps", "even_blocks", "is_dion_segment"]


def is_dion_segment(chain: Any, seg: tuple[int, int] | None) -> bool:
    """Whether a chain's whole-matrix segment is exactly one Dion power iteration."""
    return seg is not None and seg[1] - seg[0] == 1 and type(chain.transforms[seg[0]]) is DionLowRank


def even_blocks(m: int, world: int) -> list[tuple[int, int]]:
    """Row blocks ``[lo, hi)`` of ``m`` rows over ``world`` ranks (``torch.chunk``'s split, as FSDP2's)."""
    size = -(-m // world) if m else 0
    return [(min(m, r * size), min(m, (r + 1) * size)) for r in range(world)]


class DionJob:
    """One bucket of same-shape matrices to step with Dion on row blocks.

    ``updates``/``bufs``: the rows this rank finishes (local shards under FSDP2; whole matrices under DDP),
    as tensors of the parameter's (local) shape; ``qs``: the replicated ``Q`` states; ``blocks``: every
    rank's ``[lo, hi)`` rows of the matrix; ``part``: the rows, within what this rank finishes, that its
    partial products come from; ``shape``: the global parameter shape."""

    def __init__(self, t: DionLowRank, group: dict, updates: list[Tensor], bufs: list[Tensor], qs: list[Tensor],
                 blocks: list[tuple[int, int]], part: tuple[int, int], shape: Any, dtype: torch.dtype):
        self.t, self.group, self.bufs, self.qs = t, group, bufs, qs
        self.blocks, self.part, self.shape, self.dtype = blocks, part, tuple(shape), dtype
        self.wd = work_dtype(dtype)
        self.m, self.n = shape[0], math.prod(shape[1:])
        self.r = qs[0].shape[-1]
        self.k = len(updates)
        wd = self.wd
        self.G = torch.stack([u.reshape(u.shape[0], -1).to(wd) for u in updates]) if updates[0].numel() else \
            torch.zeros(self.k, updates[0].shape[0], self.n, dtype=wd)
        self.M = torch.stack([x.reshape(x.shape[0], -1).to(wd) for x in bufs]) if bufs[0].numel() else \
            torch.zeros_like(self.G)
        self.result: list[Tensor] = []

    def rows(self, X: Tensor) -> Tensor:
        return X[:, self.part[0]:self.part[1]]


def _amax(X: Tensor) -> Tensor:
    """``max|X|`` per matrix as float64 ``(k,)`` (0 for an empty block)."""
    if X.shape[-2] == 0 or X.shape[-1] == 0:
        return torch.zeros(X.shape[0], dtype=torch.float64)
    return X.abs().amax(dim=(-2, -1)).to(torch.float64)


def _gather(comm: Any, parts: list[Tensor], sizes: list[list[int]], what: str) -> list[list[Tensor]]:
    """All-gather one payload per rank made of tensors (this rank's ``parts``; ``sizes[r]``: rank ``r``'s
    item sizes in bytes); returns every rank's items as uint8 tensors."""
    lengths = [sum(padded(n) for n in s) for s in sizes]
    mine = torch.zeros(lengths[comm.rank], dtype=torch.uint8)
    at = 0
    for x in parts:
        raw = as_bytes(x)
        mine[at:at + raw.numel()].copy_(raw)
        at += padded(raw.numel())
    got = comm.gather_payloads(mine, lengths, what)
    out = []
    for r, s in enumerate(sizes):
        items, at = [], 0
        for n in s:
            items.append(got[r][at:at + n])
            at += padded(n)
        out.append(items)
    return out


def _global_max(comm: Any, values: list[Tensor], what: str) -> list[Tensor]:
    """Elementwise max over the ranks of each float64 vector in ``values`` (the same sizes on every rank)."""
    sizes = [[v.numel() * 8 for v in values]] * comm.world
    got = _gather(comm, values, sizes, what)
    return [torch.stack([from_bytes(got[r][i], torch.float64, values[i].shape) for r in range(comm.world)]
                        ).amax(0) for i in range(len(values))]


def _all_reduce_rows(comm: Any, jobs: list[Any], partial: list[Tensor], name: str = "R") -> list[Tensor]:
    """``Σ_ranks partial[i]`` (each ``(k, rows, r)``; jobs with ``k``, ``r``, ``wd``) on every rank, summed in rank order: one all-to-all of
    row blocks (reduce-scatter) and one all-gather of the summed blocks."""
    world, me = comm.world, comm.rank
    if world == 1:
        return partial
    nblocks = [even_blocks(p.shape[1], world) for p in partial]  # R's rows (n), or P's (m: the column form)
    rows = [[(hi - lo) for lo, hi in nb] for nb in nblocks]
    per_row = [j.k * j.r * p.element_size() for j, p in zip(jobs, partial)]
    send_sizes = [sum(padded(rows[i][q] * per_row[i]) for i in range(len(jobs))) for q in range(world)]
    mine = sum(padded(rows[i][me] * per_row[i]) for i in range(len(jobs)))
    recv_sizes = [mine] * world
    send = torch.zeros(sum(send_sizes), dtype=torch.uint8)
    at = 0
    for q in range(world):
        for i in range(len(jobs)):
            lo, hi = nblocks[i][q]
            raw = as_bytes(partial[i][:, lo:hi])
            send[at:at + raw.numel()].copy_(raw)
            at += padded(raw.numel())
    got = comm.all_to_all(_without_self(send, send_sizes, me), [0 if q == me else send_sizes[q] for q in range(world)],
                          [0 if q == me else recv_sizes[q] for q in range(world)],
                          f"all-to-all of Dion's partial {name} blocks (reduce-scatter)")
    starts, at = [], 0
    for q in range(world):
        starts.append(at)
        at += 0 if q == me else recv_sizes[q]
    summed = []
    for i, (j, p) in enumerate(zip(jobs, partial)):
        lo, hi = nblocks[i][me]
        shape = (j.k, hi - lo, j.r)
        off = sum(padded(rows[x][me] * per_row[x]) for x in range(i))
        acc = None
        for q in range(world):  # in rank order: the same arithmetic on every rank
            part = p[:, lo:hi] if q == me else \
                from_bytes(got[starts[q] + off:starts[q] + off + rows[i][me] * per_row[i]], j.wd, shape)
            acc = part.clone() if acc is None else acc + part
        summed.append(acc.contiguous())
    sizes = [[rows[i][q] * per_row[i] for i in range(len(jobs))] for q in range(world)]
    blocks = _gather(comm, summed, sizes, f"all-gather of Dion's summed {name} blocks")
    out = []
    for i, j in enumerate(jobs):
        out.append(torch.cat([summed[i] if q == comm.rank else
                              from_bytes(blocks[q][i], j.wd, (j.k, rows[i][q], j.r)) for q in range(world)], dim=1))
    return out


def _without_self(send: Tensor, sizes: list[int], me: int) -> Tensor:
    """``send`` (the parts for every rank, in rank order) without the part for rank ``me``."""
    start = sum(sizes[:me])
    return torch.cat([send[:start], send[start + sizes[me]:]])


def dion_steps(comm: Any, jobs: list[DionJob]) -> None:
    """One Dion step of every job, with four small all-gathers in all (see the module doc). Each job's
    ``result``: the update of the rows it finishes, in the parameter's dtype and (local) shape."""
    world = comm.world
    # 1. the exact rescaling f = min(pow2(max|M|), pow2(max|G|, eps)) per matrix, from global maxima
    maxes = _global_max(comm, [torch.cat([_amax(j.rows(j.M)), _amax(j.rows(j.G))]) for j in jobs],
                        "all-gather of Dion's max|M|, max|G|")
    Bs = []
    for j, mx in zip(jobs, maxes):
        g = j.group
        am, ag = mx[:j.k].to(j.wd).view(-1, 1, 1), mx[j.k:].to(j.wd).view(-1, 1, 1)
        j.f = torch.minimum(pow2_scale(am), pow2_scale(ag, eps=g["eps"]))
        Bs.append(j.M * j.f + j.G * j.f)
    bmax = _global_max(comm, [_amax(j.rows(B)) for j, B in zip(jobs, Bs)], "all-gather of Dion's max|B|")
    # 2. P_s = (B_s·f_B) Q on this rank's rows; the row blocks gathered; one QR of the whole P everywhere
    parts, qs = [], []
    for j, B, mx in zip(jobs, Bs, bmax):
        Q = torch.stack(j.qs).to(j.wd)
        qs.append(Q)
        fb = pow2_scale(mx.to(j.wd).view(-1, 1, 1))
        parts.append((j.rows(B) * fb) @ Q)
    sizes = [[j.k * (hi - lo) * j.r * parts[i].element_size() for i, j in enumerate(jobs) for lo, hi in [j.blocks[r]]]
             for r in range(world)]
    got = _gather(comm, parts, sizes, "all-gather of Dion's P row blocks")
    Ps = []
    for i, j in enumerate(jobs):
        whole = torch.cat([parts[i] if r == comm.rank else
                           from_bytes(got[r][i], j.wd, (j.k, j.blocks[r][1] - j.blocks[r][0], j.r))
                           for r in range(world)], dim=1)
        Ps.append(orthonormal_basis(whole))
    # 3. R = Σ_s B_sᵀ P_s: every rank's partial product, reduced as reduce-scatter + all-gather: rank q sums
    # the ranks' partials of its block of R's rows in rank order, then the blocks are gathered (every rank
    # holds the same bits whatever the backend; (N−1)/N·n·r received twice, as a ring all-reduce)
    partial = []
    for j, B, P in zip(jobs, Bs, Ps):
        lo, hi = j.blocks[comm.rank]
        partial.append(j.rows(B).mT @ P[:, lo:hi])
    Rs = _all_reduce_rows(comm, jobs, partial)
    # 4. local: error feedback into this rank's rows of M, the new Q, this rank's rows of the update
    for i, (j, B, P) in enumerate(zip(jobs, Bs, Ps)):
        R = Rs[i]
        g = j.group
        lo, hi = j.blocks[comm.rank]
        own = P if B.shape[1] == j.m else P[:, lo:hi]  # DDP: every row (whole matrices); FSDP2: mine
        B.baddbmm_(own, R.mT, alpha=-(1.0 - g["momentum"]))
        Q_new = column_normalize(R, scaled_eps(g["eps"], j.f, j.wd, floor=True))
        U = own @ Q_new.mT
        M_new = saturate(B / j.f, j.bufs[0].dtype)
        for buf, q, m_new, q_new in zip(j.bufs, j.qs, M_new.unbind(0), Q_new.unbind(0)):
            buf.copy_(m_new.reshape(buf.shape))
            q.copy_(q_new)
        j.result = [u.to(j.dtype).reshape(buf.shape) for u, buf in zip(U.unbind(0), j.bufs)]
