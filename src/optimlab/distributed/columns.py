"""Dion's column-sharded form: the power iteration on tensor-parallel column blocks (``Shard(1)``).

Dion (Ahn, Xu, Abreu & Langford, arXiv:2504.05295, Section 3, the distributed algorithm): with ``B = M + G``
(``m × n``) split by *columns* over the ranks of a tensor-parallel group (``B_j``: rank ``j``'s ``n_j``
columns) and the right factor ``Q`` (``n × r``) split the same way by rows (``Q_j``), the step needs no
whole matrix and two small all-reduces — ``m·r`` elements for ``P``, ``r`` for the column norms of ``R``,
the paper's ``(m + 1)·r`` — besides the per-matrix maxima of the exact rescaling:

1. ``f`` (the exact power-of-two rescaling of :class:`~optimlab.transforms.DionLowRank`) from the global
   ``max|M|``, ``max|G|`` and ``max|B|`` (all-gathers of one number per matrix; a max is exact);
2. ``P = orth(Σ_j B_j Q_j)``: each rank's ``m × r`` partial product, all-reduced (as in the row form: a
   reduce-scatter of row blocks summed in rank order, then an all-gather — every rank holds the same bits
   whatever the backend); one QR of ``P`` on every rank;
3. ``R_j = B_jᵀ P`` (``n_j × r``): local;
4. the column norms of ``R``: each rank's ``r`` sums of squares, all-gathered and summed in rank order;
   ``Q_j ← R_j / (‖R_{:,c}‖ + ε)``, ``M_j ← B_j − (1−μ) P R_jᵀ``, ``u_j = P Q_jᵀ``: local.

``Q`` is state sharded like the columns: a DTensor ``Shard(0)`` (``n × r``, torch's chunk rule over ``n``:
the parameter's own column split) on the parameter's mesh; a plain ``Q`` (a fresh optimizer, or a checkpoint
written by another layout) is sliced to it at the step. Matrices only (2-D parameters); other column-sharded
parameters run Dion's owner mode.

**Parity.** Not bit-exact with one process: the single-process ``B Q`` reduces over all ``n`` columns in one
matmul and the column norms over all ``n`` rows of ``R``; here each is a sum of per-rank partials
(reassociation, ~1 ULP per step), the tolerance of the row form (tests/distributed/test_tp.py).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..linalg.lowrank import orthonormal_basis, work_dtype
from ..linalg.scaling import pow2_scale, saturate, scaled_eps
from .comm import from_bytes
from .dion import _all_reduce_rows, _amax, _gather, _global_max
from .shards import local

__all__ = ["ColumnJob", "dion_column_steps", "shard_q", "grid_groups"]


def shard_q(states: list[dict], lstates: list[dict], key: str, param: Any, span: tuple[int, int]) -> None:
    """Make each state's ``Q`` (``n × r``) a DTensor sharded by rows like ``param``'s columns (a plain ``Q`` is
    sliced: every rank holds the same whole one); the local proxies ``lstates`` follow."""
    from torch.distributed.tensor import DTensor, Replicate, Shard

    pl = [Shard(0) if isinstance(x, Shard) and x.dim == 1 else Replicate() for x in param.placements]
    for st, proxy in zip(states, lstates):
        q = st[key]
        if isinstance(q, DTensor):
            if tuple(q.placements) != tuple(pl):
                q = q.redistribute(param.device_mesh, pl)
                st[key] = q
        else:
            st[key] = q = DTensor.from_local(q[span[0]:span[1]].clone(), param.device_mesh, pl, run_check=False,
                                             shape=q.shape, stride=q.stride())
        proxy[key] = local(q)


class ColumnJob:
    """One bucket of same-shape matrices to step with Dion on column blocks: this rank's local blocks
    (``updates``, ``bufs``: ``m_i × n_j``; ``qs``: ``n_j × r``); ``rows``: on a 2-D grid, every rank's
    ``[lo, hi)`` rows in the row group (the ranks holding the same columns), in that group's rank order."""

    def __init__(self, group: dict, updates: list[Tensor], bufs: list[Tensor], qs: list[Tensor], shape: Any,
                 dtype: torch.dtype, rows: list[tuple[int, int]] | None = None):
        self.group, self.bufs, self.qs, self.dtype, self.rows = group, bufs, qs, dtype, rows
        self.wd = work_dtype(dtype)
        self.m, self.n = shape[0], shape[1]
        self.r = qs[0].shape[-1]
        self.k = len(updates)
        self.G = torch.stack([u.to(self.wd) for u in updates])
        self.M = torch.stack([x.to(self.wd) for x in bufs])
        self.result: list[Tensor] = []


