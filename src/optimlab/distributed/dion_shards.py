"""Dion's sharded power iteration inside the FSDP2 / DTensor executor: which form each bucket takes, and the calls.

:class:`DionOnShards` (a base of :class:`.sharded.ShardedStep`) steps the Dion buckets that
:func:`.layout.dion_parts` gives a sharded form: the row form (``Shard(0)``, :mod:`.dion`), the column form
(``Shard(1)``, :mod:`.columns`) and the grid form (``(Shard(0), Shard(1))`` on a 2-D mesh: the paper's FSDP × TP
algorithm, the column form with ``P`` gathered and ``R`` reduced over the row group). Collectives over one mesh
dimension go through their own :class:`.comm.Comm` (the optimizer's timeout; bytes added to the executor's).
"""

from __future__ import annotations

import math
from typing import Any

from ..core.transform import Bucket
from .columns import ColumnJob, column_scale, dion_column_steps, grid_groups, shard_q
from .dion import DionJob, dion_steps
from .shards import local as _local
from .shards import run_local, write_back

__all__ = ["DionOnShards"]


class DionOnShards:
    """Dion's row, column and grid forms on the local blocks (see the module doc); needs ``comm``, ``rank``,
    ``layouts``, ``mesh``, ``opt`` and ``matrix_calls`` of the executor."""

    def _lowrank(self, jobs: list[tuple[Any, Bucket, Bucket, tuple[int, int]]]) -> None:
        """Dion as its paper intends (:mod:`.dion`): the power iteration on the local row shards with small
        all-gathers of ``P`` row blocks and partial ``R``; no rank assembles a whole matrix."""
        dj = []
        for chain, b, lb, seg in jobs:
            t, p = chain.transforms[seg[0]], b.params[0]
            blocks = self.layouts[id(p)].spans(0)
            lo, hi = blocks[self.rank]
            dj.append(DionJob(t, b.group, lb.updates, lb.state(t, "momentum_buffer"), lb.state(t, "Q"), blocks,
                              (0, hi - lo), p.shape, p.dtype))
            self.matrix_calls += len(b.params) if hi > lo else 0
        dion_steps(self.comm, dj)
        for (chain, b, lb, seg), job in zip(jobs, dj):
            lb.set_updates(job.result, owned=True)
            lb.scale_by([math.sqrt(job.m / job.n)] * len(b.params))
            run_local(chain, lb, b, seg[1], len(chain.transforms), apply=True)
            write_back(lb, b)

    def _lowrank_columns(self, jobs: list[tuple[Any, Bucket, Bucket, tuple[int, int]]], grid: bool = False) -> None:
        """Dion's column form on tensor-parallel column blocks (:mod:`.columns`): all-reduces of ``P`` and of
        the column norms of ``R``; ``Q`` sharded by rows like the columns. ``grid``: blocks split both ways
        (FSDP × TP): ``P`` reduced over the column group, gathered over the row group, ``R`` reduced over it."""
        parts: dict[tuple, list] = {}
        for job in jobs:  # one call per (row, column) mesh dimensions (the same order on every rank)
            p = job[1].params[0]
            parts.setdefault(grid_groups(p)[:2] if grid else (None, None), []).append(job)
        for (a, bdim), part in parts.items():
            self._columns_part(part, a, bdim)

    def _columns_part(self, jobs: list, a: Any, bdim: Any) -> None:
        cols = rows = None
        if a is not None:
            cols, rows = self._dim_comm(bdim), self._dim_comm(a)
        cj = []
        for chain, b, lb, seg in jobs:
            t, p = chain.transforms[seg[0]], b.params[0]
            lay = self.layouts[id(p)]
            lo, hi = lay.spans(1)[self.rank]
            spans = None
            if a is not None:  # every row-group rank's rows, in that group's rank order
                spans = [lay.spans(0)[r] for r in _row_group(self.mesh, a, self.comm.group)]
            shard_q(b.states, lb.states, f"{t.name}.Q", p, (lo, hi))
            cj.append(ColumnJob(b.group, lb.updates, lb.state(t, "momentum_buffer"), lb.state(t, "Q"), p.shape,
                                p.dtype, spans))
            self.matrix_calls += len(b.params) if hi > lo and _local(p).numel() else 0
        before = [(c.bytes_received, c.bytes_needed) for c in (cols, rows) if c is not None]
        dion_column_steps(self.comm, cj, cols, rows)
        for c, (rec, need) in zip([c for c in (cols, rows) if c is not None], before):
            self.comm.bytes_received += c.bytes_received - rec
            self.comm.bytes_needed += c.bytes_needed - need
        for (chain, b, lb, seg), job in zip(jobs, cj):
            lb.set_updates(job.result, owned=True)
            lb.scale_by([column_scale(job)] * len(b.params))
            run_local(chain, lb, b, seg[1], len(chain.transforms), apply=True)
            write_back(lb, b)

    def _dim_comm(self, d: int) -> Any:
        """This optimizer's collectives over mesh dimension ``d`` (its timeout; bytes added to ``comm``'s)."""
        from .comm import Comm

        cache = self.__dict__.setdefault("_dim_comms", {})
        if d not in cache:
            cache[d] = Comm(self.opt.name, self.mesh.get_group(d), self.comm.timeout, self.comm.cap_bytes / 2 ** 20)
        cache[d].timeout = self.comm.timeout
        return cache[d]


def _row_group(mesh: Any, a: int, group: Any) -> list[int]:
    """The work-group ranks of the ranks that differ from this one only along mesh dimension ``a``, in that
    dimension's order (the rank order of ``mesh.get_group(a)``)."""
    import torch.distributed as dist

    coord = list(mesh.get_coordinate())
    out = []
    for c in range(mesh.size(a)):
        coord[a] = c
        out.append(dist.get_group_rank(group, int(mesh.mesh[tuple(coord)])))
    return out
