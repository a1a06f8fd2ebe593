"""Pion, Kaon, AuON, Hybrid-AuON, ROOT, Drop-Muon: parity with their reference transcriptions, and the
property each one is about (spectrum kept, spectrum replaced, subset updated, outliers clipped)."""

import math

import pytest
import torch
from torch import nn

import optimlab
from optimlab.reference import auon_step, drop_muon_step, hybrid_auon_step, kaon_step, pion_step, root_step
from optimlab.transforms.spectral import ROOT_COEFFICIENTS, kaon_noise, linear_quantile, root_coefficients
from optimlab.transforms.subset import active_layers

SHAPES = [(6, 5), (5, 8), (6, 5), (4, 4)]  # tall, wide, a same-shape pair (one batched bucket), square
F64 = torch.float64



def start(shapes=SHAPES, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(*s, generator=g, dtype=F64) / math.sqrt(s[1])) for s in shapes]


def run_parity(name, hp, ref, steps=12, shapes=SHAPES, grad_scale=1.0):
    """The optimizer and ``ref(i, W, g, state, step)`` see the same gradients (which depend on the iterate)."""
    ours = start(shapes)
    refs = [p.detach().clone() for p in ours]
    states = [{} for _ in refs]
    opt = optimlab.create(ours, name, **hp)
    g = torch.Generator().manual_seed(1)
    for t in range(1, steps + 1):
        for i, (p, r, st) in enumerate(zip(ours, refs, states)):
            grad = grad_scale * (torch.randn(p.shape, generator=g, dtype=F64) + 0.3 * p.detach())
            p.grad = grad
            ref(i, r, grad.clone(), st, t)
        opt.step()
    return ours, refs


def assert_close(ours, refs, rtol):
    for p, r in zip(ours, refs):
        err = ((p.detach() - r).norm() / r.norm()).item()
        assert err < rtol, f"relative difference {err:.2e}"


def assert_differs(ours, refs):
    assert max(((p.detach() - r).norm() / r.norm()).item() for p, r in zip(ours, refs)) > 1e-4


# ----------------------------------------------------------------------------- Pion

PION = dict(lr=0.05, betas=(0.9, 0.99), eps=1e-8, rms_target=0.2)


@pytest.mark.parametrize("rotation", ["expm", "cayley", "taylor2"])
def test_pion_matches_reference(rotation):
    ref = lambda i, W, g, st, t: pion_step(W, g, st, lr=0.05, beta1=0.9, beta2=0.99, eps=1e-8, c=0.2,  # noqa: E731
                                           rotation=rotation)
    ours, refs = run_parity("pion", {**PION, "rotation_map": rotation}, ref)
    assert_close(ours, refs, 1e-10)
    if rotation == "expm":  # a wrong sign of the generators is caught
        wrong = lambda i, W, g, st, t: pion_step(W, -g, st, lr=0.05, beta1=0.9, beta2=0.99, eps=1e-8,  # noqa: E731
                                                 c=0.2)
        assert_differs(ours, run_parity("pion", PION, wrong)[1])


def _mlp(dtype=F64):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 12), nn.Tanh(), nn.Linear(12, 2)).to(dtype)


def _train_pion(rotation, steps, lr=0.02):
    model = _mlp()
    opt = optimlab.create(model, "pion", lr=lr, rotation_map=rotation)
    mats = [p for g in opt.param_groups if g["role"] == "matrix" for p in g["params"]]
    sv0 = [torch.linalg.svdvals(p.detach()) for p in mats]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 6, generator=g, dtype=F64)
    y = torch.sin(x[:, :2] * 2) + x[:, 2:4]
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        losses.append(loss.item())
        opt.step()
    drift = max(((torch.linalg.svdvals(p.detach()) - s) / s).abs().max().item() for p, s in zip(mats, sv0))
    return drift, losses


@pytest.mark.parametrize("rotation", ["expm", "cayley"])
def test_pion_keeps_every_singular_value_over_500_steps_and_loss_falls(rotation):
    drift, losses = _train_pion(rotation, 500)
    assert drift < 1e-5, f"relative singular-value drift {drift:.2e}"  # measured: 2e-11 (expm), 5e-13 (cayley)
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    if rotation == "expm":  # the rotations do the work, not only AdamW on the head and biases
        _, frozen = _train_pion(rotation, 500, lr=0.0)
        assert losses[-1] < 0.5 * frozen[-1], (losses[-1], frozen[-1])


