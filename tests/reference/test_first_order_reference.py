"""The issue-10 engine-only methods against their single-tensor transcriptions (optimlab.reference.first_order
and .orthogonal_momentum): 20 steps in float64 on several shapes agree to 1e-10 relative to the distance
travelled, and a deliberately wrong variant of each rule does not."""

import pytest
import torch

import optimlab
from optimlab.reference.first_order import (accelerated_sgd_step, adagrad_norm_step, normalized_gd_step,
                                            optimistic_amsgrad_step, random_scaling_sgdm_step, secant_adam_step)
from optimlab.reference.orthogonal_momentum import orthogonal_sgdm_step, regularized_muon_step

SHAPES = [(6, 5), (5, 8), (7,), (4, 2, 3)]
MATRICES = [(6, 5), (5, 8), (7, 7), (4, 2, 3)]  # tall, wide, square, conv-like (4 × 6)
STEPS = 20
TOL = 1e-10


def run_both(name, hp, ref_step, ref_hp, shapes=SHAPES, steps=STEPS):
    g = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(*s, generator=g, dtype=torch.float64)) for s in shapes]
    starts = [p.detach().clone() for p in ours]
    refs = [p.detach().clone() for p in ours]
    states = [{} for _ in refs]
    opt = optimlab.create(ours, name, **hp)
    for _ in range(steps):
        for p, r, st in zip(ours, refs, states):
            grad = torch.randn(p.shape, generator=g, dtype=torch.float64) + 0.3 * p.detach()
            p.grad = grad
            ref_step(r, grad.clone(), st, **ref_hp)
        opt.step()
    return max(((p.detach() - r).norm() / (r - s).norm()).item() for p, r, s in zip(ours, refs, starts))


def check(name, hp, ref_step, ref_hp, wrong_hp, **kw):
    err = run_both(name, hp, ref_step, ref_hp, **kw)
    assert err < TOL, f"{name}: relative difference {err:.2e}"
    assert run_both(name, hp, ref_step, {**ref_hp, **wrong_hp}, **kw) > 1e-3, "the test cannot tell this variant apart"
    return err


def test_adagrad_norm_matches_ward_wu_bottou():
    check("adagrad_norm", dict(lr=0.3, b0=0.5), adagrad_norm_step, dict(lr=0.3, b0=0.5), {"b0": 3.0})


def test_optimistic_amsgrad_matches_the_two_sequence_form():
    hp = dict(lr=0.01, betas=(0.9, 0.99), eps=1e-8)
    ref = dict(lr=0.01, beta1=0.9, beta2=0.99, eps=1e-8)
    check("optimistic_amsgrad", hp, optimistic_amsgrad_step, ref, {"beta1": 0.5})


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_accelerated_sgd_matches_jain_et_al(wd):
    hp = dict(lr=0.01, kappa=100.0, xi=5.0, small_const=0.7, weight_decay=wd)
    ref = dict(lr=0.01, kappa=100.0, xi=5.0, small_const=0.7, wd=wd)
    check("accelerated_sgd", hp, accelerated_sgd_step, ref, {"xi": 2.0})


@pytest.mark.parametrize("power,offset", [(1.0, 0.0), (0.5, 0.0), (1.0, 2.0)])
def test_normalized_gd_matches_chen_et_al(power, offset):
    hp = dict(lr=0.05, norm_power=power, norm_offset=offset)
    ref = dict(lr=0.05, power=power, offset=offset)
    check("normalized_gd", hp, normalized_gd_step, ref, {"power": power - 0.3})


def test_random_scaling_sgdm_matches_zhang_cutkosky():
    hp = dict(lr=0.02, momentum=0.8, seed=3)
    check("random_scaling_sgdm", hp, random_scaling_sgdm_step, dict(lr=0.02, beta=0.8, seed=3), {"seed": 4})


def test_secant_adam_matches_its_reading():
    hp = dict(lr=0.01, betas=(0.9, 0.99), eps=1e-8, secant_gain=0.7, secant_beta=0.8)
    ref = dict(lr=0.01, beta1=0.9, beta2=0.99, eps=1e-8, gain=0.7, kappa_beta=0.8)
    check("secant_adam", hp, secant_adam_step, ref, {"gain": 0.0})


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_orthogonal_sgdm_matches_tuddenham_et_al(wd):
    hp = dict(lr=0.01, momentum=0.9, weight_decay=wd, ortho_backend="svd")
    check("orthogonal_sgdm", hp, orthogonal_sgdm_step, dict(lr=0.01, mu=0.9, wd=wd), {"mu": 0.5},
          shapes=MATRICES)


@pytest.mark.parametrize("eps", [1e-2, 1e-6])
def test_regularized_muon_matches_its_rule(eps):
    hp = dict(lr=0.02, momentum=0.9, polar_eps=eps, weight_decay=0.1)
    ref = dict(lr=0.02, beta=0.9, eps=eps, wd=0.1)
    check("regularized_muon", hp, regularized_muon_step, ref, {"eps": eps * 100}, shapes=MATRICES)
