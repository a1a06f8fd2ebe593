"""The shared claim figure helpers (claims/figures.py) used by grokking and group_words."""
from __future__ import annotations

import math

from optimlab.lab.claims.figures import accuracy_figure, first_step, rate_figure, seed_bars


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


def test_rate_figure_plots_iterations_against_eps_on_log_axes():
    import matplotlib.pyplot as plt

    fig = rate_figure([0.1, 0.01], {0: [10.0, 100.0], 1: [12.0, 90.0]}, [0, 1], "iterations", "t")
    try:
        (ax,) = fig.axes
        assert ax.get_xscale() == ax.get_yscale() == "log"
        lines = ax.get_lines()
        assert [ln.get_label() for ln in lines] == ["seed 0", "seed 1"]
        assert list(lines[1].get_ydata()) == [12.0, 90.0] and lines[0].get_marker() == "o"
        assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("ε", "iterations", "t")
    finally:
        plt.close(fig)


def test_seed_bars_groups_one_bar_per_series_at_each_seed():
    import matplotlib.pyplot as plt
    from optimlab.lab.claims.base import new_figure

    fig, (ax,) = new_figure(1)
    try:
        seed_bars(ax, [4, 9], {"a": [1.0, 2.0], "b": [3.0, 4.0]}, 0.25)
        bars = ax.patches
        assert len(bars) == 4
        # series a: bars centred at 0 and 1; series b: shifted right by the width
        assert [round(b.get_x() + b.get_width() / 2, 6) for b in bars] == [0.0, 1.0, 0.25, 1.25]
        assert [b.get_height() for b in bars] == [1.0, 2.0, 3.0, 4.0]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["seed 4", "seed 9"]
        assert ax.get_legend_handles_labels()[1] == ["a", "b"]
    finally:
        plt.close(fig)


def test_best_on_grid_picks_the_lowest_score_and_flags_edges():
    from optimlab.lab.claims.protocols import best_on_grid

    score = {0.01: 3.0, 0.1: 1.0, 1.0: 2.0}
    assert best_on_grid((0.01, 0.1, 1.0), score.__getitem__) == (0.1, False)
    assert best_on_grid((0.01, 0.1, 1.0), lambda lr: -score[lr]) == (0.01, True)  # low edge
    assert best_on_grid((0.01, 0.1, 1.0), lambda lr: lr == 1.0 and -1.0 or 0.0) == (1.0, True)  # high edge
    assert best_on_grid((0.1,), lambda lr: 0.0) == (0.1, False)  # one value is not a tuning
    assert best_on_grid((0.01, 0.1, 1.0), lambda lr: 0.0) == (0.01, True)  # ties: the first


def test_verified_arxiv_ids_of_smoothness_and_combine_claims():
    from optimlab.lab.claims import get_claim

    for cid, arxiv in (("rmsprop-generalized-smooth", "2404.01436"), ("asgd-subspace-bias", "2311.14222"),
                       ("move-on-muon-dissipation", "2605.23871"), ("constrained-rich-parametrization", "2403.11844")):
        assert get_claim(cid).arxiv == arxiv
