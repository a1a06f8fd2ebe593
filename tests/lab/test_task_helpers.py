"""Helpers the tasks share: AccuracyTask, sampled_batch, the low-rank teacher's spectrum and metric names."""
from __future__ import annotations

import pytest
import torch

from optimlab.lab.tasks import get_task
from optimlab.lab.tasks.base import (AccuracyTask, log_spaced_singular_values, singular_value_metrics,
                                     singular_value_names)
from optimlab.lab.tasks.blocks import EpochSampler, sampled_batch


@pytest.mark.parametrize("name", ["digits_mlp", "mnist1d", "modular_arithmetic", "group_words"])
def test_accuracy_tasks_compare_on_test_accuracy(name):
    task = get_task(name)
    assert isinstance(task, AccuracyTask)
    spec = task.spec
    assert spec.metrics == ("train_loss", "train_accuracy", "eval_loss", "test_accuracy")
    assert spec.primary_metric == "test_accuracy" and spec.maximize is True


def test_grokking_tasks_share_adamw_settings_without_aliasing():
    a, b = get_task("modular_arithmetic").spec.adamw, get_task("group_words").spec.adamw
    assert a == b == {"lr": 3e-3, "weight_decay": 1.0, "betas": (0.9, 0.98)}
    a["lr"] = 1.0
    assert get_task("group_words").spec.adamw["lr"] == 3e-3


def test_sampled_batch_full_and_minibatch():
    x = torch.arange(10.0).reshape(5, 2)
    y = torch.arange(5)
    sampler = EpochSampler(3, 5, 2)
    full = sampled_batch(sampler, True, 7, x, y)
    assert full[0] is x and full[1] is y
    bx, by = sampled_batch(sampler, False, 1, x, y)
    idx = sampler.indices(1)
    assert torch.equal(bx, x[idx]) and torch.equal(by, y[idx]) and bx.shape == (2, 2)
    # the same rows of every tensor, and every row once over an epoch (steps 0, 1 and the first of step 2)
    assert torch.equal(bx[:, 0] / 2, by.float())
    seen = torch.cat([sampled_batch(sampler, False, s, y)[0] for s in range(3)])[:5]
    assert sorted(seen.tolist()) == [0, 1, 2, 3, 4]


def test_log_spaced_singular_values_and_metric_names():
    sv = log_spaced_singular_values(3, 100.0)
    assert sv.dtype == torch.float64
    assert torch.allclose(sv, torch.tensor([1.0, 0.1, 0.01], dtype=torch.float64))
    assert log_spaced_singular_values(1, 4.0).tolist() == [1.0]
    assert singular_value_names(2) == ("sv_1", "sv_2", "rank")
    m = singular_value_metrics(torch.diag(torch.tensor([3.0, 1.0, 0.1])), 4, 0.5)
    assert tuple(m) == singular_value_names(4)
    assert m["sv_4"] == 0.0 and m["rank"] == 2.0
