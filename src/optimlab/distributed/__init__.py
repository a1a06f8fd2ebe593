"""Distributed training on ``torch.distributed``: DDP owner-split, FSDP2 / DTensor repartition, DCP checkpoints.

* :func:`distribute` (or ``create(..., process_group=pg)``): replicated parameters (DDP), opt-in;
* DTensor parameters (FSDP2 ``fully_shard``) are detected at construction;
* :mod:`.checkpoint`: ``torch.distributed.checkpoint`` save / load, resharding to another world size;
* :func:`refusal`: why a registered optimizer cannot run on sharded parameters (None when it can).

See docs/distributed.md.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .capability import check_fsdp, fsdp_refusal
from .comm import DistributedStepError
from .owners import assign_owners, matrix_flops
from .runtime import Distributed

__all__ = ["distribute", "attach", "is_sharded", "DistributedStepError", "assign_owners", "matrix_flops",
           "fsdp_refusal", "refusal"]


def is_sharded(p: Tensor) -> bool:
    """Whether ``p`` is a DTensor (FSDP2 / tensor-parallel parameter)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch built without distributed
        return False
    return isinstance(p, DTensor)


def refusal(name: str) -> str | None:
    """Why the registered optimizer ``name`` cannot run on FSDP2-sharded parameters (None: it can).
    Every registered optimizer runs under DDP."""
    from ..core.registry import get_recipe

    recipe = get_recipe(name)
    return fsdp_refusal(recipe, ["matrix", "embedding", "head", "vector"])


def attach(opt: Any, group: Any = None, *, timeout: float = 300.0, bucket_cap_mb: float = 32.0) -> Distributed:
    """The executor for ``opt``: sharded (FSDP2) when its parameters are DTensors, else replicated (DDP)."""
    params = [p for g in opt.param_groups for p in g["params"]]
    sharded = [is_sharded(p) for p in params]
    if any(sharded):
        if not all(sharded):
            raise ValueError(f"{opt.name}: some parameters are DTensors (FSDP2) and some are plain tensors; shard "
                             f"the whole model with fully_shard, or none of it")
        check_fsdp(opt.recipe, sorted({g["role"] for g in opt.param_groups}))
        from .sharded import ShardedStep

        return ShardedStep(opt, group, timeout=timeout, bucket_cap_mb=bucket_cap_mb)
    from .replicated import ReplicatedStep

    return ReplicatedStep(opt, group, timeout=timeout, bucket_cap_mb=bucket_cap_mb)


def distribute(opt: Any, group: Any = None, *, timeout: float = 300.0, bucket_cap_mb: float = 32.0) -> Any:
    """Make ``opt`` (a ChainOptimizer) split its whole-matrix work over the ranks of ``group`` (None: the
    default group). A collective: every rank must call it. ``timeout``: seconds any collective of a step may
    wait before :class:`DistributedStepError`; ``bucket_cap_mb``: the most bytes a rank receives per
    all-gather round. Returns ``opt``."""
    opt._distributed = attach(opt, group, timeout=timeout, bucket_cap_mb=bucket_cap_mb)
    return opt
