"""Distributed training on ``torch.distributed``: DDP owner-split, FSDP2 / DTensor repartition, DCP checkpoints.

* :func:`distribute` (or ``create(..., process_group=pg)``): replicated parameters (DDP), opt-in;
* DTensor parameters (FSDP2 ``fully_shard``, 1-D mesh, or HSDP's 2-D replicate × shard mesh; tensor-parallel
  ``Shard(1)`` / ``Replicate()`` layouts and FSDP × TP ``(Shard(0), Shard(1))``: :mod:`.layout`) are detected at
  construction;
* Dion runs its paper's sharded power iteration unless ``dion="owner"``: the row form on row shards
  (:mod:`.dion`: small all-gathers of ``P`` and ``R``), the column form on tensor-parallel column shards
  (:mod:`.columns`: all-reduces of ``P`` and of ``R``'s column norms);
* :mod:`.checkpoint`: ``torch.distributed.checkpoint`` save / load, resharding to another world size;
* :func:`refusal`: why a registered optimizer cannot run on sharded parameters, or under DDP with per-rank
  closures (None when it can).

See docs/distributed.md.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .capability import check_fsdp, ddp_refusal, fsdp_refusal
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


def refusal(name: str, mode: str = "fsdp") -> str | None:
    """Why the registered optimizer ``name`` cannot run on FSDP2-sharded parameters (``mode="fsdp"``) or on
    replicated ones with per-rank closures (``mode="ddp"``; every recipe runs under DDP with
    ``closure="global"``). None: it can."""
    from ..core.registry import get_recipe

    recipe = get_recipe(name)
    if mode == "ddp":
        return ddp_refusal(recipe, "local")
    return fsdp_refusal(recipe, ["matrix", "embedding", "head", "vector"])


def attach(opt: Any, group: Any = None, *, timeout: float = 300.0, bucket_cap_mb: float = 32.0,
           dion: str = "lowrank", closure: str = "local") -> Distributed:
    """The executor for ``opt``: sharded (FSDP2) when its parameters are DTensors, else replicated (DDP)."""
    if closure not in ("local", "global"):
        raise ValueError(f"{opt.name}: closure must be 'local' (each rank's closure sees its own batch) or "
                         f"'global' (every rank's closure returns the global quantity), got {closure!r}")
    params = [p for g in opt.param_groups for p in g["params"]]
    sharded = [is_sharded(p) for p in params]
    if any(sharded):
        if not all(sharded):
            raise ValueError(f"{opt.name}: some parameters are DTensors (FSDP2) and some are plain tensors; shard "
                             f"the whole model with fully_shard, or none of it (tensor parallelism: make the "
                             f"parameters the plan leaves alone Replicate() DTensors)")
        check_fsdp(opt.recipe, sorted({g["role"] for g in opt.param_groups}))
        from .sharded import ShardedStep

        return ShardedStep(opt, group, timeout=timeout, bucket_cap_mb=bucket_cap_mb, dion=dion)
    why = ddp_refusal(opt.recipe, closure)
    if why is not None:
        raise ValueError(f"{opt.name}: cannot run distributed over replicated parameters (DDP): {why}; see "
                         f"docs/distributed.md")
    from .replicated import ReplicatedStep

    return ReplicatedStep(opt, group, timeout=timeout, bucket_cap_mb=bucket_cap_mb, dion=dion)


def distribute(opt: Any, group: Any = None, *, timeout: float = 300.0, bucket_cap_mb: float = 32.0,
               dion: str = "lowrank", closure: str = "local") -> Any:
    """Make ``opt`` (a ChainOptimizer) split its whole-matrix work over the ranks of ``group`` (None: the
    default group, or the mesh's for DTensor parameters). A collective: every rank must call it. ``timeout``:
    seconds any collective of a step may wait before :class:`DistributedStepError`; ``bucket_cap_mb``: the most
    bytes a rank receives per all-gather round; ``dion``: ``"lowrank"`` (default: Dion's power iteration on
    row blocks with small all-gathers, as its paper intends; not bit-identical to one process, see
    :mod:`.dion`) or ``"owner"`` (whole matrices on owner ranks like Muon; bit-identical); ``closure``:
    ``"local"`` (default: each rank's closure sees its own batch; recipes that need HVPs, JVPs, loss values at
    perturbed points or re-evaluations are then refused under DDP) or ``"global"`` (every rank's closure
    returns the global quantity: the same batch everywhere, or a closure that all-reduces). Returns ``opt``."""
    opt._distributed = attach(opt, group, timeout=timeout, bucket_cap_mb=bucket_cap_mb, dion=dion, closure=closure)
    return opt
