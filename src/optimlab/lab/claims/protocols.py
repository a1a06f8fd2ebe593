"""Shared experiment protocols for claims that compare optimizers at tuned learning rates.

``tuned_comparison`` trains every optimizer at every learning rate of one grid, on every seed, with
the lab runner (an in-memory store: claims do not write to the user's run database), picks each
optimizer's learning rate by the mean over seeds of the final metric, and returns the per-seed
values at that learning rate. The grid and budget are fixed by the claim before it runs; nothing is
tuned after seeing a verdict.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence


@dataclass
class Tuned:
    """One optimizer's sweep: ``curve`` {lr: [metric per seed]}, the chosen ``lr`` and its values.
    ``at_edge``: "low" / "high" when the chosen lr is the smallest / largest of a grid of >= 2 values."""

    name: str
    curve: dict[float, list[float]]
    lr: float
    per_seed: dict[int, float]
    hparams: dict[str, Any] = field(default_factory=dict)

    @property
    def at_edge(self) -> str | None:
        if len(self.curve) < 2:
            return None  # one value is not a tuning (e.g. a paper's fixed lr)
        return "low" if self.lr == min(self.curve) else ("high" if self.lr == max(self.curve) else None)

    def mean(self, lr: float | None = None) -> float:
        return _mean(self.curve[self.lr if lr is None else lr])


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if len(finite) == len(values) else math.inf


def tuned_comparison(task: str, optimizers: Mapping[str, Mapping[str, Any]], lrs: Sequence[float],
                     seeds: Sequence[int], steps: int, *, metric: str = "eval_loss",
                     task_options: Mapping[str, Any] | None = None) -> dict[str, Tuned]:
    """Each optimizer (label -> {"optimizer": name, other fixed hparams}) at each lr, every seed.

    A run that diverges (the runner marks it failed) scores +inf, so it is never chosen. Lower
    ``metric`` is better. Returns label -> :class:`Tuned`.
    """
    from ..runner import run

    out: dict[str, Tuned] = {}
    for label, cfg in optimizers.items():
        cfg = dict(cfg)
        name = cfg.pop("optimizer")
        curve: dict[float, list[float]] = {}
        for lr in lrs:
            values = []
            for seed in seeds:
                res = run(task, name, hparams={**cfg, "lr": lr}, seed=seed, steps=steps,
                          task_options=task_options, store=None, nonfinite="error")
                value = res.final.get(metric, math.inf) if res.status == "finished" else math.inf
                values.append(float(value) if math.isfinite(value) else math.inf)
            curve[float(lr)] = values
        best = min(curve, key=lambda lr: (_mean(curve[lr]), lr))
        out[label] = Tuned(label, curve, best, dict(zip(seeds, curve[best])), cfg)
    return out


def best_on_grid(grid: Sequence[float], score: Callable[[float], float]) -> tuple[float, bool]:
    """The value of ``grid`` with the lowest ``score`` (the first on ties), and whether it is the first or
    last of a grid of ≥ 2 values (an edge: the optimum may lie outside the grid, ``Outcome.grid_edges``)."""
    best = min(grid, key=score)
    return best, len(grid) > 1 and best in (grid[0], grid[-1])


def grid_edges(tuned: Mapping[str, Tuned]) -> list[str]:
    """One line per optimizer whose chosen lr sits at the edge of its grid (``Outcome.grid_edges``)."""
    return [f"{label} lr={t.lr:g} at the {t.at_edge} edge of [{min(t.curve):g} .. {max(t.curve):g}]"
            for label, t in tuned.items() if t.at_edge]


def plot_tuning(ax: Any, tuned: Mapping[str, Tuned], metric: str) -> None:
    """Mean ± min/max over seeds of ``metric`` against lr, one line per optimizer; chosen lr marked."""
    for i, (label, t) in enumerate(tuned.items()):
        lrs = sorted(t.curve)
        finite = [lr for lr in lrs if math.isfinite(t.mean(lr))]
        ax.plot(finite, [t.mean(lr) for lr in finite], "o-", color=f"C{i}", label=f"{label} (best lr {t.lr:g})")
        ax.fill_between(finite, [min(t.curve[lr]) for lr in finite], [max(t.curve[lr]) for lr in finite],
                        color=f"C{i}", alpha=0.2)
        if math.isfinite(t.mean()):
            ax.plot([t.lr], [t.mean()], "*", color=f"C{i}", ms=14)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (matrix role)", ylabel=f"final {metric}")
    ax.legend(fontsize=8)
