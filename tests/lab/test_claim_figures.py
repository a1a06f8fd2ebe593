"""The shared claim figure helpers (claims/figures.py) used by grokking and group_words."""
from __future__ import annotations

import math

from optimlab.lab.claims.figures import accuracy_figure, first_step


def test_first_step_returns_the_first_step_at_or_above_the_level():
    steps = [0, 10, 20, 30]
    assert first_step(steps, [0.1, 0.5, 0.99, 1.0], 0.99) == 20.0
    assert isinstance(first_step(steps, [1.0, 0.0, 0.0, 0.0], 1.0), float)
    assert first_step(steps, [1.0, 0.0, 0.0, 0.0], 1.0) == 0.0
    assert math.isnan(first_step(steps, [0.1, 0.2, 0.3, 0.4], 0.5))
    assert math.isnan(first_step([], [], 0.0))


def test_accuracy_figure_draws_train_dashed_and_test_solid_per_seed():
    import matplotlib.pyplot as plt

    runs = {3: {"steps": [0, 10], "train_acc": [0.2, 1.0], "test_acc": [0.1, 0.4]},
            7: {"steps": [0, 10, 20], "train_acc": [0.3, 0.9, 1.0], "test_acc": [0.0, 0.2, 0.95]}}
    fig = accuracy_figure(runs, [3, 7], "a title")
    try:
        (ax,) = fig.axes
        lines = ax.get_lines()
        assert [ln.get_label() for ln in lines] == ["train, seed 3", "test, seed 3", "train, seed 7", "test, seed 7"]
        assert [ln.get_linestyle() for ln in lines] == ["--", "-", "--", "-"]
        assert [ln.get_color() for ln in lines] == ["C0", "C0", "C1", "C1"]
        assert list(lines[3].get_ydata()) == [0.0, 0.2, 0.95]
        assert ax.get_title() == "a title" and ax.get_xlabel() == "step (full batch)"
        assert ax.get_ylabel() == "accuracy" and ax.get_legend() is not None
    finally:
        plt.close(fig)
