"""Continual-learning tasks, replay buffer, per-step evaluation of every task, stability-gap metrics."""
from __future__ import annotations

import pytest
import torch

from optimlab.lab.continual import (ReplayBuffer, average_accuracy, min_accuracy, rotated_digits, run_continual,
                                    split_digits, stability_gap)


def test_split_and_rotated_tasks():
    tasks = split_digits(0)
    assert len(tasks) == 5
    for k, t in enumerate(tasks):
        assert set(t.y_train.unique().tolist()) == {2 * k, 2 * k + 1} == set(t.y_test.unique().tolist())
    rot = rotated_digits(0, angles=(0.0, 90.0))
    from optimlab.lab.continual import _digits_split

    xtr = _digits_split(0)[0]
    assert torch.allclose(rot[0].x_train, torch.tensor(xtr, dtype=torch.float32), atol=1e-6)  # 0° = unchanged
    # 90° rotation of an 8x8 image is a pure permutation of pixels (up to interpolation at the border)
    img = rot[0].x_train[0].reshape(8, 8)
    r90 = rot[1].x_train[0].reshape(8, 8)
    assert torch.allclose(torch.rot90(img, k=-1), r90, atol=1e-5) or torch.allclose(torch.rot90(img, k=1), r90, atol=1e-5)
    with pytest.raises(ValueError, match="n_tasks"):
        split_digits(0, n_tasks=6)


def test_replay_buffer_is_a_uniform_reservoir():
    buf = ReplayBuffer(50, seed=0)
    with pytest.raises(ValueError, match="empty buffer"):
        buf.sample(1)
    for k in range(20):
        buf.add(torch.arange(k * 50, (k + 1) * 50).float()[:, None], torch.arange(k * 50, (k + 1) * 50))
    assert len(buf) == 50 and buf.seen == 1000
    # uniform over the stream: the kept items' mean index is near the stream's mean (499.5)
    assert 300 < float(buf.y.float().mean()) < 700
    x, y = buf.sample(8)
    assert torch.equal(x[:, 0].long(), y)


def test_run_continual_evaluates_every_task_every_step_and_replay_reduces_forgetting():
    tasks = split_digits(0, n_tasks=2)
    plain = run_continual(tasks, steps_per_task=60, eval_size=60, seed=0)
    assert plain["switches"] == [0, 60] and plain["steps"] == list(range(1, 121))
    assert all(len(v) == 120 for v in plain["acc"].values())
    replay = run_continual(tasks, steps_per_task=60, replay=100, eval_size=60, seed=0)
    ogd = run_continual(tasks, steps_per_task=60, ogd_per_task=20, eval_size=60, seed=0)
    # class-incremental without replay forgets task 1 completely; replay keeps part of it
    assert plain["acc"][tasks[0].name][-1] < 0.2
    assert replay["acc"][tasks[0].name][-1] > plain["acc"][tasks[0].name][-1] + 0.2
    assert 0.0 <= average_accuracy(ogd) <= 1.0
    gpm = run_continual(tasks, steps_per_task=60, gpm_threshold=0.97, eval_size=60, seed=0)
    assert len(gpm["acc"][tasks[0].name]) == 120
    gap = stability_gap(plain, task=0, window=20)
    assert len(gap) == 1 and gap[0]["dip"] > 0.5 and gap[0]["before"] > 0.9
    assert min_accuracy(plain, 0) == pytest.approx(min(plain["acc"][tasks[0].name][60:]))


def test_run_continual_bad_input():
    with pytest.raises(ValueError, match="no tasks"):
        run_continual([])
    with pytest.raises(ValueError, match="steps_per_task"):
        run_continual(split_digits(0, 1), steps_per_task=0)


def test_continual_digits_task_switches_tasks_and_scores_each():
    from optimlab.lab.tasks import get_task

    task = get_task("continual_digits", steps_per_task=10, replay=5)
    inst = task.build(0)
    x0, y0 = inst.batch(0)
    assert set(y0.tolist()) <= {0, 1} and len(y0) == 32
    x1, y1 = inst.batch(12)  # task 2: half new (2, 3), half replayed from task 1's memory
    assert set(y1[:16].tolist()) <= {2, 3} and set(y1[16:].tolist()) <= {0, 1}
    assert set(inst.batch(1000)[1][:16].tolist()) <= {8, 9}  # past the end: the last task
    m = inst.evaluate()
    assert list(m)[:2] == ["eval_loss", "average_accuracy"]
    assert m["average_accuracy"] == pytest.approx(sum(m[f"acc_task{k}"] for k in range(1, 6)) / 5)
    with pytest.raises(ValueError, match="variant"):
        get_task("continual_digits", variant="permuted")
