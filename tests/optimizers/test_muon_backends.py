"""Turbo-Muon and Freon against their transcriptions; the new orthogonalization options of Muon's recipe."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import optimlab
from models import CNN, TinyGPT
from optimlab.linalg import newton_schulz, polar_svd
from optimlab.reference.spectral_maps import freon_step, turbo_muon_step

F64 = torch.float64
SHAPES = [(12, 20), (20, 12), (16, 16), (6, 3, 3, 3)]


def run_both(name, hp, ref_step, ref_hp, steps=12, seed=0):
    """Our optimizer (engine path, float64 params) and the reference, on gradients that depend on the
    iterate, over ``steps`` steps; returns both parameter lists."""
    g = torch.Generator().manual_seed(seed)
    ours = [nn.Parameter(torch.randn(*s, generator=g, dtype=F64)) for s in SHAPES]
    refs = [p.detach().clone() for p in ours]
    states = [{} for _ in refs]
    opt = optimlab.create(ours, name, **hp)
    for _ in range(steps):
        for p, r, st in zip(ours, refs, states):
            grad = torch.randn(p.shape, generator=g, dtype=F64) + 0.5 * p.detach()
            p.grad = grad
            ref_step(r, grad.clone(), st, **ref_hp)
        opt.step()
    return ours, refs


def max_rel(ours, refs):
    return max(((p.detach() - r).norm() / r.norm()).item() for p, r in zip(ours, refs))


@pytest.mark.parametrize("nesterov", [True, False])
def test_turbo_muon_matches_transcription(nesterov):
    hp = dict(lr=0.05, momentum=0.9, nesterov=nesterov, weight_decay=0.1, ns_dtype="float64")
    ours, refs = run_both("turbo_muon", hp, turbo_muon_step,
                          dict(lr=0.05, momentum=0.9, nesterov=nesterov, weight_decay=0.1))
    assert max_rel(ours, refs) < 1e-10
    # wrong variant: the same 4 "turbo" steps from Muon's Frobenius normalisation
    wrong, _ = run_both("muon", dict(hp, ns_steps=4, ns_coefficients="turbo"), turbo_muon_step,
                        dict(lr=0.05, momentum=0.9, nesterov=nesterov, weight_decay=0.1))
    assert max_rel(wrong, refs) > 1e-3


@pytest.mark.parametrize("q", [0.5, 1.0, 1.5])
@pytest.mark.parametrize("backend", ["qdwh", "svd"])
def test_freon_matches_transcription(q, backend):
    hp = dict(lr=0.02, momentum=0.9, weight_decay=0.05, schatten_q=q, spectral_backend=backend)
    ours, refs = run_both("freon", hp, freon_step, dict(lr=0.02, q=q, momentum=0.9, weight_decay=0.05))
    assert max_rel(ours, refs) < 1e-9  # measured ~1e-14 (svd), ~1e-12 (qdwh)
    if q != 1.0:  # wrong variant: Muon's spectrum
        wrong, _ = run_both("freon", dict(hp, schatten_q=1.0), freon_step,
                            dict(lr=0.02, q=q, momentum=0.9, weight_decay=0.05))
        assert max_rel(wrong, refs) > 1e-3


def test_freon_at_q1_is_muon_with_exact_polar():
    g = torch.Generator().manual_seed(3)
    a = [nn.Parameter(torch.randn(*s, generator=g, dtype=F64)) for s in SHAPES]
    b = [nn.Parameter(p.detach().clone()) for p in a]
    oa = optimlab.create(a, "freon")
    ob = optimlab.create(b, "muon", ortho_backend="svd")
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=g, dtype=F64) for p in a]
        for ps, opt in ((a, oa), (b, ob)):
            for p, gr in zip(ps, grads):
                p.grad = gr.clone()
            opt.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=1e-10, rtol=0)


def test_muon_default_path_unchanged():
    """Defaults of the new options, and one Muon step equal bit for bit to the kernel Muon always called."""
    w = nn.Parameter(torch.randn(24, 40))
    opt = optimlab.create([w], "muon", momentum=0.0, nesterov=False, weight_decay=0.0, lr=0.1)
    grp = opt.param_groups[0]
    assert (grp["ortho_backend"], grp["ns_precondition"], grp["ortho_3d"], grp["gram_restarts"]) == \
        ("newton_schulz", "frobenius", "flatten", (2,))
    w.grad = torch.randn(24, 40)
    before = w.detach().clone()
    opt.step()
    expected = before.add_(newton_schulz(w.grad.unsqueeze(0))[0].float(), alpha=-0.1)  # the engine's op
    assert torch.equal(w.detach(), expected)


def test_ortho_3d_slices_orthogonalizes_each_head():
    g = torch.Generator().manual_seed(4)
    for mode in ("slices", "flatten"):
        w = nn.Parameter(torch.zeros(4, 8, 16, dtype=F64))
        opt = optimlab.create([w], "muon", lr=1.0, momentum=0.0, nesterov=False, weight_decay=0.0,
                              ortho_backend="svd", ortho_3d=mode)
        w.grad = torch.randn(4, 8, 16, generator=g, dtype=F64)
        opt.step()
        if mode == "slices":  # each (8, 16) slice: its own polar factor, scale sqrt(max(1, 8/16)) = 1
            torch.testing.assert_close(-w.detach(), polar_svd(w.grad), atol=1e-12, rtol=0)
        else:  # one (4, 128) matrix, scale 1
            torch.testing.assert_close(-w.detach(), polar_svd(w.grad.reshape(4, -1)).reshape(4, 8, 16),
                                       atol=1e-12, rtol=0)
    # the shape factor follows the slices: (16, 8) slices of a (2, 16, 8) tensor get sqrt(2)
    w = nn.Parameter(torch.zeros(2, 16, 8, dtype=F64))
    opt = optimlab.create([w], "muon", lr=1.0, momentum=0.0, nesterov=False, weight_decay=0.0,
                          ortho_backend="svd", ortho_3d="slices")
    w.grad = torch.randn(2, 16, 8, generator=g, dtype=F64)
    opt.step()
    torch.testing.assert_close(-w.detach(), math.sqrt(2) * polar_svd(w.grad), atol=1e-12, rtol=0)


@pytest.mark.parametrize("hp", [dict(ortho_backend="gram", ns_coefficients="polar_express"),
                                dict(ortho_backend="gram", ns_precondition="aol", ns_steps=4, ns_coefficients="turbo"),
                                dict(ortho_backend="qdwh"), dict(ns_precondition="aol")])
def test_muon_runs_every_backend_on_conv_and_transformer(hp):
    for make in (CNN, TinyGPT):
        torch.manual_seed(0)
        model = make()
        opt = optimlab.create(model, "muon", **hp)
        g = torch.Generator().manual_seed(1)
        before = [p.detach().clone() for p in model.parameters()]
        for _ in range(2):
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        assert all(torch.isfinite(p).all() for p in model.parameters())
        assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


@pytest.mark.parametrize("name, hp, needle", [
    ("muon", dict(gram_restarts=(-1,)), "restarts"),
    ("muon", dict(ns_precondition="spectral"), "ns_precondition"),
    ("muon", dict(ortho_3d="heads"), "ortho_3d"),
    ("freon", dict(schatten_q=0.0), "schatten_q"),
    ("freon", dict(schatten_q=2.5), "schatten_q"),
    ("freon", dict(spectral_backend="eig"), "spectral_backend"),
])
def test_bad_hyperparameters(name, hp, needle):
    with pytest.raises(ValueError) as e:
        optimlab.create([nn.Parameter(torch.zeros(4, 6))], name, **hp)
    assert needle in str(e.value)


def test_describe_names_the_papers():
    assert "arXiv:2512.04632" in optimlab.describe("turbo_muon").paper
    d = optimlab.describe("freon")
    assert "arXiv:2605.11181" in d.paper and "schatten_q" in str(d)
