"""Every registered optimizer under DDP: same parameters as one process (slow: the whole registry)."""

from __future__ import annotations

import pytest

import optimlab

from dist_workers import launch, make_opt, params_of, tiny_gpt, train, w_registry
from test_ddp import _ulps

STEPS = 3


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_registered_optimizer_runs_under_ddp_like_one_process(tmp_path):
    names = optimlab.available()
    results = launch(w_registry, 2, tmp_path, names, STEPS, timeout=540)
    for name in names:
        model = tiny_gpt(0)
        train(model, make_opt(model, name), STEPS)
        ref = params_of(model)
        for rank, res in enumerate(results):
            assert "error" not in res, res.get("tb")
            worst = max(_ulps(res[name][k], ref[k]) for k in ref)
            assert worst <= 1, f"{name}: rank {rank} is {worst} ULP from one process"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_fsdp2_capable_optimizer_matches_one_process(tmp_path):
    from optimlab.distributed import refusal

    from dist_workers import w_fsdp

    names = [n for n in optimlab.available() if refusal(n) is None]
    results = launch(w_fsdp, 2, tmp_path, names, STEPS, timeout=540)
    bad = []
    for name in names:
        model = tiny_gpt(0)
        train(model, make_opt(model, name), STEPS, scale=0.5)
        ref = params_of(model)
        for rank, res in enumerate(results):
            assert "error" not in res, res.get("tb")
            worst = max(_ulps(res[name]["params"][k], ref[k]) for k in ref)
            if worst > 1:
                bad.append((name, rank, worst))
    assert not bad, bad
