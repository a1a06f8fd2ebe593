"""The distributed side of one optimizer: agreement across ranks before each step, and the entry points.

Opt-in (the design decision, docs/distributed.md): replicated parameters (DDP) are distributed only when a
process group is passed (``create(..., process_group=...)``, ``ChainOptimizer(..., process_group=...)`` or
:func:`distribute`). Being inside an initialized ``torch.distributed`` job is not enough: pipeline stages,
per-rank auxiliary models or several optimizers over different parameter sets would then issue collectives
that other ranks never join (a hang), and an existing single-process script would silently change
behaviour. DTensor parameters (FSDP2 ``fully_shard``) are detected automatically: their mesh is part of the
parameter, and running a whole-matrix transform on a local shard would be wrong, not just slower.

Every distributed step starts with one small all-gather (5 int64 per rank): hashes of the optimizer's
settings (recipe, nonfinite policy, fused flag, train/eval mode), of every group's hyperparameters, of the
parameters' shapes and dtypes, of which parameters have a gradient this step, and a flag "a gradient here
is not finite". Mismatched settings are a ``ValueError`` on every rank naming the group and the value that
differs; a non-finite gradient on any rank refuses the step on every rank (``nonfinite=``'s policy).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ..core import finite
from .comm import Comm

__all__ = ["Distributed", "settings_parts"]

_SKIP_KEYS = ("params", "param_names")


def settings_parts(opt: Any, work: list[tuple[dict, list[Tensor]]]) -> dict[str, list[str]]:
    """What must agree across ranks, as lists of printable lines per category."""
    groups = opt.param_groups
    with_grad = [(g, {id(p) for p in ps}) for g, ps in work]
    return {
        "settings": [f"optimizer={opt.name!r} nonfinite={opt.nonfinite!r} fused={opt.fused!r} "
                     f"training={opt.training!r} groups={len(groups)}"],
        "hyperparameters": [f"group {i} ({g['role']}): " + ", ".join(f"{k}={g[k]!r}" for k in sorted(g)
                                                                     if k not in _SKIP_KEYS)
                            for i, g in enumerate(groups)],
        "parameters": [f"group {i} ({g['role']}): " + ", ".join(f"{tuple(p.shape)}:{str(p.dtype)[6:]}"
                                                                for p in g["params"]) for i, g in enumerate(groups)],
        "gradients": [f"group {i} ({g['role']}): params with a gradient "
                      f"{[j for j, p in enumerate(g['params']) if id(p) in ids]}"
                      for i, g in enumerate(groups) for gg, ids in with_grad if gg is g],
    }


def _hash(lines: list[str]) -> int:
    return int.from_bytes(hashlib.sha256("\n".join(lines).encode()).digest()[:8], "little", signed=True)


class Distributed:
    """Base of the replicated (DDP) and sharded (FSDP2) executors: the per-step agreement."""

    mode = "base"

    def __init__(self, opt: Any, group: Any = None, *, timeout: float = 300.0, bucket_cap_mb: float = 32.0,
                 dion: str = "lowrank", check_group: Any = None):
        if dion not in ("lowrank", "owner"):
            raise ValueError(f"{opt.name}: dion must be 'lowrank' (the paper's sharded power iteration) or 'owner' "
                             f"(whole matrices on owner ranks, bit-identical to one process), got {dion!r}")
        self.opt = opt
        self.dion = dion
        self.comm = Comm(opt.name, group, timeout, bucket_cap_mb)
        # the ranks that must agree on settings: the work group, or a wider one (HSDP: the whole mesh)
        self.check_comm = self.comm if check_group is None else Comm(opt.name, check_group, timeout, bucket_cap_mb)
        self.matrix_calls = 0  # whole-matrix units this rank computed (tests count them)
        self.check_settings([])

    @property
    def rank(self) -> int:
        return self.comm.rank

    @property
    def world(self) -> int:
        return self.comm.world

    # -- agreement -------------------------------------------------------------------------------
    def _agree(self, parts: dict[str, list[str]], bad: bool, loss: float = 0.0) -> tuple[list[int], float]:
        """All-gather the hashes, the flag and the loss; raise on a mismatch; return the ranks whose flag is
        set and the mean loss over the ranks (summed in rank order: the same float on every rank)."""
        keys = list(parts)
        bits = torch.tensor([loss], dtype=torch.float64).view(torch.int64)
        mine = torch.cat([torch.tensor([_hash(parts[k]) for k in keys] + [int(bad)], dtype=torch.int64), bits])
        self.check_comm.timeout = self.comm.timeout
        everyone = self.check_comm.all_gather(mine, "settings check (all-gather)")
        differ = [k for i, k in enumerate(keys) if bool((everyone[:, i] != everyone[0, i]).any())]
        if differ:
            self._mismatch(parts, differ[0], everyone[:, keys.index(differ[0])].tolist())
        losses = everyone[:, -1].contiguous().view(torch.float64).tolist()
        n = self.check_comm.world
        total = 0.0
        for x in losses:
            total += x
        return [r for r in range(n) if int(everyone[r, -2])], total / n

    def _mismatch(self, parts: dict[str, list[str]], key: str, hashes: list[int]) -> None:
        # every rank saw the same hashes, so every rank is here: the object all-gather cannot hang
        lines: list[Any] = [None] * self.check_comm.world
        dist.all_gather_object(lines, parts[key], group=self.check_comm.group)
        other = next(r for r in range(len(hashes)) if hashes[r] != hashes[0])
        a, b = lines[0], lines[other]
        detail = next((f"rank 0 has {x!r}, rank {other} has {y!r}" for x, y in zip(a, b) if x != y),
                      f"rank 0 has {len(a)} entries, rank {other} has {len(b)}")
        raise ValueError(f"{self.opt.name}: optimizer {key} differ across ranks (ranks "
                         f"{[r for r in range(len(hashes)) if hashes[r] != hashes[0]]} differ from rank 0): {detail}. "
                         f"Every rank must build the optimizer with the same settings over the same parameters "
                         f"and step with gradients for the same parameters")

    def check_settings(self, work: list[tuple[dict, list[Tensor]]]) -> None:
        """The agreement alone (at construction): a mismatch is an error before the first step."""
        self._agree(settings_parts(self.opt, work), False)

    def refuse(self, work: list[tuple[dict, list[Tensor]]], found: dict | None, undo: Callable[[], None],
               ctx: Any = None) -> bool:
        """The step's agreement: True when the step is skipped on every rank (after ``undo()``); raises on
        mismatched settings, and under ``nonfinite="error"`` when some rank has a non-finite gradient.
        A recipe that reads the loss (``needs={"loss"}``) gets the mean of the ranks' losses, as the
        gradient is the mean of theirs (each rank's closure saw only its own batch)."""
        opt = self.opt
        bad = False
        if found is not None and finite.raised(found):
            bad = finite.first_nonfinite([p.grad for _, ps in work for p in ps]) is not None
        wants_loss = ctx is not None and "loss" in opt.recipe.needs and ctx.loss is not None
        ranks, mean = self._agree(settings_parts(opt, work), bad, ctx.loss_value if wants_loss else 0.0)
        if wants_loss:
            ctx._memo["loss_value"] = mean
        if not ranks:
            return False
        undo()
        if opt.nonfinite == "skip":
            opt.skipped_steps += 1
            return True
        if bad:
            opt._refuse(work)  # raises FloatingPointError naming the parameter
        raise FloatingPointError(f"{opt.name}: rank(s) {ranks} have a gradient with NaN or Inf; nothing was "
                                 f"updated on any rank (nonfinite='error'; 'skip' skips such steps on every rank)")

    def run(self, jobs: list[tuple[Any, Any]], fused: bool) -> None:
        raise NotImplementedError
