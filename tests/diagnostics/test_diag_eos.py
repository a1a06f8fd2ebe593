"""EoSMonitor: what it records, its thresholds and overlap, and the fast edge-of-stability demonstration."""
from __future__ import annotations

import importlib.util
import pathlib

import pytest
import torch

from optimlab.diagnostics import EoSMonitor, gradient_overlap

from diag_helpers import dense_hessian

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "edge_of_stability.py"


def _sgd_steps(monitor, model, loss_fn, batch, opt, steps):
    for step in range(steps):
        monitor.step(step, model, loss_fn, batch, opt)
        opt.zero_grad()
        loss_fn(model, batch).backward()
        opt.step()


def test_monitor_measures_every_k_steps_and_reports_cost(mlp_problem):
    model, loss_fn, batch = mlp_problem
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = EoSMonitor(every=3, k=2, tol=1e-8)
    _sgd_steps(monitor, model, loss_fn, batch, opt, 10)
    assert [r.step for r in monitor.history] == [0, 3, 6, 9]
    for r in monitor.history:
        assert r.seconds > 0 and r.num_hvps > 0 and r.num_examples == 48 and r.num_batches == 1
        assert r.threshold == pytest.approx(20.0) and r.quantity == "sharpness"
        assert r.ratio == pytest.approx(r.sharpness / 20.0)
        assert r.preconditioned_sharpness is None and r.lr == 0.1
    assert monitor.total_hvps == sum(r.num_hvps for r in monitor.history)
    # The last record describes the parameters *before* step 9's update.
    model_state = {k: v.clone() for k, v in model.state_dict().items()}
    monitor2 = EoSMonitor(every=1, k=2, tol=1e-8)
    record = monitor2.step(0, model, loss_fn, batch)
    evals, evecs = torch.linalg.eigh(dense_hessian(model, loss_fn, batch))
    assert record.sharpness == pytest.approx(float(evals[-1]), rel=1e-6)
    assert record.eigenvalues[1] == pytest.approx(float(evals[-2]), rel=1e-6)
    g = torch.cat([p.reshape(-1) for p in torch.autograd.grad(loss_fn(model, batch), list(model.parameters()))])
    assert record.grad_overlap == pytest.approx(gradient_overlap(g, evecs[:, -2:].T), abs=1e-6)
    assert record.threshold is None and record.ratio is None  # no optimizer given
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in model_state.items())
    assert "measurements" in monitor.summary()
    assert monitor.as_dicts()[0]["step"] == 0


def test_gradient_overlap_definition():
    V = torch.eye(4)[:2]
    assert gradient_overlap(torch.tensor([1.0, 2.0, 0.0, 0.0]), V) == pytest.approx(1.0)
    assert gradient_overlap(torch.tensor([0.0, 0.0, 3.0, 0.0]), V) == pytest.approx(0.0)
    assert gradient_overlap(torch.tensor([1.0, 0.0, 1.0, 0.0]), V) == pytest.approx(0.5)


def test_monitor_with_adam_tracks_preconditioned_sharpness(mlp_problem):
    model, loss_fn, batch = mlp_problem
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    monitor = EoSMonitor(every=2, tol=1e-6)
    for step in range(1, 6):
        opt.zero_grad()
        loss_fn(model, batch).backward()
        opt.step()
        monitor.step(step, model, loss_fn, batch, opt)
    last = monitor.history[-1]
    assert last.quantity == "preconditioned sharpness" and last.threshold == pytest.approx(3800.0)
    assert last.ratio == pytest.approx(last.preconditioned_sharpness / 3800.0)
    assert last.preconditioned_sharpness > last.sharpness  # √v̂ ≪ 1 here, so P⁻¹ magnifies


def test_monitor_with_unknown_optimizer_records_no_threshold(mlp_problem):
    model, loss_fn, batch = mlp_problem
    opt = torch.optim.Adagrad(model.parameters(), lr=0.1)
    record = EoSMonitor(every=1).step(0, model, loss_fn, batch, opt)
    assert record.threshold is None and record.ratio is None and record.sharpness > 0
    with pytest.raises(ValueError, match="no second-moment state"):
        EoSMonitor(every=1, preconditioned=True).step(0, model, loss_fn, batch, opt)
    fixed = EoSMonitor(every=1, threshold=5.0).step(0, model, loss_fn, batch, opt)
    assert fixed.ratio == pytest.approx(fixed.sharpness / 5.0)


def test_warm_start_saves_products(mlp_problem):
    model, loss_fn, batch = mlp_problem
    monitor = EoSMonitor(every=1, tol=1e-6)
    first = monitor.step(0, model, loss_fn, batch)
    second = monitor.step(1, model, loss_fn, batch)
    assert second.num_hvps < first.num_hvps
    assert second.sharpness == pytest.approx(first.sharpness, rel=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"every": 0}, "every must be a positive int"),
    ({"k": 0}, "k must be a positive int"),
    ({"preconditioned": "yes"}, "preconditioned must be 'auto', True or False"),
    ({"threshold": -1.0}, "threshold must be a positive number or None"),
])
def test_monitor_bad_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EoSMonitor(**kwargs)


def test_monitor_bad_step(mlp_problem):
    with pytest.raises(ValueError, match="step_idx must be a nonnegative int"):
        EoSMonitor().step(-1, *mlp_problem)


def test_edge_of_stability_fast(tmp_path):
    """Tiny version of examples/edge_of_stability.py (128 digits, width 32): GD lr 0.4 and Adam lr 0.01.

    Asserts progressive sharpening (sharpness starts below 0.7 · 2/η and reaches 2/η) and that it
    ends within [0.9, 1.15] · 2/η (mean of the last quarter of measurements); for Adam the same for
    λ_max(P⁻¹H) against 38/η, band [0.85, 1.15].
    """
    spec = importlib.util.spec_from_file_location("edge_of_stability_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    summary = example.main([str(tmp_path), "--fast"])
    gd, adam = summary["runs"]
    assert gd["first_ratio"] < 0.7 and gd["max_ratio"] >= 0.98
    assert 0.9 <= gd["tail_mean_ratio"] <= 1.15
    sharp = [h["sharpness"] for h in gd["history"]]
    assert sharp[len(sharp) // 2] > 1.3 * sharp[0]  # it rose
    assert adam["first_ratio"] < 0.5 and 0.85 <= adam["tail_mean_ratio"] <= 1.15
    for name in ("gd_sharpness.png", "adam_preconditioned_sharpness.png", "losses.png", "summary.json"):
        assert (tmp_path / name).stat().st_size > 1000
