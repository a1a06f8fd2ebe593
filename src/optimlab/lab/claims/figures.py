"""Figures that several claims draw the same way."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .base import new_figure


def first_step(steps: Sequence[int], values: Sequence[float], level: float) -> float:
    """The first of ``steps`` whose value is ≥ ``level`` (as a float); NaN when none is."""
    hit = [s for s, v in zip(steps, values) if v >= level]
    return float(hit[0]) if hit else math.nan


def accuracy_figure(runs: Mapping[int, Mapping[str, Any]], seeds: Sequence[int], title: str) -> Any:
    """Train (dashed) and test (solid) accuracy against the step, one colour per seed.

    ``runs[seed]`` holds the lists ``steps``, ``train_acc`` and ``test_acc``; the x axis is the
    full-batch step.
    """
    fig, (ax,) = new_figure(1, width=6.5)
    for i, seed in enumerate(seeds):
        r = runs[seed]
        ax.plot(r["steps"], r["train_acc"], color=f"C{i}", ls="--", label=f"train, seed {seed}")
        ax.plot(r["steps"], r["test_acc"], color=f"C{i}", label=f"test, seed {seed}")
    ax.set(xlabel="step (full batch)", ylabel="accuracy", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def rate_figure(eps: Sequence[float], rows: Mapping[int, Sequence[float]], seeds: Sequence[int], ylabel: str,
                title: str) -> Any:
    """Iterations to reach ε against ε on log-log axes, one line with markers per seed."""
    fig, axes = new_figure(1)
    for s in seeds:
        axes[0].loglog(eps, rows[s], "o-", label=f"seed {s}")
    axes[0].set(xlabel="ε", ylabel=ylabel, title=title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def seed_bars(ax: Any, seeds: Sequence[int], series: Mapping[str, Sequence[float]], width: float) -> None:
    """Grouped bars on ``ax``: a group per seed (labelled ``seed s`` on the x axis), a bar per series.

    ``series``: label -> one value per seed, in the order of ``seeds``; bar i of a group sits ``width·i`` to
    the right of the group's tick.
    """
    for i, (label, values) in enumerate(series.items()):
        ax.bar(np.arange(len(seeds)) + width * i, list(values), width, label=label)
    ax.set(xticks=np.arange(len(seeds)), xticklabels=[f"seed {s}" for s in seeds])
