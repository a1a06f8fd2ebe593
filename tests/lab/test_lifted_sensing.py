"""The lifted matrix sensing task (``lifted_matrix_sensing``) and the arXiv ids filled by helper "lifted".

The claim's fast protocol runs in test_claims.py; here the deterministic pieces: the lifted measurement
operator against explicit Kronecker sensing matrices, the δ = 1/2 instance's RIP constant, stationarity and
exact curvature of the spurious points before and after lifting.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from optimlab.diagnostics.spectrum import exact_spectrum
from optimlab.lab.claims import get_claim
from optimlab.lab.tasks import get_task
from optimlab.lab.tasks.base import generator
from optimlab.lab.tasks.lifted_sensing import lift, lifted_measure, pmc_operator, zhang_operator


def _grad(inst, w):
    x = w.clone().requires_grad_(True)
    return torch.autograd.grad(inst.objective(x), x)[0]


def _spectrum(inst, w):
    with torch.no_grad():
        inst.model.w.copy_(w)
    return exact_spectrum(inst.model, inst.loss, [()]).eigenvalues


@pytest.mark.parametrize("order", [1, 2, 3])
def test_lifted_measure_matches_explicit_kronecker_sensing_matrices(order):
    g = torch.Generator().manual_seed(order)
    a = torch.randn(3, 2, 2, generator=g, dtype=torch.float64)
    a = a + a.transpose(1, 2)
    w = torch.randn(2 ** order, generator=g, dtype=torch.float64)  # a general tensor, not a Kronecker power
    expected = []
    for idx in itertools.product(range(3), repeat=order):
        big = a[idx[0]]
        for i in idx[1:]:
            big = torch.kron(big, a[i])
        expected.append(w @ big @ w)
    assert torch.allclose(lifted_measure(a, w, order), torch.stack(expected), atol=1e-12)
    x = torch.randn(2, generator=g, dtype=torch.float64)
    assert torch.allclose(lifted_measure(a, lift(x, order), order), lift(lifted_measure(a, x, 1), order), atol=1e-12)


def test_zhang_instance_has_rip_constant_one_half():
    a, z, x = zhang_operator()
    # orthonormal basis of symmetric 2x2 matrices; the Gram matrix of the operator on it
    s = 1 / math.sqrt(2)
    basis = [torch.tensor(m, dtype=torch.float64) for m in ([[1, 0], [0, 0]], [[0, 0], [0, 1]], [[0, s], [s, 0]])]
    meas = torch.stack([(a * b).sum((1, 2)) for b in basis], 1)
    ev = torch.linalg.eigvalsh(meas.T @ meas)
    assert torch.allclose(ev, torch.tensor([0.5, 1.5, 1.5], dtype=torch.float64), atol=1e-12)


def test_zhang_spurious_point_is_second_order_critical_and_lifts_to_a_strict_saddle():
    inst = get_task("lifted_matrix_sensing", instance="zhang", order=1, start="spurious", perturbation=0.0).build(0)
    assert inst.objective(inst.spurious) == pytest.approx(3 / 8)
    assert _grad(inst, inst.spurious).norm() < 1e-14
    assert torch.allclose(_spectrum(inst, inst.spurious), torch.tensor([0.0, 2.0], dtype=torch.float64), atol=1e-12)
    for order in (2, 3):
        inst = get_task("lifted_matrix_sensing", instance="zhang", order=order, start="spurious",
                        perturbation=0.0).build(0)
        w = inst.lifted_spurious
        assert _grad(inst, w).norm() < 1e-14  # stays stationary
        # along u = e1^{⊗l} the curvature is 4(3/8)^l + 2(1/4)^l − 2 (worked out by hand); it is the minimum
        along = 4 * (3 / 8) ** order + 2 * (1 / 4) ** order - 2
        ev = _spectrum(inst, w)
        assert float(ev[0]) == pytest.approx(along, abs=1e-12) and along < -1
        u = inst.lifted_truth
        hu = torch.autograd.functional.hvp(inst.objective, w, u)[1]
        assert float(u @ hu) == pytest.approx(along, abs=1e-12)


def test_pmc_spurious_point_is_a_strict_local_min_until_lifted():
    a, z, x = pmc_operator(4, 0.5)
    assert x[1] == 0 and x[3] == 0 and x[0] > 0 > x[2]  # the sign pattern of z with one sign flipped
    inst = get_task("lifted_matrix_sensing", instance="pmc", n=4, eps=0.5, order=1, start="spurious",
                    perturbation=0.0).build(0)
    assert _grad(inst, inst.spurious).norm() < 1e-12 and float(inst.objective(inst.spurious)) > 0.1
    assert float(_spectrum(inst, inst.spurious)[0]) > 0.5
    lifted = get_task("lifted_matrix_sensing", instance="pmc", n=4, eps=0.5, order=2, start="spurious",
                      perturbation=0.0).build(0)
    assert _grad(lifted, lifted.lifted_spurious).norm() < 1e-12
    assert float(_spectrum(lifted, lifted.lifted_spurious)[0]) < -1.0
    # the global solution of the lift is the lifted truth (zero loss)
    assert float(lifted.objective(lifted.lifted_truth)) < 1e-28


def test_starts_and_metrics():
    near = get_task("lifted_matrix_sensing", start="spurious", perturbation=1e-3).build(3)
    m = near.evaluate()
    assert m["spurious_dist"] == pytest.approx(1e-3, rel=1e-9) and m["dist"] > 1.0
    rand = get_task("lifted_matrix_sensing").build(3)
    u = torch.randn(4, dtype=torch.float64, generator=generator(3, "init"))
    assert torch.equal(rand.model.w.detach(), 0.5 * u / 2)  # N(0, init_scale² / n^l) entrywise, from the seed
    assert rand.model.w.dtype == torch.float64 and rand.model.w.numel() == 4


@pytest.mark.parametrize("options, option", [
    (dict(instance="nope"), "instance"), (dict(instance="pmc", n=2), "n"), (dict(order=0), "order"),
    (dict(order=11), "order"), (dict(instance="pmc", n=4, order=6), "order"), (dict(eps=0.0), "eps"),
    (dict(start="x"), "start"), (dict(init_scale=0.0), "init_scale"), (dict(perturbation=-1.0), "perturbation"),
])
def test_bad_options_name_the_option(options, option):
    with pytest.raises(ValueError, match=option):
        get_task("lifted_matrix_sensing", **options)


def test_arxiv_ids_filled_from_stored_copies():
    for cid, arxiv in (("lifted-spurious-strict-saddle", "2302.07828"), ("tubal-small-init", "2410.16247"),
                       ("gn-smoothness-linear-rate", "2506.13710"),
                       ("langevin-averaging-sample-complexity", "2603.06028")):
        assert get_claim(cid).arxiv == arxiv
