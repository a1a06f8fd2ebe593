"""Pieces of the proxy comparisons (issue 12) and the symmetry / SF-NorMuon proxies (issue 15): the fast
protocols themselves run in test_claims.py."""

import math

import pytest
import torch

import optimlab
from optimlab.core.roles import assign_roles


def test_every_optimizer_gets_the_same_trial_budget_centred_on_its_default():
    from optimlab.lab.claims.precond_vs_tuned import FAST, FULL, METHODS, REFS, grid
    from optimlab.lab.claims.proxies import default_lr

    for fast in (True, False):
        sizes = {len(grid(n, fast)) for n in METHODS + REFS}
        assert sizes == {len((FAST if fast else FULL)["factors"])}
        for n in METHODS + REFS:
            g = grid(n, fast)
            assert g == tuple(sorted(g)) and g[len(g) // 2] == pytest.approx(default_lr(n))
    assert FULL["tasks"] == ("digits_mlp", "mnist1d") and FULL["steps"] == 600


def test_load_cv_is_zero_when_balanced_and_one_when_two_of_four_experts_take_everything():
    from optimlab.lab.claims.symmetry_moe import load_cv

    assert load_cv(torch.tensor([5.0, 5.0, 5.0, 5.0])) == 0.0
    assert load_cv(torch.tensor([8.0, 8.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert load_cv(torch.tensor([3.0, 1.0, 1.0, 1.0])) == pytest.approx(math.sqrt(0.75) / 1.5)


def test_moe_gpt_gives_the_symmetry_stack_its_router_gate_and_down_roles_and_counts_assignments():
    from optimlab.lab.claims.symmetry_moe import EXPERTS, LAYERS, TOP, MoEGPT

    torch.manual_seed(0)
    model = MoEGPT(vocab=11, context=8)
    roles = assign_roles(model, fine=True, head="lm_head").roles
    for b in range(LAYERS):
        assert roles[f"blocks.{b}.moe.router.weight"] == "router"
        for e in range(EXPERTS):
            assert roles[f"blocks.{b}.moe.experts.{e}.gate_proj.weight"] == "gate"
            assert roles[f"blocks.{b}.moe.experts.{e}.down_proj.weight"] == "down"
    assert roles["lm_head.weight"] == "head" and roles["tok_emb.weight"] == "embedding"
    opt = optimlab.create(model, "symmetry_muon", head="lm_head")
    assert {"router", "gate", "down", "embedding", "head"} <= {g["role"] for g in opt.param_groups}
    for m in model.moes():
        m.track = True
    idx = torch.randint(0, 11, (3, 8))
    assert model(idx).shape == (3, 8, 11)
    for m in model.moes():  # every token sends TOP assignments in every MoE layer
        assert float(m.counts.sum()) == 3 * 8 * TOP


def test_wd_at_y_ablation_equals_sf_normuon_without_decay_and_differs_with_it():
    from optimlab.lab.claims.sf_weight_decay import train, wd_at_y_recipe

    y = wd_at_y_recipe()
    assert y.name == "sf_normuon_wd_at_y" and y.defaults["matrix"]["weight_decay"] == 0.1
    off = {"weight_decay": 0.0}
    assert train("sf_normuon", off, 5e-3, 0, 12) == train(y, off, 5e-3, 0, 12)  # same optimizer when λ = 0
    # λ large enough to show within a few steps: the placement of the decay changes the trajectory
    on = {"weight_decay": 20.0}
    assert train("sf_normuon", on, 5e-3, 0, 12) != train(y, on, 5e-3, 0, 12)
