"""Report behaviours on synthetic stores (no training, so fast): sweeps folded into one sensitivity
curve with a grid-edge flag, 95% t interval and ``n = 1`` text, steps to the task's own target,
the 120-column terminal table, dynamics panels, the x axis choice and labelled log ticks."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from optimlab.lab import plots  # noqa: E402
from optimlab.lab.report import write_report  # noqa: E402
from optimlab.lab.report_data import short_label  # noqa: E402
from optimlab.lab.store import RunStore  # noqa: E402
from optimlab.lab.tasks import get_task  # noqa: E402
from optimlab.lab.tasks.quadratic import Quadratic  # noqa: E402

OPTIONS = get_task("quadratic", dim=5).options
STEPS = 20


def fake(db: RunStore, optimizer: str, hparams: dict, seed: int, final: float,
         evals: dict[int, float] | None = None, **per_step: float) -> None:
    """A finished run: eval_loss every 5 steps ending at ``final`` (or the given ``evals``), and
    any ``per_step`` series (constant) at every step."""
    run_id = db.create_run("quadratic", OPTIONS, optimizer, hparams, seed, STEPS)
    evals = evals or {s: final + (STEPS - s) for s in range(0, STEPS + 1, 5)}
    for step in range(STEPS + 1):
        values = dict(per_step) if step else {}
        if step:
            values.update(loss=final + 1.0 / step, step_ms=2.0)
        if step in evals:
            values["eval_loss"] = evals[step]
        if step == STEPS:
            values.update(state_bytes=0, n_params=5)
        db.log_metrics(run_id, step, values)
    db.finish(run_id)


def _text(page: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)


def _row(table: str, start: str) -> str:
    (line,) = [x for x in table.splitlines() if x.startswith(start)]
    return line


def test_sweep_is_one_row_and_one_curve_with_grid_edge_flag(tmp_path):
    db = RunStore(tmp_path / "runs.db")
    for seed in (0, 1):
        for lr, final in ((0.001, 3.0), (0.01, 2.0), (0.1, 1.0)):  # best at the largest lr
            fake(db, "sgd", {"lr": lr}, seed, final + 0.1 * seed)
        for mom, final in ((0.0, 2.0), (0.5, 0.5), (0.9, 1.5)):  # best inside the grid
            fake(db, "sgd", {"lr": 0.05, "momentum": mom}, seed, final + 0.1 * seed)
    paths = write_report(db, tmp_path / "out")
    db.close()
    rows = [x for x in paths.table.splitlines() if x.startswith("sgd(")]
    assert len(rows) == 2, paths.table  # six configurations, two sweeps, two rows
    assert _row(paths.table, "sgd(lr=0.1) [best of 3 lr; at grid edge]")
    assert _row(paths.table, "sgd(lr=0.05, momentum=0.5) [best of 3 momentum]")
    page = _text(paths.html.read_text(encoding="utf-8"))
    assert page.count("best at grid edge") == 1  # the lr sweep only
    assert "sgd: lr at 3 values" in page and "sgd(lr=0.05): momentum at 3 values" in page
    assert sum(p.name.endswith("_sensitivity.png") for p in paths.figures) == 1


def test_interval_text_and_one_seed(tmp_path):
    db = RunStore(tmp_path / "runs.db")
    fake(db, "adamw", {"lr": 0.01}, 0, 1.0)
    fake(db, "adamw", {"lr": 0.01}, 1, 3.0)
    fake(db, "lion", {"lr": 1 / 3000}, 0, 5.0)
    paths = write_report(db, tmp_path / "out")
    db.close()
    # mean 2, half-width t_{0.975,1} · s / √2 = 12.706 · 1.414 / 1.414 = 12.7
    assert "2 ± 13" in _row(paths.table, "adamw(lr=0.01) ")
    lion = _row(paths.table, "lion(lr=3.3e-4) ")  # rounded hyperparameters in labels
    assert "5 (n = 1)" in lion and "±" not in lion
    assert "95% t interval" in paths.table
    assert "95% t interval" in paths.html.read_text(encoding="utf-8")


def test_steps_to_target_use_the_tasks_target(tmp_path, monkeypatch):
    monkeypatch.setattr(Quadratic, "_targets", lambda self: {"eval_loss": 0.5})
    db = RunStore(tmp_path / "runs.db")
    fake(db, "adamw", {}, 0, 0.1, evals={0: 9, 5: 2, 10: 0.4, 15: 0.2, 20: 0.1})
    fake(db, "adamw", {}, 1, 0.3, evals={0: 9, 5: 2, 10: 1, 15: 0.9, 20: 0.3})
    fake(db, "sgd", {}, 0, 0.8, evals={0: 9, 5: 2, 10: 1, 15: 0.9, 20: 0.8})
    fake(db, "sgd", {}, 1, 0.9, evals={0: 9, 5: 2, 10: 1, 15: 0.9, 20: 0.9})
    both = write_report(db, tmp_path / "both")
    alone = write_report(db, tmp_path / "alone", optimizers="sgd")
    db.close()
    assert "eval_loss ≤ 0.5 (task)" in both.table
    adamw = _row(both.table, "adamw ")
    assert adamw.endswith("2/2") and "15 ± " in adamw  # steps 10 and 20
    sgd = _row(both.table, "sgd ")
    assert sgd.endswith("0/2") and sgd.split()[-2] == "-"
    # The target is the task's, not one derived from the optimizers in the table.
    assert "eval_loss ≤ 0.5 (task)" in alone.table and _row(alone.table, "sgd ").endswith("0/2")


def test_no_target_is_said_not_invented(tmp_path, monkeypatch):
    monkeypatch.setattr(Quadratic, "_targets", lambda self: {})  # a task that declares no target
    db = RunStore(tmp_path / "runs.db")
    fake(db, "adamw", {}, 0, 0.1)
    paths = write_report(db, tmp_path / "out")
    db.close()
    assert "no target set for this task" in paths.table and "reached" not in paths.table


def test_table_fits_120_columns(tmp_path):
    db = RunStore(tmp_path / "runs.db")
    long = {"lr": 0.0123456, "weight_decay": 0.0987654, "betas": [0.9, 0.95], "eps": 1e-8,
            "ns_steps": 5, "nesterov": True, "orthogonalize_dtype": "bfloat16", "scale": 0.2}
    for seed in (0, 1):
        fake(db, "muon", long, seed, 0.123456789 + seed)
    paths = write_report(db, tmp_path / "out")
    db.close()
    lines = paths.table.splitlines()
    assert max(map(len, lines)) <= 120
    assert any(x.startswith("muon(") and "…" in x for x in lines)
    assert "0.123456789" not in paths.table  # floats rounded


def test_dynamics_panels_x_axis_and_header(tmp_path):
    db = RunStore(tmp_path / "runs.db")
    fake(db, "adamw", {}, 0, 0.5, lr=0.01, update_norm=0.2)
    fake(db, "sgd", {}, 0, 0.5)  # an old run: no dynamics series, still drawn elsewhere
    paths = write_report(db, tmp_path / "out", x="time", optimizers=["adamw", "sgd"])
    db.close()
    page = _text(paths.html.read_text(encoding="utf-8"))
    assert "Optimizer dynamics" in page and any(p.name.endswith("_dynamics.png") for p in paths.figures)
    assert "x axis: wall time" in page and "optimizers adamw, sgd" in page and "None" not in page
    with pytest.raises(ValueError, match="x must be one of .*got 'epochs'"):
        write_report(tmp_path / "runs.db", tmp_path / "bad", x="epochs")


def test_log_axis_within_a_decade_has_labelled_ticks():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fig, axes = plots.figure()
    FigureCanvasAgg(fig)
    axes[0].plot([0, 1], [2.2, 4.8])
    plots.set_y(axes[0], np.array([2.2, 4.8]), log=True)  # char_lm's loss range
    fig.canvas.draw()
    lo, hi = axes[0].get_ylim()
    labels = [t.get_text() for t in axes[0].get_yticklabels() if lo <= t.get_position()[1] <= hi]
    assert len([x for x in labels if x]) >= 3 and "3" in labels and "4" in labels
    assert plots.log_ticks(0.001, 10) == [0.001, 0.01, 0.1, 1.0, 10.0]


def test_short_label_rounds():
    assert short_label("lion", {"lr": 0.000333333}) == "lion(lr=3.3e-4)"
    assert short_label("adamw", {"lr": 0.05, "weight_decay": 0.0, "betas": (0.9, 0.95)}) == \
        "adamw(betas=(0.9, 0.95), lr=0.05, weight_decay=0)"
    assert short_label("muon", {}) == "muon"


def test_search_over_two_hyperparameters_is_one_row(tmp_path):
    """Trials of a search varying lr and momentum together (an Optuna study): one row, one
    sensitivity panel per hyperparameter, and the edge flag names the hyperparameter at its edge."""
    db = RunStore(tmp_path / "runs.db")
    trials = [(0.01, 0.5, 2.0), (0.03, 0.9, 0.5), (0.1, 0.7, 1.0), (0.3, 0.8, 3.0), (0.05, 0.6, 1.5)]
    for lr, mom, final in trials:  # best: lr 0.03 (inside), momentum 0.9 (the largest tried)
        fake(db, "sgd", {"lr": lr, "momentum": mom, "nesterov": True}, 0, final)
    paths = write_report(db, tmp_path / "out")
    db.close()
    (row,) = [x for x in paths.table.splitlines() if x.startswith("sgd(")]
    assert row.startswith("sgd(lr=0.03, momentum=0.9, nester")
    assert "at grid edge]" in row and "…" in row and len(row) <= 120  # shortened in the middle to fit 120
    page = _text(paths.html.read_text(encoding="utf-8"))
    assert "sgd(lr=0.03, momentum=0.9, nesterov=True) [best of 5 (lr, momentum); momentum at grid edge]" in page
    assert "sgd(nesterov=True): 5 configurations over lr, momentum" in page
    assert "best at grid edge</b> (momentum)" in page
