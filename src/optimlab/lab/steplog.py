"""What the runner logs around each optimizer step, and how often it evaluates by default.

At step 1 and every :func:`log_every` steps (every step of runs up to 200 steps, about 200 points
for longer ones: on the smallest tasks the measurement costs a sizeable fraction of a step; it is
one foreach norm over the gradients, one parameter snapshot and one foreach norm over the change,
always outside the timed ``step_ms``):

* ``lr``: the learning rate of the optimizer's main param group at that step -- the ``matrix`` role's
  group when there is one (Muon-family recipes tune that one), else the first group;
* ``grad_norm``: global L2 norm of all gradients after ``backward()``, before ``opt.step()``;
* ``update_norm``: global L2 norm of the parameter change made by ``opt.step()``.

Evaluation schedule (:func:`default_eval_every`): a task declares ``eval_cost``, the time of one
evaluation in units of one AdamW training step (measured once, see each task); by default the run
evaluates at most ``n = floor(0.10 * steps / eval_cost)`` times, so evaluation costs at most 10% of
the training time. The final evaluation is always made (the final metrics need it); step 0 is
evaluated only when the period is shorter than the run.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["EVAL_OVERHEAD", "TELEMETRY_POINTS", "log_every", "default_eval_every", "eval_steps", "main_group", "grad_norm",
           "snapshot", "update_norm"]

#: the fraction of training time that default evaluation may take
EVAL_OVERHEAD = 0.10


#: about how many points of lr / grad_norm / update_norm a run logs
TELEMETRY_POINTS = 200


def log_every(steps: int) -> int:
    """The period of the lr / grad_norm / update_norm log: ``max(1, steps // TELEMETRY_POINTS)``."""
    return max(1, steps // TELEMETRY_POINTS)


def default_eval_every(steps: int, eval_cost: float) -> int:
    """The default evaluation period for ``steps`` steps when one evaluation costs ``eval_cost`` steps.

    ``n = floor(EVAL_OVERHEAD * steps / eval_cost)`` evaluations fit; with ``n <= 2`` only the final
    one is made (period ``steps``); otherwise step 0 and at most ``n - 1`` more, the last at
    ``steps``: period ``ceil(steps / (n - 1))``.
    """
    n = int(EVAL_OVERHEAD * steps / max(float(eval_cost), 1e-9))
    if n <= 2:
        return steps
    return math.ceil(steps / (n - 1))


def eval_steps(steps: int, eval_every: int) -> list[int]:
    """The steps at which a run of ``steps`` steps evaluates: 0 when ``eval_every < steps``, every
    multiple of ``eval_every``, and ``steps``."""
    out = [0] if eval_every < steps else []
    out += [s for s in range(eval_every, steps, eval_every)]
    return out + [steps]


def main_group(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The param group whose ``lr`` is logged: the ``matrix`` role's, else the first one."""
    for group in opt.param_groups:
        if group.get("role") == "matrix" and group["params"]:
            return group
    return opt.param_groups[0]


def _params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in opt.param_groups for p in g["params"]]


def _global_norm(tensors: list[torch.Tensor]) -> float:
    if not tensors:
        return math.nan
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors))))


def grad_norm(opt: torch.optim.Optimizer) -> float:
    """Global L2 norm of the gradients held by the optimizer's parameters (NaN when none has one)."""
    return _global_norm([p.grad.detach() for p in _params(opt) if p.grad is not None])


def snapshot(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """A copy of every parameter (one foreach call), to measure the step's update."""
    with torch.no_grad():
        return torch._foreach_mul([p.detach() for p in _params(opt)], 1.0)


def update_norm(opt: torch.optim.Optimizer, before: list[torch.Tensor]) -> float:
    """Global L2 norm of ``params - before``."""
    with torch.no_grad():
        return _global_norm(torch._foreach_sub([p.detach() for p in _params(opt)], before))