def test_pion_taylor2_truncation_drifts_but_little():
    # I + X + X²/2 is orthogonal only to third order: the spectrum moves, by O(lr⁴) per step.
    drift, _ = _train_pion("taylor2", 200)
    assert 1e-12 < drift < 1e-3


def test_pion_one_step_rotates_and_keeps_the_spectrum():
    w = nn.Parameter(torch.randn(5, 3, dtype=F64))
    opt = optimlab.create([w], "pion", lr=0.1)
    w0 = w.detach().clone()
    w.grad = torch.randn(5, 3, dtype=F64)
    opt.step()
    assert not torch.equal(w0, w.detach())
    torch.testing.assert_close(torch.linalg.svdvals(w.detach()), torch.linalg.svdvals(w0), rtol=1e-12, atol=0)
    assert opt.state[w]["pion.exp_avg_out"].shape == (5, 5) and opt.state[w]["pion.exp_avg_in"].shape == (3, 3)


# ----------------------------------------------------------------------------- Kaon

KAON = dict(lr=0.03, momentum=0.9, nesterov=True, weight_decay=0.1, kaon_seed=7, kaon_low=0.2, kaon_high=1.5)


def _kaon_ref(noise, seed=7):
    def ref(i, W, g, st, t):
        kaon_step(W, g, st, lr=0.03, mu=0.9, wd=0.1, nesterov=True, step=t, index=i, seed=seed, low=0.2, high=1.5,
                  noise=noise)
    return ref


def test_kaon_uniform_matches_reference_and_seed_matters():
    ours, refs = run_parity("kaon", KAON, _kaon_ref("uniform"))
    assert_close(ours, refs, 1e-10)
    assert_differs(ours, run_parity("kaon", KAON, _kaon_ref("uniform", seed=8))[1])


def test_kaon_chaotic_matches_reference():
    ours, refs = run_parity("kaon", {**KAON, "kaon_noise": "chaotic"}, _kaon_ref("chaotic"))
    assert_close(ours, refs, 1e-10)


def test_kaon_spectrum_is_the_drawn_noise_and_vectors_are_svds():
    ws = start([(7, 4), (4, 6)])
    w0 = [w.detach().clone() for w in ws]
    opt = optimlab.create(ws, "kaon", lr=1.0, momentum=0.0, nesterov=False, weight_decay=0.0,
                          adjust_lr_fn="none", kaon_seed=3, kaon_low=0.5, kaon_high=2.0)
    g = torch.Generator().manual_seed(2)
    grads = [torch.randn(w.shape, generator=g, dtype=F64) for w in ws]
    for w, gr in zip(ws, grads):
        w.grad = gr.clone()
    opt.step()
    for i, (w, a, gr) in enumerate(zip(ws, w0, grads)):
        step = a - w.detach()  # lr 1: the update itself
        U, S, Vh = torch.linalg.svd(gr, full_matrices=False)
        xi = kaon_noise(3, 1, i, S.numel(), 0.5, 2.0)
        assert ((0.5 <= xi) & (xi <= 2.0)).all() and xi.unique().numel() == xi.numel()
        # In the gradient's singular basis the update is diag(ξ): same vectors, the drawn spectrum.
        torch.testing.assert_close(U.T @ step @ Vh.T, torch.diag(xi), atol=1e-12, rtol=0)


def test_kaon_zero_update_stays_zero():
    w = nn.Parameter(torch.ones(4, 3, dtype=F64))
    opt = optimlab.create([w], "kaon", weight_decay=0.0)
    w.grad = torch.zeros(4, 3, dtype=F64)
    opt.step()
    assert torch.equal(w.detach(), torch.ones(4, 3, dtype=F64))


# ----------------------------------------------------------------------------- AuON

AUON = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05)


