"""Where every rank's piece of a DTensor parameter lies: rectangular blocks, for any Shard / Replicate layout.

FSDP2 shards rows (``Shard(0)``), tensor parallelism shards columns (``Shard(1)``: Megatron's row-parallel
linears; ``Shard(0)`` for column-parallel ones) or leaves a parameter whole (``Replicate()``: norms, biases),
and FSDP × TP meshes combine them (``(Shard(0), Shard(1))`` on a 2-D mesh). In all of these, the local tensor
of a rank is one rectangular block of the global tensor: an ``(offset, size)`` per tensor dimension (torch's
``chunk`` split along each sharded dimension, uneven sizes and empty blocks included). The whole-matrix work
only needs, per parameter, every rank's block:

* the **work group**: the mesh dimensions that shard some parameter (the others replicate: each replica
  group does the same work on the same bits, as HSDP's replicas do); with no sharded dimension at all, the
  whole mesh (replicated parameters are then owner-split like DDP);
* :class:`Layout`: every work-group rank's block of one parameter, exchanged once at construction
  ("metadata first"), checked to tile the tensor exactly (distinct blocks, no overlap, no gap); ranks that
  hold the same block (``Replicate()`` on a work dimension) are told apart: only one of them sends it to an
  owner (:meth:`Layout.sender`), every one of them receives the result;
* :meth:`Layout.kind`: ``"rows"`` (distinct full-width row blocks: FSDP2), ``"cols"`` (distinct full-height
  column blocks of a matrix: tensor-parallel ``Shard(1)``), ``"grid"`` (a matrix split both ways: FSDP × TP),
  ``"replicated"``, or ``"blocks"`` (anything else): Dion's sharded power iteration has a row form, a column
  form and the grid form; the rest uses the owner split.

Refused at construction, with the reason: placements other than ``Shard(d)`` and ``Replicate()``
(``Partial``, FSDP's strided shards of a TP-sharded dimension), parameters on different meshes, a work
group that is neither one mesh dimension nor the whole mesh (3-D meshes sharding on two dimensions).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["Layout", "work_dims", "work_group", "my_block", "exchange_layouts"]

Block = tuple[tuple[int, int], ...]  # (offset, size) per tensor dimension


def _placement_ok(pl: Any) -> bool:
    from torch.distributed.tensor import Replicate, Shard

    return type(pl) is Replicate or type(pl) is Shard


def work_dims(mesh: Any, params: list, name: str) -> tuple[int, ...]:
    """The mesh dimensions whole-matrix work is split over (see the module doc); refuses unsupported layouts."""
    from torch.distributed.tensor import Shard

    dims: set[int] = set()
    for p in params:
        bad = [pl for pl in p.placements if not _placement_ok(pl)]
        if p.device_mesh != mesh or bad:
            why = "another device mesh" if p.device_mesh != mesh else f"placements {bad} (not Shard(d) or Replicate())"
            raise ValueError(f"{name}: sharded parameters must be DTensors on one device mesh with Shard(d) / "
                             f"Replicate() placements; a parameter of shape {tuple(p.shape)} has {why} "
                             f"(mesh {p.device_mesh}, placements {p.placements}); see docs/distributed.md")
        dims.update(i for i, pl in enumerate(p.placements) if isinstance(pl, Shard))
    if not dims:
        return tuple(range(mesh.ndim))
    if len(dims) > 1 and len(dims) != mesh.ndim:
        raise ValueError(f"{name}: parameters sharded over mesh dimensions {sorted(dims)} of a {mesh.ndim}-D mesh; "
                         f"supported: one mesh dimension, or every dimension of the mesh (see docs/distributed.md)")
    return tuple(sorted(dims))


def work_group(mesh: Any, dims: tuple[int, ...]) -> Any:
    """The process group of the work dimensions (one mesh dimension, or the whole mesh)."""
    from .shards import whole_mesh_group

    if len(dims) == mesh.ndim:
        return whole_mesh_group(mesh)
    return mesh.get_group(dims[0])


def my_block(p: Any) -> Block:
    """This rank's block of DTensor ``p``: ``(offset, size)`` per dimension (torch's own chunk rule)."""
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    shape, offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
    local = p.to_local().shape
    if tuple(shape) != tuple(local):  # pragma: no cover - a layout torch's rule does not describe
        raise ValueError(f"a DTensor of shape {tuple(p.shape)} / {p.placements} holds a local tensor of shape "
                         f"{tuple(local)}, not the {tuple(shape)} of torch's chunk rule")
    return tuple((o if s else 0, s) for o, s in zip(offset, shape))


class Layout:
    """Every work-group rank's block of one parameter (see the module doc)."""

    __slots__ = ("shape", "blocks", "_first")

    def __init__(self, shape: Any, blocks: list[Block], name: str = "optimizer"):
        self.shape = tuple(shape)
        self.blocks = blocks
        # the lowest rank holding each distinct block
        self._first: dict[Block, int] = {}
        for r, blk in enumerate(blocks):
            self._first.setdefault(blk, r)
        distinct = [b for b in self._first if all(s for _, s in b)]
        vol = sum(math.prod(s for _, s in b) for b in distinct)
        inside = all(0 <= o and o + s <= n for b in distinct for (o, s), n in zip(b, self.shape))
        overlap = any(all(max(oa, ob) < min(oa + sa, ob + sb) for (oa, sa), (ob, sb) in zip(a, b))
                      for i, a in enumerate(distinct) for b in distinct[i + 1:])
        if vol != math.prod(self.shape) or not inside or overlap:
            raise ValueError(f"{name}: the local blocks of a parameter of shape {self.shape} do not tile it exactly "
                             f"(blocks per rank: {blocks})")

    def sl(self, r: int) -> tuple[slice, ...]:
        return tuple(slice(o, o + s) for o, s in self.blocks[r])

    def block(self, t: Tensor, r: int) -> Tensor:
        """Rank ``r``'s block of the whole tensor ``t``."""
        return t[self.sl(r)]

    def numel(self, r: int) -> int:
        return math.prod(s for _, s in self.blocks[r])

    def sender(self, r: int, owner: int) -> bool:
        """Whether rank ``r`` sends its block to ``owner`` (one copy of each distinct non-empty block: the owner's
        own when it holds it, else the lowest rank's)."""
        blk = self.blocks[r]
        if r == owner or self.numel(r) == 0 or blk == self.blocks[owner]:
            return False
        return self._first[blk] == r

    def kind(self) -> str:
        """``"rows"``, ``"cols"``, ``"replicated"`` or ``"blocks"`` (see the module doc)."""
        world = len(self.blocks)
        if len(set(self.blocks)) == 1:
            return "replicated" if world > 1 else "rows"
        full = [b for b in self.blocks if all(s for _, s in b)]
        distinct = len(set(full)) == len(full)  # empty blocks (uneven shards) aside
        split = {d for b in self.blocks for d, ((o, s), n) in enumerate(zip(b, self.shape)) if (o, s) != (0, n)}
        if distinct and split <= {0}:
            return "rows"
        if distinct and split == {1} and len(self.shape) == 2:
            return "cols"
        if distinct and split == {0, 1} and len(self.shape) == 2:
            return "grid"
        return "blocks"

    def spans(self, dim: int) -> list[tuple[int, int]]:
        """Every rank's ``[lo, hi)`` along ``dim``."""
        return [(b[dim][0], b[dim][0] + b[dim][1]) for b in self.blocks]


