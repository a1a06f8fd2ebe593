"""Figures that several claims draw the same way."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

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