def test_auon_matches_reference():
    ref = lambda i, W, g, st, t: auon_step(W, g, st, lr=0.1, mu=0.9, wd=0.05)  # noqa: E731
    ours, refs = run_parity("auon", AUON, ref)
    assert_close(ours, refs, 1e-12)
    assert_differs(ours, run_parity("auon", AUON, lambda i, W, g, st, t: auon_step(W, g, st, lr=0.1, mu=0.5,
                                                                                   wd=0.05))[1])


def test_hybrid_auon_matches_reference():
    ref = lambda i, W, g, st, t: hybrid_auon_step(W, g, st, lr=0.1, mu=0.9, wd=0.05)  # noqa: E731
    ours, refs = run_parity("hybrid_auon", {**AUON, "ns_dtype": "float64"}, ref)
    assert_close(ours, refs, 1e-12)
    plain = run_parity("auon", AUON, ref)[0]  # the Newton–Schulz step is not a no-op
    assert_differs(plain, refs)


def test_auon_step_is_a_spectral_trust_region():
    w = nn.Parameter(torch.zeros(30, 20))
    opt = optimlab.create([w], "auon", lr=1.0, momentum=0.0, nesterov=False, weight_decay=0.0, adjust_lr_fn="none")
    g = torch.randn(30, 20)
    g[0, 0] = 50.0  # a heavy-tailed entry
    w.grad = g
    opt.step()
    U = -w.detach()
    assert torch.linalg.matrix_norm(U, ord=2) < torch.linalg.matrix_norm(U) < 1.0
    G = g / g.norm()
    torch.testing.assert_close(U, G / torch.cosh(G).square().mean().sqrt(), rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- ROOT

ROOT = dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1, ns_dtype="float64")


def test_root_matches_reference():
    ref = lambda i, W, g, st, t: root_step(W, g, st, lr=0.01, mu=0.9, wd=0.1)  # noqa: E731
    ours, refs = run_parity("root", ROOT, ref)
    assert_close(ours, refs, 1e-9)
    half = lambda i, W, g, st, t: root_step(W, g, st, lr=0.01, mu=0.9, wd=0.1, quantile=0.5)  # noqa: E731
    assert_differs(ours, run_parity("root", ROOT, half)[1])


def test_root_coefficients_are_the_published_table():
    assert root_coefficients(2048, 2048) == (3.4916, -4.8224, 2.1095)
    assert root_coefficients(8192, 2048) == root_coefficients(2048, 8192) == (2.9794, -3.6674, 1.6207)
    assert root_coefficients(3072, 2048) == (3.4509, -4.5790, 1.9325)
    assert root_coefficients(2048, 16384) == (3.1943, -3.8221, 1.5322)
    assert root_coefficients(64, 32) == (3.4445, -4.7750, 2.0315) and len(ROOT_COEFFICIENTS) == 4


@pytest.mark.parametrize("q", [0.9, 0.5, 1.0, 0.137])
def test_linear_quantile_matches_torch(q):
    x = torch.randn(3, 101, dtype=F64)
    torch.testing.assert_close(linear_quantile(x, q), torch.quantile(x, q, dim=-1), rtol=0, atol=1e-15)


@pytest.mark.parametrize("quantile", [0.9, 1.0])
def test_root_clips_outliers_before_orthogonalizing(quantile):
    w = nn.Parameter(torch.zeros(8, 8, dtype=F64))
    opt = optimlab.create([w], "root", lr=1.0, momentum=0.0, nesterov=False, weight_decay=0.0,
                          adjust_lr_fn="none", ns_dtype="float64", outlier_quantile=quantile)
    g = torch.randn(8, 8, generator=torch.Generator().manual_seed(0), dtype=F64)
    g[3, 3] = 1e6  # one outlier: unclipped, the normalized momentum is nearly rank one
    w.grad = g
    opt.step()
    s = torch.linalg.svdvals(w.detach())
    if quantile == 1.0:  # ε = max |g|: nothing clipped, the step is the outlier's direction only
        assert s[0] > 0.5 and s[1] < 1e-2
    else:  # clipped: every direction gets an orthogonalized step (Jordan's band is [0.68, 1.2])
        assert s.min() > 0.5 and s.max() < 1.25


