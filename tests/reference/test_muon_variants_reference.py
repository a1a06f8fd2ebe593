"""NorMuon, AdaMuon, AdaGO, MuonEq, MiMuon, the trust-region family and CLion against their papers' rules
(optimlab.reference.muon_variants): the engine path equals the slow transcription over 15 steps on several
shapes (float64, exact SVD polar factor), and a deliberately wrong variant of each rule does not."""

import functools
import math

import pytest
import torch

import optimlab
from optimlab.linalg import newton_schulz
from optimlab.reference import (adago_step, adamuon_step, clion_step, mimuon_step, muoneq_step, normuon_step,
                                trust_region_step)

SHAPES = [(6, 5), (5, 8), (7, 7), (4, 2, 3)]  # tall, wide, square, conv-like (flattened to 4 × 6)
STEPS = 15
TOL = 1e-10  # float64: relative to the total movement of the parameter


def run_both(name, hp, ref_step, ref_hp, shapes=SHAPES, steps=STEPS, svd=True):
    """Run optimizer ``name`` and the reference on the same gradients; return (ours, refs, starts, states)."""
    g = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(*s, generator=g, dtype=torch.float64)) for s in shapes]
    starts = [p.detach().clone() for p in ours]
    refs = [p.detach().clone() for p in ours]
    states = [{} for _ in refs]
    opt = optimlab.create(ours, name, **({"ortho_backend": "svd"} if svd else {}), **hp)
    for _ in range(steps):
        for p, r, st in zip(ours, refs, states):
            grad = torch.randn(p.shape, generator=g, dtype=torch.float64) + 0.3 * p.detach()  # iterate-dependent
            p.grad = grad
            ref_step(r, grad.clone(), st, **ref_hp)
        opt.step()
    return ours, refs, starts, states


def rel_diff(ours, refs, starts):
    return max(((p.detach() - r).norm() / (r - s).norm()).item() for p, r, s in zip(ours, refs, starts))


def check(name, hp, ref_step, ref_hp, wrong_hp, **kw):
    """Parity with the reference, and a wrong reference (``ref_hp`` updated by ``wrong_hp``) that is far off."""
    ours, refs, starts, states = run_both(name, hp, ref_step, ref_hp, **kw)
    assert rel_diff(ours, refs, starts) < TOL
    ours_w, refs_w, starts_w, _ = run_both(name, hp, ref_step, {**ref_hp, **wrong_hp}, **kw)
    assert rel_diff(ours_w, refs_w, starts_w) > 1e-3, "the parity test cannot tell this variant apart"
    return states


@pytest.mark.parametrize("nesterov", [False, True])
def test_normuon_matches_algorithm_1(nesterov):
    hp = dict(lr=0.01, momentum=0.9, beta2=0.9, eps=1e-8, weight_decay=0.1, nesterov=nesterov)
    ref = dict(lr=0.01, beta1=0.9, beta2=0.9, eps=1e-8, wd=0.1, nesterov=nesterov)
    check("normuon", hp, normuon_step, ref, {"beta2": 0.5})


def test_normuon_newton_schulz_path_matches_reference_with_the_same_iteration():
    hp = dict(lr=0.01, momentum=0.9, beta2=0.9, eps=1e-8, weight_decay=0.1, ns_dtype="float64", ns_steps=5,
              ns_coefficients="jordan")
    ns = functools.partial(newton_schulz, steps=5, schedule="jordan", dtype=torch.float64, eps=1e-8)
    ref = dict(lr=0.01, beta1=0.9, beta2=0.9, eps=1e-8, wd=0.1, orth=ns)
    check("normuon", hp, normuon_step, ref, {"orth": functools.partial(ns, steps=4)}, svd=False)


def test_adamuon_matches_paper():
    hp = dict(lr=0.01, momentum=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1)
    ref = dict(lr=0.01, beta1=0.9, beta2=0.99, eps=1e-8, wd=0.1)
    check("adamuon", hp, adamuon_step, ref, {"beta2": 0.5})


