"""Every registered optimizer under DDP: same parameters as one process (slow: the whole registry)."""

from __future__ import annotations

import pytest

import torch

import optimlab
from optimlab.distributed import refusal

from dist_workers import launch, make_opt, params_of, tiny_gpt, train, w_registry
from test_ddp import _ulps, ulp_misses

STEPS = 3
#: stated tolerances under FSDP2 (ULPs after STEPS steps), with the reason. psgd_kron: its owner computes the
#: Kronecker-factor fit and the preconditioned update on a stack of only the matrices it owns, whose batched
#: CPU kernels (triangular solves, matmuls) round differently in the last bits from the one-process stack of
#: all same-shape matrices (measured 6 ULP; under DDP, where it runs on every rank's whole stack: 0).
FSDP_ULPS = {"psgd_kron": 8}


def _one_process(name: str) -> tuple[dict | None, str | None]:
    """(final parameters, None) of the single-process run, or (None, its error)."""
    model = tiny_gpt(0)
    torch.manual_seed(7)
    try:
        train(model, make_opt(model, name), STEPS)
    except Exception as err:
        return None, f"{type(err).__name__}: {err}"
    return params_of(model), None


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_registered_optimizer_runs_under_ddp_like_one_process(tmp_path):
    """All registered optimizers, 3 steps on 2 gloo processes, each stepped as a user steps it (``train``: HVP
    closures keep the graph, zeroth-order closures return the loss only, Gauss–Newton closures carry their
    ``ModelBatch``). Recipes that need values from the closure beyond its first loss (HVPs, JVPs, zeroth-order
    losses, re-evaluations, the model's outputs) are refused with per-rank closures, naming the reason, and
    then run with ``closure="global"``; every optimizer runs, in one process and distributed, and every run
    matches one process within 1 ULP."""
    names = optimlab.available()
    results = launch(w_registry, 2, tmp_path, names, STEPS, timeout=840)
    bad = []
    for res in results:
        assert "error" not in res, res.get("tb")
    for name in names:
        refused = [r[name].get("refused") for r in results]
        want = refusal(name, "ddp")
        if want is None:
            assert refused == [None] * len(results), (name, refused)
        else:  # refused at construction on every rank, naming the reason
            assert all(x is not None and "closure='global'" in x and "DDP" in x for x in refused), (name, refused)
        ref, err = _one_process(name)
        failed = [r[name].get("failed") for r in results]
        if err is not None:  # every registered optimizer runs on the tiny GPT stepped as train() steps it
            bad.append((name, "one process failed", err[:300]))
            continue
        if any(failed):
            bad.append((name, [str(f)[:300] for f in failed]))
            continue
        for rank, res in enumerate(results):
            worst = max(_ulps(res[name]["params"][k], ref[k]) for k in ref)
            if worst > FSDP_ULPS.get(name, 1):
                bad.append((name, rank, worst))
    assert not bad, "\n".join(map(str, bad))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_fsdp2_capable_optimizer_matches_one_process(tmp_path):
    from optimlab.distributed import refusal

    from dist_workers import w_fsdp

    names = [n for n in optimlab.available() if refusal(n) is None]
    results = launch(w_fsdp, 2, tmp_path, names, STEPS, timeout=840)
    bad = []
    for name in names:
        model = tiny_gpt(0)
        torch.manual_seed(7)
        train(model, make_opt(model, name), STEPS, scale=0.5)
        bad += ulp_misses(results, name, params_of(model), FSDP_ULPS.get(name, 1))
    assert not bad, "\n".join(map(str, bad))
