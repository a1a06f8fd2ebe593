"""FSDP2 / HSDP shards, locally: the local-shard view of a bucket, and their gradients' layout.

* :func:`local_bucket` / :func:`write_back` / :func:`run_local`: a bucket of DTensor parameters as plain local
  shards (in-place writes reach the DTensors), and transforms run on them (shape-reading ones see the global
  shapes);
* :func:`align_grads`: gradients laid out like their parameters; :func:`whole_mesh_group`: every rank of a
  mesh (which meshes and placements are supported: :mod:`.layout`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..core.transform import Bucket
from .capability import SHAPE_ONLY

__all__ = ["local_bucket", "write_back", "run_local", "align_grads", "whole_mesh_group", "replicated", "local"]


def local(t: Any) -> Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def local_bucket(b: Bucket) -> Bucket:
    """``b`` on the local shards: local parameter views (in-place writes reach the DTensors), local gradients,
    and per-parameter proxy state dicts of local tensors (:func:`write_back` returns what changed)."""
    states = [{k: local(v) for k, v in st.items()} for st in b.states]
    lb = Bucket([local(p) for p in b.params], [local(g) for g in b.grads], states, b.steps, b.group)
    lb.ctx = b.ctx
    return lb


def write_back(lb: Bucket, b: Bucket) -> None:
    """Scalar state and replaced state tensors of the proxies back into the optimizer's state."""
    for proxy, st in zip(lb.states, b.states):
        for k, v in proxy.items():
            old = st[k]
            if not isinstance(v, Tensor):
                st[k] = v
            elif v is not local(old):
                local(old).copy_(v)


def run_local(chain: Any, lb: Bucket, b: Bucket, start: int, stop: int, *, apply: bool = False,
             fused: bool = False) -> None:
    """Transforms ``[start:stop]`` on the local shards (and the apply step when ``apply``); shape-reading
    transforms see the global shapes (:data:`.capability.SHAPE_ONLY`)."""
    if apply and fused and start == 0 and stop == len(chain.transforms) and chain.step_fused(lb):
        return
    for t in chain.transforms[start:stop]:
        if isinstance(t, SHAPE_ONLY):
            shim = Bucket(b.params, b.grads, b.states, b.steps, b.group)
            t.update(shim)
            if shim.scale is not None:
                lb.scale_by(shim.scale)
        else:
            t.update(lb)
    if apply:
        if chain._apply is not None:
            chain._apply(lb)
        else:
            lb.descend(lb.group["lr"])


def align_grads(b: Bucket) -> None:
    """Gradients laid out like their parameters: a DTensor gradient with other placements (a replicated
    parameter's ``Partial`` gradient under tensor parallelism) is redistributed to the parameter's."""
    for i, (p, g) in enumerate(zip(b.params, b.grads)):
        if hasattr(g, "placements") and tuple(g.placements) != tuple(p.placements):
            b.grads[i] = g.redistribute(p.device_mesh, p.placements)


def whole_mesh_group(mesh: Any) -> Any:
    """A process group over every rank of ``mesh`` (the default group when the mesh spans the job)."""
    import torch.distributed as dist

    if mesh.size() == dist.get_world_size():
        return dist.group.WORLD
    return mesh._flatten().get_group()  # pragma: no cover - a mesh over part of the job


def replicated(t: Any) -> bool:
    """Whether a DTensor is replicated on every mesh dimension (its local tensor is the whole tensor)."""
    from torch.distributed.tensor import Replicate

    return all(isinstance(pl, Replicate) for pl in t.placements)