@pytest.mark.parametrize("gamma", [10.0, 2.0])  # 2.0: the clip min(‖G‖, γ) is active (‖G‖ ≈ 5 here)
def test_adago_matches_paper(gamma):
    hp = dict(lr=0.05, momentum=0.9, gamma=gamma, min_step=1e-3, v0=0.5, weight_decay=0.1)
    ref = dict(lr=0.05, mu=0.9, gamma=gamma, eps=1e-3, v0=0.5, wd=0.1)
    check("adago", hp, adago_step, ref, {"v0": 2.0})


def test_adago_step_floor_matches_paper():
    hp = dict(lr=0.05, momentum=0.9, gamma=10.0, min_step=0.02, v0=1e-6, weight_decay=0.0)
    ref = dict(lr=0.05, mu=0.9, gamma=10.0, eps=0.02, v0=1e-6)
    check("adago", hp, adago_step, ref, {"eps": 1e-3})


@pytest.mark.parametrize("mode", ["r", "c", "rc"])
@pytest.mark.parametrize("adjust", ["original", "match_rms_adamw"])
def test_muoneq_matches_authors_rule(mode, adjust):
    """Ours keeps an EMA momentum, the authors' code a sum: equal after equilibration up to eq_eps (0 here)."""
    hp = dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1, equilibrate=mode, eq_eps=0.0,
              adjust_lr_fn=adjust)
    ref = dict(lr=0.01, mu=0.9, wd=0.1, mode=mode, eps=0.0, adjust=adjust)
    check("muoneq", hp, muoneq_step, ref, {"mode": {"r": "c", "c": "r", "rc": "r"}[mode]})


def test_muoneq_with_default_eq_eps_differs_from_the_sum_form_only_by_eq_eps():
    hp = dict(lr=0.01, momentum=0.9, weight_decay=0.1)
    ours, refs, starts, _ = run_both("muoneq", hp, muoneq_step, dict(lr=0.01, mu=0.9, wd=0.1))
    assert rel_diff(ours, refs, starts) < 1e-7  # measured 3e-9: ε = 1e-8 against row norms² ~ 1e-2 ... 1


def test_mimuon_matches_paper_on_both_branches():
    """τ = 0.05 sits inside the range of singular-value gaps met here: the run differs both from τ = 0 (always
    orthogonalize) and from τ = inf (never), so each branch was taken and matched."""
    hp = dict(lr=0.01, momentum=0.9, gap_threshold=0.05, weight_decay=0.1)
    ref = dict(lr=0.01, beta=0.9, tau=0.05, wd=0.1)
    check("mimuon", hp, mimuon_step, ref, {"tau": 0.0})
    check("mimuon", hp, mimuon_step, ref, {"tau": math.inf})


@pytest.mark.parametrize("norm", ["spectral", "frobenius", "linf"])
def test_trust_region_matches_paper(norm):
    hp = dict(lr=0.01, momentum=0.9, norm=norm, weight_decay=0.1)
    ref = dict(lr=0.01, beta=0.9, norm=norm, wd=0.1)
    other = {"spectral": "frobenius", "frobenius": "linf", "linf": "spectral"}[norm]
    check("trust_region", hp, trust_region_step, ref, {"norm": other})


def test_clion_matches_paper_on_both_branches():
    shapes = [(6, 5), (5,), (3, 2, 2)]
    hp = dict(lr=0.01, betas=(0.9, 0.99), sign_threshold=2e-3, weight_decay=0.5)
    ref = dict(lr=0.01, beta1=0.9, beta2=0.99, nu=2e-3, wd=0.5)
    check("clion", hp, clion_step, ref, {"nu": 0.0}, shapes=shapes, svd=False)
    check("clion", hp, clion_step, ref, {"nu": 1.0}, shapes=shapes, svd=False)