def dion_column_steps(comm: Any, jobs: list[ColumnJob], cols: Any = None, rows: Any = None) -> None:
    """One Dion step of every job (see the module doc); each job's ``result``: this rank's block of the
    update, in the parameter's dtype. ``comm``: every rank holding a block; ``cols``: the ranks splitting the
    columns (default ``comm``); ``rows``: on a 2-D grid (FSDP × TP), the ranks splitting the rows — then ``P``'s
    row blocks are all-gathered over them and ``R`` all-reduced over them (the paper's full form)."""
    cols = comm if cols is None else cols
    world = cols.world
    maxes = _global_max(comm, [torch.cat([_amax(j.M), _amax(j.G)]) for j in jobs],
                        "all-gather of Dion's max|M|, max|G| (columns)")
    Bs = []
    for j, mx in zip(jobs, maxes):
        am, ag = mx[:j.k].to(j.wd).view(-1, 1, 1), mx[j.k:].to(j.wd).view(-1, 1, 1)
        j.f = torch.minimum(pow2_scale(am), pow2_scale(ag, eps=j.group["eps"]))
        Bs.append(j.M * j.f + j.G * j.f)
    bmax = _global_max(comm, [_amax(B) for B in Bs], "all-gather of Dion's max|B| (columns)")
    # 2. P = orth(Σ_j (B_j·f_B) Q_j): the m × r partial products all-reduced, one QR everywhere
    partial = []
    for j, B, mx in zip(jobs, Bs, bmax):
        fb = pow2_scale(mx.to(j.wd).view(-1, 1, 1))
        partial.append((B * fb) @ torch.stack(j.qs).to(j.wd))
    Ps = _all_reduce_rows(cols, jobs, partial, "P")
    if rows is not None:  # 2-D grid: this rank has P's rows of its row block; gather the others'
        Ps = _gather_rows(rows, jobs, Ps)
    Ps = [orthonormal_basis(P) for P in Ps]
    if rows is not None:
        Ps = [P[:, j.rows[rows.rank][0]:j.rows[rows.rank][1]] for j, P in zip(jobs, Ps)]
    # 3. R_j = B_jᵀ P locally (2-D grid: summed over the row blocks); 4. the column norms of R from every
    # rank's sums of squares (rank order)
    Rs = [B.mT @ P for B, P in zip(Bs, Ps)]
    if rows is not None:
        Rs = _all_reduce_rows(rows, jobs, Rs, "R")
    sq = [(R * R).sum(dim=-2) for R in Rs]  # (k, r)
    got = _gather(cols, sq, [[s.numel() * s.element_size() for s in sq]] * world,
                  "all-gather of Dion's column sums of squares of R")
    for i, (j, B, P, R) in enumerate(zip(jobs, Bs, Ps, Rs)):
        total = None
        for q in range(world):
            part = sq[i] if q == cols.rank else from_bytes(got[q][i], j.wd, sq[i].shape)
            total = part.clone() if total is None else total + part
        norm = total.sqrt().unsqueeze(-2)  # (k, 1, r)
        B.baddbmm_(P, R.mT, alpha=-(1.0 - j.group["momentum"]))
        Q_new = R / (norm + scaled_eps(j.group["eps"], j.f, j.wd, floor=True))
        U = P @ Q_new.mT
        M_new = saturate(B / j.f, j.bufs[0].dtype)
        for buf, q, m_new, q_new in zip(j.bufs, j.qs, M_new.unbind(0), Q_new.unbind(0)):
            buf.copy_(m_new)
            q.copy_(q_new)
        j.result = [u.to(j.dtype) for u in U.unbind(0)]


def grid_groups(p: Any) -> tuple[int, int]:
    """The mesh dimensions a 2-D-sharded matrix splits its rows (``Shard(0)``) and its columns over."""
    from torch.distributed.tensor import Shard

    dims = {pl.dim: i for i, pl in enumerate(p.placements) if isinstance(pl, Shard)}
    return dims[0], dims[1]


def _gather_rows(rows: Any, jobs: list[ColumnJob], Ps: list[Tensor]) -> list[Tensor]:
    """The whole ``P`` (``k × m × r``) on every rank from each row group rank's block of its rows."""
    sizes = [[j.k * (hi - lo) * j.r * P.element_size() for j, P in zip(jobs, Ps) for lo, hi in [j.rows[q]]]
             for q in range(rows.world)]
    got = _gather(rows, Ps, sizes, "all-gather of Dion's P row blocks (grid)")
    return [torch.cat([Ps[i] if q == rows.rank else
                       from_bytes(got[q][i], j.wd, (j.k, j.rows[q][1] - j.rows[q][0], j.r))
                       for q in range(rows.world)], dim=1) for i, j in enumerate(jobs)]


def column_scale(job: ColumnJob) -> float:
    """Dion's shape factor ``sqrt(m/n)`` from the global shape."""
    return math.sqrt(job.m / job.n)
