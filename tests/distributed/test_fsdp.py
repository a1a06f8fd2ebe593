"""FSDP2 (fully_shard, DTensor parameters) on CPU/gloo: parity with one process, owners via all-to-all."""

from __future__ import annotations

import pytest
import torch

import optimlab
from optimlab.distributed import refusal

from dist_workers import launch, make_opt, params_of, state_of, tiny_gpt, train, w_fsdp
from test_ddp import _ulps

STEPS = 20


def _reference(name: str, world: int) -> tuple[dict, dict]:
    model = tiny_gpt(0)
    opt = make_opt(model, name)
    train(model, opt, STEPS, scale=1.0 / world)  # the FSDP gradient: g / world, exactly
    return params_of(model), state_of(opt)


def _check(results: list, world: int, names: list) -> None:
    for name in names:
        ref, ref_state = _reference(name, world)
        for rank, res in enumerate(results):
            assert "error" not in res, res.get("tb")
            assert res[name]["mode"] == "sharded"
            got = res[name]["params"]
            worst = max(_ulps(got[k], ref[k]) for k in ref)
            assert worst <= 1, f"{name}: FSDP2 rank {rank}/{world} is {worst} ULP from one process"
            for k, v in ref_state.items():
                s = res[name]["state"][k]
                if isinstance(v, torch.Tensor):
                    assert _ulps(s.float(), v.float()) <= 1, f"{name}: rank {rank} state {k}"
                else:
                    assert s == v, f"{name}: rank {rank} state {k}"


@pytest.mark.timeout(420)
def test_fsdp2_two_processes_match_one_process(tmp_path):
    names = ["muon", "normuon", "dion", "turbo_muon", "adamw", "sf_adamw"]
    results = launch(w_fsdp, 2, tmp_path, names, STEPS, ("dog", "pion"))
    _check(results, 2, names)
    for r in results:  # refused at construction on every rank, naming the reason
        assert "cannot run on FSDP2" in r["refused"]["dog"] and "needs ['global']" in r["refused"]["dog"]
        assert "cannot run on FSDP2" in r["refused"]["pion"] and "'pion'" in r["refused"]["pion"]
    for name in ["muon", "dion"]:  # each whole matrix computed once, on one rank
        logs = [[m for call in r[name]["log"] for m in call] for r in results]
        assert not set(logs[0]) & set(logs[1]) and logs[0] and logs[1]
    assert all(r["adamw"]["bytes"] == 0 for r in results)  # elementwise: shards only, nothing sent


@pytest.mark.timeout(420)
def test_fsdp2_four_processes_match_one_process(tmp_path):
    _check(launch(w_fsdp, 4, tmp_path, ["muon"], STEPS), 4, ["muon"])  # dion on 4: test_checkpoint


def test_every_registered_optimizer_runs_under_ddp_or_says_why_not_under_fsdp2():
    for name in optimlab.available():
        why = refusal(name)
        assert why is None or (isinstance(why, str) and len(why) > 20), name
    # known refusals: global reductions, and whole-matrix apply steps
    assert "needs ['global']" in refusal("dog")
    assert "pion" in refusal("pion")
    for name in ["muon", "normuon", "dion", "turbo_muon", "adamw", "sf_adamw", "adamuon"]:
        assert refusal(name) is None, name


@pytest.mark.timeout(420)
def test_hsdp_two_by_two_mesh_matches_one_process(tmp_path):
    """HSDP: a 2-D (replicate=2, shard=2) mesh on 4 processes. Elementwise chains on the local shards; whole
    matrices repartitioned within the shard dimension (each replica group computes them once, the same
    bits); settings agree over all 4 ranks. muon, adamw: within 1 ULP (measured 0); Dion's low-rank mode
    within its stated tolerance (tests/distributed/test_dion_distributed.py)."""
    from test_dion_distributed import TOL, _rel

    names = ["muon", "adamw", "dion_lowrank"]
    results = launch(w_fsdp, 4, tmp_path, names, STEPS, (), True)
    _check(results, 4, ["muon", "adamw"])
    ref, _ = _reference("dion_lowrank", 4)
    for rank, r in enumerate(results):
        assert r["dion_lowrank"]["mode"] == "sharded"
        assert _rel(r["dion_lowrank"]["params"], ref) < TOL, rank
    # the two replica groups hold the same shards: every rank's full parameters are the same bits
    for name in names:
        for r in results[1:]:
            assert all(torch.equal(r[name]["params"][k], results[0][name]["params"][k]) for k in r[name]["params"])
    # each replica group splits the matrices over its 2 shard ranks: per group, each matrix computed once
    logs = [[m for call in r["muon"]["log"] for m in call] for r in results]
    for a, b in ((0, 1), (2, 3)):  # mesh rows: ranks {0, 1} and {2, 3} form the shard groups
        assert not set(logs[a]) & set(logs[b]) and logs[a] and logs[b]
    assert sorted(logs[0] + logs[1]) == sorted(logs[2] + logs[3])
