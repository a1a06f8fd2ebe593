"""The char_lm part of issue 12's proxy comparisons (precond_vs_tuned_charlm.py): its budget and the shared sweep's
use of task options; the fast protocols themselves run in test_claims.py."""

import pytest

from optimlab.lab.claims import get_claim
from optimlab.lab.claims import precond_vs_tuned as base
from optimlab.lab.claims import precond_vs_tuned_charlm as charlm
from optimlab.lab.claims.proxies import default_lr
from optimlab.lab.tasks import get_task

IDS = ("shampoo-vs-tuned-adamw-muon-charlm", "soap-vs-tuned-adamw-muon-charlm",
       "psgd-kron-vs-tuned-adamw-muon-charlm", "asgo-vs-tuned-adamw-muon-charlm")


def test_char_lm_protocol_gives_every_optimizer_the_four_claims_grid_and_the_same_budget():
    assert charlm.FULL["factors"] == base.FULL["factors"] and charlm.FULL["steps"] == 400
    assert charlm.FULL["tasks"] == charlm.FAST["tasks"] == ("char_lm",)
    assert charlm.FULL["options"] == {"char_lm": {"d": 64, "context": 32}}
    for cfg in (charlm.FAST, charlm.FULL):
        for n in base.METHODS + base.REFS:
            g = base.grid(n, False, cfg)
            assert len(g) == len(cfg["factors"]) and len(g) >= 3 and g == tuple(sorted(g))
            assert g[len(g) // 2] == pytest.approx(default_lr(n))
    assert len(charlm.FULL["factors"]) >= 5
    for cid, method in zip(IDS, base.METHODS):
        claim = get_claim(cid)
        assert claim.optimizers == (method, "adamw", "muon") and claim.full_seeds == (0, 1, 2)
        assert "char_lm" in claim.protocol and "char_lm" in claim.statement
    # the options are valid char_lm options (the task checks them when it is configured)
    for cfg in (charlm.FAST, charlm.FULL):
        task = get_task("char_lm", **cfg["options"]["char_lm"])
        assert task.d == cfg["options"]["char_lm"]["d"]


def test_the_four_digits_mnist1d_claims_keep_their_protocol():
    assert base.FULL == {"tasks": ("digits_mlp", "mnist1d"), "factors": (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
                         "steps": 600}
    for n in base.METHODS + base.REFS:
        assert base.grid(n, False) == base.grid(n, False, base.FULL)
        assert base.grid(n, True) == tuple(default_lr(n) * f for f in (0.5, 1.0, 2.0))


def test_sweep_passes_each_task_its_own_options_and_caches_per_protocol(monkeypatch):
    calls = []

    def fake(task, optimizers, lrs, seeds, steps, *, metric, task_options=None):
        (label,) = optimizers
        calls.append((task, label, tuple(lrs), steps, task_options))
        curve = {float(lr): [1.0 + lr for _ in seeds] for lr in lrs}
        lr = min(curve)
        return {label: base.Tuned(label, curve, lr, {s: curve[lr][0] for s in seeds})}

    monkeypatch.setattr(base, "tuned_comparison", fake)
    monkeypatch.setattr(base, "_CACHE", {})
    cfg = {"tasks": ("char_lm", "mnist1d"), "factors": (0.5, 2.0), "steps": 3, "options": {"char_lm": {"d": 8}}}
    out = base.sweep(cfg, [0, 1])
    assert list(out) == ["char_lm", "mnist1d"] and sorted(out["char_lm"]) == sorted(base.METHODS + base.REFS)
    assert {c[4] is None for c in calls if c[0] == "mnist1d"} == {True}
    assert {repr(c[4]) for c in calls if c[0] == "char_lm"} == {repr({"d": 8})}
    assert all(c[3] == 3 and c[2] == base.grid(c[1], False, cfg) for c in calls)
    n = len(calls)
    assert base.sweep(cfg, [0, 1]) is out and len(calls) == n  # cached
    base.sweep({**cfg, "options": {"char_lm": {"d": 16}}}, [0, 1])  # other options: a new sweep
    assert len(calls) == 2 * n
