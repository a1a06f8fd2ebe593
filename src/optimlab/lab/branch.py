"""Runs that start from another run's stored checkpoint, and WSD / WSD-S on them.

``run(..., branch_from=parent_id)`` (:func:`optimlab.lab.runner.run`) trains a new run that starts from the
kept checkpoint of run ``parent_id`` (``keep_checkpoint=True``) at the parent's last step, instead of step 0:
the model, the optimizer and the global RNG states are loaded (validated as strictly as a resume), the
parent's metrics up to that step are copied into the new run (so each run's curve is complete), and the
run continues to its own ``steps`` on its own schedule. Everything else (task, options, optimizer, seed,
hyperparameters other than ``schedule``) must equal the parent's: the branch is the same run, continued
differently. Because every step's batch and every random draw depend on the step and the restored RNG
alone, a branch ends bit-identical to a single run of the same schedule from step 0 (the tests check it),
at the cost of the steps after the branch point only.

:func:`wsd_runs` uses it for WSD over several budgets B₁ < … < B_k (Hu et al., MiniCPM; Wen et al.,
"Understanding Warmup-Stable-Decay Learning Rates", arXiv:2410.05192): the stable (constant-lr) run is
trained in segments that end at each branch point (1 − decay)·B_i, each segment branched from the previous
one with its checkpoint kept; each budget's decay is a branch from its segment; and WSD-S (one run that
decays before each budget and resumes from the decayed weights, ``schedules.wsd_s``) is trained beside
them. Every one of them is an ordinary run in the store (``optimlab report`` shows them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from . import checkpoint as checkpoint_codec
from .store import RunStore

__all__ = ["start_from", "check_parent", "wsd_runs", "WSDRuns"]

_RUN_ONLY = ("schedule", "branch_from")  # hyperparameters of the run, not of the optimizer


def check_parent(db: RunStore, parent_id: Any, task: str, options: Mapping[str, Any], optimizer: str,
                 hparams: Mapping[str, Any], seed: int, steps: int) -> int:
    """The parent's checkpoint step, after checking that a run may branch from run ``parent_id``."""
    if not isinstance(parent_id, int) or isinstance(parent_id, bool) or parent_id < 1:
        raise ValueError(f"run: branch_from must be a run id (an int >= 1), got {parent_id!r}")
    try:
        parent = db.get_run(parent_id)
    except ValueError as e:
        raise ValueError(f"run: branch_from={parent_id}: {e}") from e
    mine = {k: v for k, v in hparams.items() if k not in _RUN_ONLY}
    theirs = {k: v for k, v in parent["hparams"].items() if k not in _RUN_ONLY}
    for what, a, b in (("task", task, parent["task"]), ("task options", dict(options), parent["task_options"]),
                       ("optimizer", optimizer, parent["optimizer"]), ("seed", seed, parent["seed"]),
                       ("hyperparameters (schedule aside)", mine, theirs)):
        if a != b:
            raise ValueError(f"run: branch_from={parent_id}: the parent's {what} is {b!r}, this run's is {a!r}; "
                             f"a branch continues the same run")
    stored = db.load_checkpoint(parent_id)
    if stored is None:
        raise ValueError(f"run: branch_from={parent_id}: the parent has no stored checkpoint (train it with "
                         f"keep_checkpoint=True)")
    checkpoint_codec.decode(stored[1], parent_id, stored[0])  # refused here, before a run row is written
    if not stored[0] < steps:
        raise ValueError(f"run: branch_from={parent_id}: the parent's checkpoint is at step {stored[0]}, "
                         f"not before this run's last step {steps}")
    return stored[0]


def start_from(db: RunStore, parent_id: int, run_id: int, model: torch.nn.Module, optimizer: Any) -> int:
    """Load run ``parent_id``'s checkpoint into ``model``/``optimizer`` (and the global RNGs), copy its metrics
    up to that step into run ``run_id``; returns the step. A bad checkpoint is a ValueError naming the parent."""
    step, blob = db.load_checkpoint(parent_id)
    checkpoint_codec.apply(checkpoint_codec.decode(blob, parent_id, step), parent_id, model, optimizer)
    rows = [(s, name, v) for name, points in db.metrics(parent_id).items() for s, v in points if s <= step]
    db.log_many(run_id, rows)
    return step


@dataclass
class WSDRuns:
    """Run ids: ``stable`` segments (by end step), WSD ``branches`` and the ``wsd_s`` run (by budget's run)."""

    stable: dict[int, int]
    branches: dict[int, int]
    wsd_s: int | None

    def final(self, db: RunStore, metric: str = "loss") -> dict[str, dict[int, float]]:
        """The metric at each budget: {"wsd": {B: value}, "wsd_s": {B: value}} (last logged value ≤ B)."""
        out: dict[str, dict[int, float]] = {"wsd": {}, "wsd_s": {}}
        for b, rid in self.branches.items():
            out["wsd"][b] = _at(db.metrics(rid).get(metric, []), b)
        if self.wsd_s is not None:
            points = db.metrics(self.wsd_s).get(metric, [])
            out["wsd_s"] = {b: _at(points, b) for b in self.branches}
        return out


def _at(points: Sequence[tuple[int, float]], step: int) -> float:
    before = [v for s, v in points if s <= step]
    return before[-1] if before else float("nan")


def wsd_runs(task: str, optimizer: str, budgets: Sequence[int], *, hparams: Mapping[str, Any] | None = None,
             seed: int = 0, decay: float = 0.1, shape: str = "linear", store: RunStore | str | None = None,
             task_options: Mapping[str, Any] | None = None, with_wsd_s: bool = True,
             eval_every: int | None = None, threads: int = 1) -> WSDRuns:
    """WSD at every budget from one stable run (segments + branches), and WSD-S, as runs in ``store``."""
    from .runner import _open_store, run  # the runner imports this module

    budgets = sorted(budgets)
    if not budgets or any(not isinstance(b, int) or isinstance(b, bool) or b < 2 for b in budgets) \
            or len(set(budgets)) != len(budgets):
        raise ValueError(f"wsd_runs: budgets must be distinct ints >= 2, got {list(budgets)!r}")
    if not 0.0 < decay < 1.0:
        raise ValueError(f"wsd_runs: decay must be in (0, 1), got {decay!r}")
    base = {k: v for k, v in dict(hparams or {}).items() if k not in _RUN_ONLY}
    db, owned = _open_store(store)
    try:
        common = dict(seed=seed, task_options=task_options, store=db, eval_every=eval_every, threads=threads)
        stable, branches, parent = {}, {}, None
        for b in budgets:
            point = max(1, round((1.0 - decay) * b))
            if parent is None or point > max(stable):
                seg = run(task, optimizer, hparams={**base, "schedule": "constant()",
                                                    **({"branch_from": parent} if parent else {})},
                          steps=point, keep_checkpoint=True, **common)
                stable[point], parent = seg.run_id, seg.run_id
            src = stable[point]
            res = run(task, optimizer, hparams={**base, "branch_from": src,
                                                "schedule": f"wsd(decay={1.0 - point / b!r}, shape={shape!r})"},
                      steps=b, **common)
            branches[b] = res.run_id
        wsd_s = None
        if with_wsd_s:
            spec = f"wsd_s(budgets={list(budgets)!r}, decay={decay!r}, shape={shape!r})"
            wsd_s = run(task, optimizer, hparams={**base, "schedule": spec}, steps=budgets[-1], **common).run_id
        return WSDRuns(stable=stable, branches=branches, wsd_s=wsd_s)
    finally:
        if owned:
            db.close()
