"""The training loop the step-size claims share: ``opt.step(closure)`` on a lab task or on bare tensors,
tuning a learning rate on a grid (mean final loss over seeds; a diverged run counts as +inf), and the
grid-edge rule."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch


def run(params: list[torch.Tensor], name: Any, steps: int, step_loss: Callable[[int], torch.Tensor],
        final: Callable[[], float], hp: dict[str, Any], on_step: Callable[[Any, float], None] | None = None,
        create_graph: bool = False) -> tuple[float, list[float]]:
    """``steps`` steps of optimizer ``name`` (a registered name or a Recipe) with a closure on
    ``step_loss(t)``; returns (final(), per-step losses). A non-finite loss ends the run with +inf."""
    import optimlab

    opt = optimlab.create(params, name, **hp)
    curve = []
    for t in range(steps):
        def closure(t: int = t) -> torch.Tensor:
            opt.zero_grad()
            loss = step_loss(t)
            loss.backward(create_graph=create_graph)
            return loss

        try:
            loss = float(opt.step(closure).detach())
        except FloatingPointError:  # a non-finite gradient (nonfinite='error'): the run diverged
            return math.inf, curve
        curve.append(loss)
        if on_step is not None:
            on_step(opt, loss)
        if not math.isfinite(loss):
            return math.inf, curve
    value = final()
    return (value if math.isfinite(value) else math.inf), curve


def task_problem(task: str, seed: int, **options: Any) -> tuple[list[torch.Tensor], Callable, Callable]:
    """(params, step_loss, final train loss) of a lab task instance."""
    from ..tasks import get_task

    inst = get_task(task, **options).build(seed=seed)
    model = inst.model

    def final() -> float:
        ev = inst.evaluate(model)
        return float(ev.get("train_loss", ev.get("eval_loss")))

    return list(model.parameters()), lambda t: inst.loss(model, inst.batch(t)), final


def tune(problem: Callable[[int], tuple], name: str, grid: Sequence[float], seeds: Sequence[int], steps: int,
         **hp: Any) -> tuple[float, dict[float, float], dict[float, dict[int, float]], list[str]]:
    """Grid-tune ``lr``: (best lr, mean final loss per lr, final loss per lr and seed, grid-edge notes)."""
    finals: dict[float, dict[int, float]] = {}
    for lr in grid:
        finals[lr] = {}
        for s in seeds:
            params, step_loss, final = problem(s)
            finals[lr][s] = run(params, name, steps, step_loss, final, {"lr": lr, **hp})[0]
    means = {lr: float(np.mean(list(v.values()))) for lr, v in finals.items()}
    best = min(grid, key=lambda lr: means[lr])
    edges = [f"{name} lr {best:g} at the edge of [{grid[0]:g} .. {grid[-1]:g}]"] if best in (grid[0], grid[-1]) else []
    return best, means, finals, edges
