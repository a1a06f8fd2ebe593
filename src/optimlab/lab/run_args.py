"""The argument checks of :func:`optimlab.lab.runner.run`, before anything is built or written.

:func:`check` validates and completes ``run()``'s arguments in the order ``run()`` documents: flags and
thread count, the task (and its options), the optimizer name, the hyperparameters (the task's AdamW
settings when none are given for ``adamw``; ``branch_from`` recorded in them), the step counts and the
seed, then the defaults of ``eval_every`` and ``checkpoint_every`` and a check that the store can record the
hyperparameters. Every error names ``run`` and the bad value (the CLI and the tests read the messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

import optimlab

from . import steplog
from .store import canonical_json
from .tasks import get_task

__all__ = ["RunArgs", "check"]


@dataclass(frozen=True)
class RunArgs:
    """``run()``'s arguments once checked: the task object, its options, the hyperparameters to record, and
    the step counts with their defaults filled in."""

    task: Any
    options: dict[str, Any]
    hparams: dict[str, Any]
    steps: int
    eval_every: int
    checkpoint_every: int


def _positive_int(label: str, value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"run: {label} must be an int >= 1, got {value!r}")


def check(task: str, optimizer: str, *, hparams: Mapping[str, Any] | None, seed: int, steps: int | None,
          task_options: Mapping[str, Any] | None, eval_every: int | None, checkpoint_every: int | None,
          threads: int, restart: bool, sharpness_every: int | None, branch_from: int | None) -> RunArgs:
    """Check ``run()``'s arguments and fill in its defaults; TypeError / ValueError on the first bad one.

    Unknown task: :func:`~optimlab.lab.tasks.get_task`'s ValueError; unknown optimizer: ``optimlab.create``'s
    (with a hint); hyperparameters the store cannot record: :func:`~optimlab.lab.store.canonical_json`'s.
    """
    if not isinstance(restart, bool):
        raise TypeError(f"run: restart must be a bool, got {restart!r}")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"run: threads must be an int >= 1, got {threads!r}")
    task_obj = get_task(task, **dict(task_options or {}))
    spec = task_obj.spec
    if not isinstance(optimizer, str) or optimizer not in optimlab.available():
        optimlab.create([torch.zeros(1, requires_grad=True)], optimizer)  # raises with a hint
        raise ValueError(f"run: unknown optimizer {optimizer!r}")
    if hparams is None or (not hparams and optimizer == "adamw"):
        hparams = dict(spec.adamw) if optimizer == "adamw" else {}
    hparams = dict(hparams) | ({"branch_from": branch_from} if branch_from is not None else {})
    steps = spec.default_steps if steps is None else steps
    for label, value in (("steps", steps), ("eval_every", eval_every),
                         ("checkpoint_every", checkpoint_every), ("sharpness_every", sharpness_every)):
        _positive_int(label, value)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"run: seed must be an int >= 0, got {seed!r}")
    eval_every = eval_every or steplog.default_eval_every(steps, getattr(task_obj, "eval_cost", 1.0))
    checkpoint_every = checkpoint_every or eval_every
    options = task_obj.options
    canonical_json(hparams)  # fail early on values the store cannot record
    return RunArgs(task_obj, options, hparams, steps, eval_every, checkpoint_every)