def exchange_layouts(comm: Any, params: list, name: str) -> dict[int, Layout]:
    """All-gather every rank's blocks (one int64 message) and build each parameter's :class:`Layout`."""
    mine = torch.tensor([x for p in params for pair in my_block(p) for x in pair], dtype=torch.int64)
    everyone = comm.all_gather(mine, "shard-layout exchange (all-gather)")
    out, at = {}, 0
    for p in params:
        n = 2 * p.ndim
        blocks = [tuple((row[at + 2 * d], row[at + 2 * d + 1]) for d in range(p.ndim)) for row in everyone.tolist()]
        out[id(p)] = Layout(p.shape, blocks, name)
        at += n
    return out


def dion_parts(b: Any, layouts: dict[int, Layout]) -> list[tuple[str | None, Any]]:
    """A Dion bucket split by the form its parameters take: ``"rows"`` (the row form), ``"cols"`` (the column
    form), ``"grid"`` (both: FSDP × TP) or None (owner mode: replicated or other blocks); parameters of one part
    share their layout. A bucket
    that is one part is returned as it is."""
    from ..core.transform import Bucket

    parts: dict[tuple, list[int]] = {}
    for i, p in enumerate(b.params):
        lay = layouts[id(p)]
        kind = lay.kind()
        key = (kind, tuple(lay.spans(0 if kind == "rows" else 1))) if kind in ("rows", "cols") else \
            (kind, tuple(lay.blocks), tuple(map(str, p.placements))) if kind == "grid" else (None,)
        parts.setdefault(key, []).append(i)
    if len(parts) == 1:
        return [(next(iter(parts))[0], b)]
    out = []
    for key, idx in parts.items():
        sb = Bucket([b.params[i] for i in idx], [b.grads[i] for i in idx], [b.states[i] for i in idx],
                    [b.steps[i] for i in idx], b.group)
        sb.ctx = b.ctx
        out.append((key[0], sb))
    # owner-mode parameters last, and the rest in a fixed order (the same collectives on every rank)
    return sorted(out, key=lambda x: (x[0] is None, str(x[0])))
