"""FSDP2 / DTensor parameters: elementwise work on local shards, whole-matrix work on owners via all-to-all.

FSDP2 (``fully_shard``) gives every parameter as a DTensor sharded by rows (``Shard(0)``) over a 1-D mesh;
tensor parallelism shards columns (``Shard(1)``) or replicates; FSDP × TP meshes shard both. Every rank's
local tensor is a rectangular block of the parameter (:mod:`.layout`). Per chain
(:func:`.capability.owner_segment`):

* a chain of elementwise transforms runs on the local shards (plain tensors, torch.optim's fused kernels), no
  communication;
* a chain with a *segment* of transforms that need the whole matrix (orthogonalization, NorMuon's row
  normalisation, Dion's power iteration...) runs its elementwise prefix on the shards; then each parameter's
  update shards (and the shards of the segment's sharded state, e.g. Dion's buffer) go to one **owner** rank
  (FLOP-balanced, :mod:`.owners`) in one ``all_to_all_single``; the owner assembles the whole matrices, runs
  the segment once, batched per same-shape bucket, and sends each rank its block back in a second
  ``all_to_all_single`` (with the segment's replicated state — NorMuon's ``v``, Dion's ``Q`` — and its
  per-parameter scale); the suffix and the apply step run on the shards again.

The shard layout (every rank's block of every parameter) is exchanged once, at construction ("metadata
first"). Supported: ``Shard(d)`` / ``Replicate()`` placements on a 1-D mesh, and on a 2-D mesh sharded on one
dimension (HSDP: ``(Replicate(), Shard(0))``) or on both (FSDP × TP: ``(Shard(0), Shard(1))``); Dion's sharded
power iteration has a row form (``Shard(0)``), a column form (``Shard(1)``) and a grid form (both; see
:mod:`.dion_shards`). See docs/distributed.md.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..core.transform import Bucket
from .capability import GRAD_READERS, owner_segment, segment_cost
from .comm import as_bytes, from_bytes, padded
from .dion import is_dion_segment
from .dion_shards import DionOnShards
from .layout import dion_parts, exchange_layouts, work_dims, work_group
from .owners import assign_owners
from .replicated import wire_dtype
from .runtime import Distributed
from .shards import local as _local
from .shards import align_grads, local_bucket, replicated as _replicated, run_local, whole_mesh_group, write_back

__all__ = ["ShardedStep"]


class _SegJob:
    __slots__ = ("chain", "b", "lb", "seg", "owners", "sharded_keys", "plain_keys", "scalar_keys", "grads", "wire")

    def __init__(self, chain: Any, b: Bucket, lb: Bucket, seg: tuple[int, int]):
        self.chain, self.b, self.lb, self.seg = chain, b, lb, seg
        self.grads = any(isinstance(t, GRAD_READERS) for t in chain.transforms[seg[0]:seg[1]])
        # a segment that is one bf16 Newton–Schulz returns bf16-exact values: they travel back in bf16
        self.wire = wire_dtype(chain.transforms[seg[0]], b.group, b.params[0].dtype) \
            if seg[1] - seg[0] == 1 else b.params[0].dtype
        prefixes = tuple(f"{t.name}." for t in chain.transforms[seg[0]:seg[1]])
        st = b.states[0]
        keys = sorted(k for k in st if k.startswith(prefixes))
        # sharded like the parameter: repartitioned with it; replicated DTensors (a Kronecker factor made with
        # p.new_zeros) and plain tensors: the owner's values are sent back whole
        self.sharded_keys = [k for k in keys if hasattr(st[k], "to_local") and not _replicated(st[k])]
        self.plain_keys = [k for k in keys if isinstance(st[k], Tensor) and
                           (not hasattr(st[k], "to_local") or _replicated(st[k]))]
        self.scalar_keys = [k for k in keys if not isinstance(st[k], Tensor)]


class ShardedStep(DionOnShards, Distributed):
    """The FSDP2 executor (see the module doc)."""

    mode = "sharded"

    def __init__(self, opt: Any, group: Any = None, **kw: Any):
        params = [p for g in opt.param_groups for p in g["params"]]
        mesh = params[0].device_mesh
        self.work_dims = work_dims(mesh, params, opt.name)
        self.mesh = mesh
        check = None
        if len(self.work_dims) < mesh.ndim and group is None:  # HSDP: settings agree over the whole mesh
            check = whole_mesh_group(mesh)
        super().__init__(opt, group if group is not None else work_group(mesh, self.work_dims), check_group=check,
                         **kw)
        # metadata first: every rank's block of every parameter (fixed for the optimizer's life)
        self.layouts = exchange_layouts(self.comm, params, opt.name)

    # -- message layouts (the same computation on every rank) -----------------------------------------
    def _to_owner(self, job: _SegJob, i: int, r: int) -> list[tuple[str, int]]:
        """Items rank ``r`` contributes to the owner's whole tensors of parameter ``i``: (key, padded bytes);
        none when another rank sends the same block (a replicated one), or it is empty."""
        p, st, lay = job.b.params[i], job.b.states[i], self.layouts[id(job.b.params[i])]
        o = job.owners[i]
        if not (lay.sender(r, o) or (r == o and lay.numel(r))):
            return []
        n = lay.numel(r)
        items = [("u", padded(n * _local(p).element_size()))]
        items += [(k, padded(n * _local(st[k]).element_size())) for k in job.sharded_keys]
        if job.grads:
            items.append(("g", padded(n * _local(job.b.grads[i]).element_size())))
        return items

    def _from_owner(self, job: _SegJob, i: int, r: int) -> list[tuple[str, int]]:
        """Items the owner of parameter ``i`` sends rank ``r`` (not itself): its block of the results."""
        st = job.b.states[i]
        n = self.layouts[id(job.b.params[i])].numel(r)
        items = [("u", padded(n * job.wire.itemsize))]
        items += [(k, padded(n * _local(st[k]).element_size())) for k in job.sharded_keys]
        items += [(k, padded(st[k].numel() * st[k].element_size())) for k in job.plain_keys]
        items.append(("scalars", padded(8 * (1 + len(job.scalar_keys)))))
        return items

    # -- the step --------------------------------------------------------------------------------------
    def run(self, jobs: list[tuple[Any, Bucket]], fused: bool) -> None:
        segs: list[_SegJob] = []
        costs: list[float] = []
        lowrank: dict[str, list[tuple[Any, Bucket, Bucket, tuple[int, int]]]] = {"rows": [], "cols": [], "grid": []}
        for chain, b in jobs:
            align_grads(b)
            seg = owner_segment(chain)
            if seg is None:  # elementwise: the local shards, no communication
                lb = local_bucket(b)
                run_local(chain, lb, b, 0, len(chain.transforms), apply=True, fused=fused)
                write_back(lb, b)
                continue
            if self.dion == "lowrank" and is_dion_segment(chain, seg):
                rest = None
                for form, sb in dion_parts(b, self.layouts):  # the row form, the column form, or owners
                    if form is None:
                        rest = sb
                        continue
                    slb = local_bucket(sb)
                    run_local(chain, slb, sb, 0, seg[0])
                    lowrank[form].append((chain, sb, slb, seg))
                if rest is None:
                    continue
                b = rest
            lb = local_bucket(b)
            job = _SegJob(chain, b, lb, seg)
            for k in job.sharded_keys:
                for p, st in zip(b.params, b.states):
                    if tuple(st[k].shape) != tuple(p.shape) or st[k].placements != p.placements:
                        raise RuntimeError(f"{self.opt.name}: state {k!r} is a DTensor of shape "
                                           f"{tuple(st[k].shape)} / {st[k].placements}; only state sharded like its "
                                           f"parameter can be repartitioned")
            run_local(chain, lb, b, 0, seg[0])
            segs.append(job)
            costs.extend(segment_cost(chain, seg, p.shape, b.group) for p in b.params)
        if lowrank["rows"]:
            self._lowrank(lowrank["rows"])
        if lowrank["cols"]:
            self._lowrank_columns(lowrank["cols"])
        if lowrank["grid"]:
            self._lowrank_columns(lowrank["grid"], grid=True)
        if not segs:
            return
        owners = assign_owners(costs, self.world)
        at = 0
        for job in segs:
            job.owners = owners[at:at + len(job.b.params)]
            at += len(job.b.params)
        full = self._gather_to_owners(segs)
        results = self._compute(segs, full)
        self._full_cache = full  # the owner's whole sharded state, sliced back to every rank
        try:
            self._scatter_back(segs, results)
        finally:
            self._full_cache = None
        for job in segs:
            run_local(job.chain, job.lb, job.b, job.seg[1], len(job.chain.transforms), apply=True)
            write_back(job.lb, job.b)

    def _gather_to_owners(self, segs: list[_SegJob]) -> dict[tuple[int, int], dict[str, Tensor]]:
        """First all-to-all: every rank's shards of each parameter to its owner; the owner's whole tensors."""
        me, world = self.rank, self.world
        send_parts: list[list[Tensor]] = [[] for _ in range(world)]
        send_sizes, recv_sizes = [0] * world, [0] * world
        for job in segs:
            ups = job.lb.updates
            for i, o in enumerate(job.owners):
                if o != me:
                    for key, n in self._to_owner(job, i, me):
                        src = _local(self._item(job, i, key, ups))
                        send_parts[o].append(_pad(as_bytes(src), n))
                        send_sizes[o] += n
                else:
                    for r in range(world):
                        if r != me:
                            recv_sizes[r] += sum(n for _, n in self._to_owner(job, i, r))
        send = torch.cat([x for parts in send_parts for x in parts]) if any(send_sizes) else \
            torch.empty(0, dtype=torch.uint8)
        recv = self.comm.all_to_all(send, send_sizes, recv_sizes, "all-to-all of shards to owners")
        starts = _starts(recv_sizes)
        full: dict[tuple[int, int], dict[str, Tensor]] = {}
        for j, job in enumerate(segs):
            ups = job.lb.updates
            for i, o in enumerate(job.owners):
                if o != me:
                    continue
                p, st = job.b.params[i], job.b.states[i]
                lay = self.layouts[id(p)]
                whole = {"u": torch.empty(p.shape, dtype=ups[i].dtype)}
                whole.update({k: torch.empty(st[k].shape, dtype=st[k].dtype) for k in job.sharded_keys})
                if job.grads:
                    whole["g"] = torch.empty(p.shape, dtype=job.b.grads[i].dtype)
                for r in range(world):
                    for key, n in self._to_owner(job, i, r):
                        dst = lay.block(whole[key], r)
                        if r == me:
                            dst.copy_(_local(self._item(job, i, key, ups)))
                        else:
                            dst.copy_(from_bytes(recv[starts[r]:starts[r] + dst.numel() * dst.element_size()],
                                                 dst.dtype, dst.shape))
                            starts[r] += n
                full[(j, i)] = whole
        return full

    def _compute(self, segs: list[_SegJob], full: dict) -> dict[tuple[int, int], tuple[Tensor, float]]:
        """The segment on each job's owned whole matrices, one batched bucket per job."""
        out = {}
        for j, job in enumerate(segs):
            mine = [i for i, o in enumerate(job.owners) if o == self.rank]
            if not mine:
                continue
            b = job.b
            states = []
            for i in mine:
                st = {"step": b.states[i]["step"], **{k: full[(j, i)][k] for k in job.sharded_keys}}
                st.update({k: job.lb.states[i][k] for k in job.plain_keys + job.scalar_keys})
                states.append(st)
            ups = [full[(j, i)]["u"] for i in mine]
            # params: the DTensors themselves (global shape and dtype; a segment never writes parameters)
            grads = [full[(j, i)]["g"] for i in mine] if job.grads else [None] * len(mine)
            ob = Bucket([b.params[i] for i in mine], grads, states, [b.steps[i] for i in mine], b.group)
            ob.ctx = b.ctx
            ob.set_updates(ups, owned=True)
            for t in job.chain.transforms[job.seg[0]:job.seg[1]]:
                t.update(ob)
            res = ob._u if ob._num is None else torch._foreach_div(ob._num, ob._den)
            for n, i in enumerate(mine):
                for k in job.scalar_keys + job.plain_keys:  # the owner's values are the new replicated ones
                    job.lb.states[i][k] = states[n][k]
                for k in job.sharded_keys:
                    full[(j, i)][k] = states[n][k]
                out[(j, i)] = (res[n], ob.scale[n] if ob.scale is not None else math.nan)
            self.matrix_calls += len(mine)
        return out

    def _scatter_back(self, segs: list[_SegJob], results: dict) -> None:
        """Second all-to-all: each owner sends every rank its block of the results (and replicated state)."""
        me, world = self.rank, self.world
        send_parts: list[list[Tensor]] = [[] for _ in range(world)]
        send_sizes, recv_sizes = [0] * world, [0] * world
        for j, job in enumerate(segs):
            for i, o in enumerate(job.owners):
                if o == me:
                    p, st = job.b.params[i], job.lb.states[i]
                    lay = self.layouts[id(p)]
                    u, scale = results[(j, i)]
                    for r in range(world):
                        if r == me:
                            continue
                        for key, n in self._from_owner(job, i, r):
                            if key == "u" or key in job.sharded_keys:
                                whole = u if key == "u" else self._full_state(j, i, key)
                                src = lay.block(whole, r)
                                src = src.to(job.wire) if key == "u" else src
                            elif key == "scalars":
                                src = torch.tensor([scale, *(float(st[k]) for k in job.scalar_keys)],
                                                   dtype=torch.float64)
                            else:
                                src = st[key]
                            send_parts[r].append(_pad(as_bytes(src), n))
                            send_sizes[r] += n
                else:
                    recv_sizes[o] += sum(n for _, n in self._from_owner(job, i, me))
        send = torch.cat([x for parts in send_parts for x in parts]) if any(send_sizes) else \
            torch.empty(0, dtype=torch.uint8)
        recv = self.comm.all_to_all(send, send_sizes, recv_sizes, "all-to-all of results from owners")
        starts = _starts(recv_sizes)
        for j, job in enumerate(segs):
            b = job.b
            ups, scales = [], []
            for i, o in enumerate(job.owners):
                p, st = b.params[i], job.lb.states[i]
                if o == me:
                    lay = self.layouts[id(p)]
                    u, scale = results[(j, i)]
                    local_u = lay.block(u, me)
                    for k in job.sharded_keys:
                        _local(st[k]).copy_(lay.block(self._full_state(j, i, k), me))
                else:
                    local_u, scale = None, math.nan
                    for key, n in self._from_owner(job, i, me):
                        buf = recv[starts[o]:starts[o] + n]
                        starts[o] += n
                        if key == "u":
                            loc = _local(p)
                            local_u = from_bytes(buf[:loc.numel() * job.wire.itemsize], job.wire, loc.shape).to(loc.dtype)
                        elif key == "scalars":
                            vals = from_bytes(buf[:8 * (1 + len(job.scalar_keys))], torch.float64, (-1,)).tolist()
                            scale = vals[0]
                            for k, x in zip(job.scalar_keys, vals[1:]):
                                st[k] = x
                        else:
                            dst = _local(st[key])
                            dst.copy_(from_bytes(buf[:dst.numel() * dst.element_size()], dst.dtype, dst.shape))
                ups.append(local_u)
                scales.append(scale)
            job.lb.set_updates(ups, owned=True)
            job.lb.scale = None if all(math.isnan(s) for s in scales) else [1.0 if math.isnan(s) else s for s in scales]

    @staticmethod
    def _item(job: _SegJob, i: int, key: str, ups: list[Tensor]) -> Tensor:
        if key == "u":
            return ups[i]
        return job.b.grads[i] if key == "g" else job.b.states[i][key]

    def _full_state(self, j: int, i: int, key: str) -> Tensor:
        return self._full_cache[(j, i)][key]


def _pad(raw: Tensor, n: int) -> Tensor:
    if raw.numel() == n:
        return raw
    out = torch.zeros(n, dtype=torch.uint8)
    out[:raw.numel()] = raw
    return out


def _starts(sizes: list[int]) -> list[int]:
    out, at = [], 0
    for n in sizes:
        out.append(at)
        at += n
    return out