# ----------------------------------------------------------------------------- Drop-Muon

DROP = dict(lr=0.05, momentum=0.9, weight_decay=0.1, ortho_backend="svd", subset_seed=5)
LAYERS = [(6, 5), (5, 5), (5, 5), (7, 5), (4, 7)]


@pytest.mark.parametrize("sampling", ["progressive", "independent"])
def test_drop_muon_matches_reference(sampling):
    ours = start(LAYERS)
    refs = [p.detach().clone() for p in ours]
    states = [{} for _ in refs]
    opt = optimlab.create(ours, "drop_muon", subset_sampling=sampling, keep_prob=0.4, **DROP)
    g = torch.Generator().manual_seed(1)
    counts = [0] * len(LAYERS)
    for t in range(1, 13):
        grads = [torch.randn(p.shape, generator=g, dtype=F64) + 0.3 * p.detach() for p in ours]
        for p, gr in zip(ours, grads):
            p.grad = gr.clone()
        before = [p.detach().clone() for p in ours]
        bufs = [opt.state[p]["momentum.momentum_buffer"].clone() if opt.state[p] else None for p in ours]
        opt.step()
        act = drop_muon_step(refs, grads, states, step=t, lr=0.05, mu=0.9, wd=0.1, seed=5, sampling=sampling,
                             keep_prob=0.4)
        assert act == active_layers(5, t, len(LAYERS), sampling, 0.4)
        for i, (p, b0, buf0) in enumerate(zip(ours, before, bufs)):
            buf = opt.state[p]["momentum.momentum_buffer"]
            # exactly the chosen subset moves; the others keep weight and momentum bit for bit
            assert torch.equal(p.detach(), b0) != act[i]
            if not act[i]:
                assert torch.equal(buf, buf0 if buf0 is not None else torch.zeros_like(buf))
            counts[i] += act[i]
        assert_close(ours, refs, 1e-10)
        assert all(opt.state[p]["step"] == t for p in ours)
    if sampling == "progressive":  # a suffix of the layers; the last layer always updates
        assert counts[-1] == 12 and counts == sorted(counts) and counts[0] < 12
    else:
        assert 0 < sum(counts) < 12 * len(LAYERS)


def test_drop_muon_draws_are_reproducible_and_seeded():
    a = [active_layers(0, t, 6, "progressive", 0.5) for t in range(1, 50)]
    assert a == [active_layers(0, t, 6, "progressive", 0.5) for t in range(1, 50)]
    assert a != [active_layers(1, t, 6, "progressive", 0.5) for t in range(1, 50)]
    starts = [row.index(True) for row in a]
    assert set(starts) == set(range(6))  # every start index occurs
    with pytest.raises(ValueError, match="sampling"):
        active_layers(0, 1, 3, "bogus", 0.5)


@pytest.mark.parametrize("name, hp, message", [
    ("kaon", {"kaon_low": 2.0, "kaon_high": 1.0}, "kaon_low must be <= kaon_high"),
    ("kaon", {"kaon_noise": "gaussian"}, "kaon_noise must be one of"),
    ("pion", {"rotation_map": "qr"}, "rotation_map must be one of"),
    ("pion", {"rms_target": 0.0}, r"rms_target must be in \(0, inf\)"),
    ("root", {"outlier_quantile": 0.0}, r"outlier_quantile must be in \(0, 1\]"),
    ("drop_muon", {"keep_prob": 1.5}, r"keep_prob must be in \(0, 1\]"),
    ("drop_muon", {"subset_sampling": "epoch"}, "subset_sampling must be one of"),
    ("dion", {"rank_fraction": 0.0}, r"rank_fraction must be in \(0, 1\]"),
])
def test_bad_hyperparameters_are_named(name, hp, message):
    with pytest.raises(ValueError, match=message):
        optimlab.create(start([(4, 3)]), name, **hp)


@pytest.mark.parametrize("name", ["kaon", "auon", "hybrid_auon", "root"])
def test_flattening_maps_refuse_sliced_3d_scaling(name):
    with pytest.raises(ValueError, match="ortho_3d='slices' is not supported"):
        optimlab.create(start([(4, 3)]), name, ortho_3d="slices")
