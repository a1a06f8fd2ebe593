"""DDP (replicated parameters): owner-split whole-matrix work, results all-gathered in capped rounds.

Every rank holds every parameter, the same (all-reduced) gradient and the same optimizer state. For a chain
with an owner transform (:mod:`.capability`) at index ``k``:

1. transforms ``[:k]`` (momentum and other elementwise work) run locally on every rank, as in one process;
2. transform ``k`` runs only on the parameters this rank owns (:func:`.owners.assign_owners`, balanced by
   FLOPs), as one batched stack per same-shape bucket: each matrix is computed exactly once in the job;
3. one byte payload per rank (the owned updates, the transform's own state, its per-parameter scale) is
   all-gathered in rounds of at most ``bucket_cap_mb`` received per rank; every rank copies the others'
   results into its update lists and state, so state stays replicated and checkpoints stay whole;
4. transforms ``[k+1:]`` and the apply step run locally on every rank.

Chains without an owner transform (AdamW, schedule-free...) run locally, exactly as in one process.
Results equal the single-process ones bit for bit when a batched kernel gives each matrix of a stack the
same bits as a smaller stack would (true of the CPU kernels here; tests/distributed check it end to end).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..core.transform import Bucket
from ..transforms import DionLowRank, Orthogonalize
from .capability import owner_index, unit_cost
from .comm import as_bytes, from_bytes, padded
from .dion import DionJob, dion_steps, even_blocks
from .owners import assign_owners
from .runtime import Distributed

__all__ = ["ReplicatedStep", "sub_bucket", "finish"]


def sub_bucket(b: Bucket, idx: list[int]) -> Bucket:
    """The parameters ``idx`` of ``b`` as a bucket of their own, carrying ``b``'s current (deferred) update;
    states are the same dicts (a transform's writes land in the optimizer's state)."""
    s = Bucket([b.params[i] for i in idx], [b.grads[i] for i in idx], [b.states[i] for i in idx],
               [b.steps[i] for i in idx], b.group)
    s.ctx = b.ctx
    if b._num is not None:
        s.set_ratio([b._num[i] for i in idx], [b._den[i] for i in idx])
    else:
        s.set_updates([b._u[i] for i in idx], owned=b._owned)
    if b.scale is not None:
        s.scale = [b.scale[i] for i in idx]
    return s


def finish(chain: Any, b: Bucket, start: int) -> None:
    """Transforms ``[start:]`` of ``chain`` on ``b``, then its apply step (as :meth:`Chain.step` does)."""
    for t in chain.transforms[start:]:
        t.update(b)
    if chain._apply is not None:
        chain._apply(b)
    else:
        b.descend(b.group["lr"])


def wire_dtype(t: Any, group: dict, dtype: torch.dtype) -> torch.dtype:
    """The dtype an owner's update travels in: Newton–Schulz in bf16/fp16 leaves values that dtype holds
    exactly (the result is only cast up to the parameter's dtype), so they travel at half the bytes, losslessly."""
    low = (torch.bfloat16, torch.float16)
    if (type(t) is Orthogonalize and group.get("ortho_backend") in ("newton_schulz", "gram")
            and group.get("ns_dtype") in low and dtype.itemsize > group["ns_dtype"].itemsize):
        return group["ns_dtype"]
    return dtype


class _Job:
    __slots__ = ("chain", "b", "k", "owners", "sub", "mine", "tensor_keys", "scalar_keys", "wire")

    def __init__(self, chain: Any, b: Bucket, k: int):
        self.chain, self.b, self.k = chain, b, k
        t = chain.transforms[k]
        self.wire = wire_dtype(t, b.group, b.params[0].dtype)
        prefix = f"{t.name}."
        st = b.states[0]
        self.tensor_keys = sorted(key for key in st if key.startswith(prefix) and isinstance(st[key], Tensor))
        self.scalar_keys = sorted(key for key in st if key.startswith(prefix) and not isinstance(st[key], Tensor))

    def unit_layout(self, i: int) -> list[tuple[str, torch.dtype, tuple, int]]:
        """(what, dtype, shape, padded bytes) of parameter ``i``'s items in a payload."""
        p, st = self.b.params[i], self.b.states[i]
        items = [("u", self.wire, tuple(p.shape), padded(p.numel() * self.wire.itemsize))]
        for key in self.tensor_keys:
            v = st[key]
            items.append((key, v.dtype, tuple(v.shape), padded(v.numel() * v.element_size())))
        items.append(("scalars", torch.float64, (1 + len(self.scalar_keys),), padded(8 * (1 + len(self.scalar_keys)))))
        return items


class ReplicatedStep(Distributed):
    """The DDP executor (see the module doc)."""

    mode = "replicated"

    def plan(self, jobs: list[tuple[Any, Bucket]]) -> tuple[list[tuple[Any, Bucket]], list[_Job]]:
        """(local jobs, owner-split jobs with their owners set); Dion's low-rank jobs in ``self.lowrank``."""
        local, split, costs = [], [], []
        self.lowrank = []
        for chain, b in jobs:
            k = owner_index(chain)
            if k is None or self.world == 1:
                local.append((chain, b))
                continue
            if self.dion == "lowrank" and type(chain.transforms[k]) is DionLowRank:
                self.lowrank.append((chain, b, k))
                continue
            job = _Job(chain, b, k)
            split.append(job)
            costs.extend(unit_cost(chain.transforms[k], p.shape, b.group) for p in b.params)
        owners = assign_owners(costs, self.world)
        at = 0
        for job in split:
            n = len(job.b.params)
            job.owners = owners[at:at + n]
            job.mine = [i for i, o in enumerate(job.owners) if o == self.rank]
            at += n
        return local, split

    def run(self, jobs: list[tuple[Any, Bucket]], fused: bool) -> None:
        local, split = self.plan(jobs)
        for chain, b in local:
            chain.step(b, fused=fused)
        if self.lowrank:
            self._lowrank()
        if not split:
            return
        for job in split:  # 1-2: local prefix, then the owned matrices as one stack
            for t in job.chain.transforms[:job.k]:
                t.update(job.b)
            job.sub = sub_bucket(job.b, job.mine) if job.mine else None
            if job.sub is not None:
                job.chain.transforms[job.k].update(job.sub)
                if job.sub._num is not None:
                    job.sub._u = torch._foreach_div(job.sub._num, job.sub._den)
                    job.sub._num = job.sub._den = None
                    job.sub._owned = True
                self.matrix_calls += len(job.mine)
        self._exchange(split)
        for job in split:  # 4: local suffix and apply
            finish(job.chain, job.b, job.k + 1)

    def _lowrank(self) -> None:
        """Dion as its paper intends (:mod:`.dion`): partial products on this rank's virtual block of rows,
        small all-gathers of ``P`` and ``R``, then every rank finishes the whole matrices (state replicated)."""
        jobs = []
        for chain, b, k in self.lowrank:
            for t in chain.transforms[:k]:
                t.update(b)
            t = chain.transforms[k]
            shape = b.params[0].shape
            blocks = even_blocks(shape[0], self.world)
            jobs.append(DionJob(t, b.group, b.updates, b.state(t, "momentum_buffer"), b.state(t, "Q"), blocks,
                                blocks[self.rank], shape, b.params[0].dtype))
            lo, hi = blocks[self.rank]
            self.matrix_calls += len(b.params) if hi > lo else 0
        dion_steps(self.comm, jobs)
        for (chain, b, k), job in zip(self.lowrank, jobs):
            b.set_updates(job.result, owned=True)
            rows, cols = job.m, job.n
            b.scale_by([math.sqrt(rows / cols)] * len(b.params))
            finish(chain, b, k + 1)

    def _exchange(self, split: list[_Job]) -> None:
        """3: pack this rank's results, all-gather every rank's payload, unpack the others' into place."""
        lengths = [0] * self.world
        for job in split:
            for i, o in enumerate(job.owners):
                lengths[o] += sum(n for *_, n in job.unit_layout(i))
        device = split[0].b.params[0].device
        payload = torch.empty(lengths[self.rank], dtype=torch.uint8, device=device)
        at = 0
        for job in split:
            for j, i in enumerate(job.mine):
                at = self._pack(job, i, j, payload, at)
        payloads = self.comm.gather_payloads(payload, lengths)
        cursor = [0] * self.world
        for job in split:
            b = job.b
            ups: list[Tensor] = []
            scales: list[float] = []
            j = 0
            for i, o in enumerate(job.owners):
                if o == self.rank:
                    s = job.sub
                    u = s._u[j]
                    ups.append(u if s._owned else u.clone())
                    scales.append(s.scale[j] if s.scale is not None else math.nan)
                    cursor[o] += sum(n for *_, n in job.unit_layout(i))
                    j += 1
                    continue
                buf = payloads[o]
                for what, dtype, shape, n in job.unit_layout(i):
                    v = from_bytes(buf[cursor[o]:cursor[o] + n][:_raw(dtype, shape)], dtype, shape)
                    cursor[o] += n
                    if what == "u":
                        ups.append(v.to(b.params[i].dtype))  # a copy from the wire dtype, or the view
                    elif what == "scalars":
                        vals = v.tolist()
                        scales.append(vals[0])
                        for key, x in zip(job.scalar_keys, vals[1:]):
                            b.states[i][key] = x
                    else:
                        b.states[i][what].copy_(v)
            b.set_updates(ups, owned=True)
            b.scale = None if all(math.isnan(s) for s in scales) else [1.0 if math.isnan(s) else s for s in scales]

    def _pack(self, job: _Job, i: int, j: int, payload: Tensor, at: int) -> int:
        s, st = job.sub, job.b.states[i]
        u = s._u[j]
        p = job.b.params[i]
        if u.dtype != p.dtype or u.shape != p.shape:
            raise RuntimeError(f"{self.opt.name}: owner transform {job.chain.transforms[job.k].name!r} left an "
                               f"update of dtype {u.dtype} / shape {tuple(u.shape)} for a parameter of dtype "
                               f"{p.dtype} / shape {tuple(p.shape)}; distributed steps need the parameter's")
        for what, dtype, shape, n in job.unit_layout(i):
            if what == "u":
                src = u.to(job.wire)
            elif what == "scalars":
                scale = s.scale[j] if s.scale is not None else math.nan
                src = torch.tensor([scale, *(float(st[k]) for k in job.scalar_keys)], dtype=torch.float64)
            else:
                src = st[what]
            raw = as_bytes(src)
            payload[at:at + raw.numel()].copy_(raw)
            at += n
        return at


def _raw(dtype: torch.dtype, shape: tuple) -> int:
    return math.prod(shape) * torch.empty((), dtype=dtype).element_size()
