"""Shared helpers of the hostile-input suites: snapshots of parameters and optimizer state."""

from __future__ import annotations

import copy

import torch


def snapshot(model: torch.nn.Module, opt) -> tuple:
    params = [p.detach().clone() for p in model.parameters()]
    state = {id(p): copy.deepcopy({k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()})
             for p, s in opt.state.items()}
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    return params, state, copy.deepcopy(groups), opt.training, getattr(opt, "skipped_steps", 0)


def assert_unchanged(before: tuple, model: torch.nn.Module, opt) -> None:
    params, state, groups, training, skipped = before
    for a, b in zip(params, model.parameters()):
        assert torch.equal(a, b.detach()), "a parameter changed after a refusal"
    now = {id(p): s for p, s in opt.state.items()}
    assert set(now) == set(state), "state entries were added or removed after a refusal"
    for pid, s in state.items():
        assert set(s) == set(now[pid])
        for k, v in s.items():
            w = now[pid][k]
            assert (torch.equal(v, w) if torch.is_tensor(v) else v == w), f"state {k!r} changed after a refusal"
    assert groups == [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    assert training == opt.training and skipped == getattr(opt, "skipped_steps", 0)
