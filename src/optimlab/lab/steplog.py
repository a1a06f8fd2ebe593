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
import time
from typing import Any, Callable

import torch
from torch import nn

from .tasks.base import preserve_global_rng

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


# -- the runner's per-step helpers: the closure it passes, evaluation, sharpness ---------------------
def closure(instance: Any, model: nn.Module, opt: Any, batch: Any, create_graph: bool) -> Callable[[], Any]:
    """The closure ``opt.step`` calls for recipes that evaluate the loss again: zero grads, loss, backward."""

    def closure() -> Any:
        with torch.enable_grad():
            opt.zero_grad(set_to_none=True)
            loss = instance.loss(model, batch)
            loss.backward(create_graph=create_graph)
        return loss

    return closure


def evaluate(step: int, instance: Any, opt: Any) -> list[tuple[int, str, float]]:
    """The task's eval metrics at the optimizer's evaluation point: schedule-free recipes evaluate their
    average ``x`` (``opt.eval()``), then return to the training point ``y``; others have no modes."""
    t0 = time.perf_counter()
    opt.eval()
    try:
        out = [(step, k, v) for k, v in instance.evaluate(instance.model).items()]
    finally:
        opt.train()
    return out + [(step, "eval_ms", (time.perf_counter() - t0) * 1e3)]


def sharpness(step: int, instance: Any, opt: Any) -> list[tuple[int, str, float]]:
    """λ_max(H) (and λ_max(P⁻¹H) for Adam-type optimizers with state) on the first training batch."""
    from ..diagnostics import preconditioned_sharpness, top_eigenvalues

    batch = instance.batch(0)
    with preserve_global_rng():
        out = [(step, "sharpness", float(top_eigenvalues(instance.model, instance.loss, batch).value))]
        if any("exp_avg_sq" in k for st in opt.state.values() for k in st):
            res = preconditioned_sharpness(opt, instance.model, instance.loss, batch)
            out.append((step, "precond_sharpness", float(res.value)))
    return out
