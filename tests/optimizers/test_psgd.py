"""PSGD Kron (whitening and HVP variants) against the literal float64 reference; schedule, fit, numerics."""

import copy

import pytest
import torch
from torch import nn

import optimlab
from optimlab.core.engine import ChainOptimizer
from optimlab.linalg import triangular
from optimlab.optimizers.shampoo import psgd_kron_hvp
from optimlab.reference.psgd import psgd_fit, psgd_kron_step
from optimlab.transforms.psgd import (norm_lower_bound, pack_factors, packed_size, unpack_factors,
                                      update_probability)
from optimlab.transforms.subset import step_generator

HP = dict(lr=0.05, momentum=0.9, precond_lr=0.2, clip_rms=1.1, weight_decay=0.1)


@pytest.mark.parametrize("cutoff", [256, 2])  # 2: every triangular product split into blocks
def test_whitening_matches_reference(monkeypatch, cutoff):
    monkeypatch.setattr(triangular, "CUTOFF", cutoff)
    torch.manual_seed(0)
    W0 = torch.randn(6, 4, dtype=torch.float64)
    w = nn.Parameter(W0.clone())
    opt = optimlab.create([w], "psgd_kron", update_prob_flat=100, **HP)
    W, st = W0.clone(), {}
    g = torch.Generator().manual_seed(1)
    for t in range(1, 9):
        G = torch.randn(6, 4, generator=g, dtype=torch.float64)
        w.grad = G.clone()
        opt.step()
        v = torch.randn(6, 4, generator=step_generator(0, t, 0), dtype=torch.float64)
        psgd_kron_step(W, G, st, t=t, v=v, hv=None, **HP)
    torch.testing.assert_close(w.detach(), W, rtol=1e-9, atol=1e-12)
    QL = unpack_factors([opt.state[w]["psgd_kron.Q_L"]], 6, torch.float64)[0]  # stored as its upper triangle
    torch.testing.assert_close(QL, st["QL"], rtol=1e-9, atol=1e-12)
    assert opt.state[w]["psgd_kron.Q_R"].shape == (packed_size(4),)


def test_triangular_factors_are_stored_packed():
    Q = torch.randn(3, 5, 5).triu()
    out = [torch.empty(packed_size(5)) for _ in range(3)]
    pack_factors(Q, out)
    assert torch.equal(out[1], Q[1][tuple(torch.triu_indices(5, 5))])
    assert torch.equal(unpack_factors(out, 5, torch.float32), Q)
    D = torch.randn(2, 5)  # diagonal factors stay vectors of the side length
    assert torch.equal(unpack_factors(list(D), 5, torch.float32), D)
    # state: 4 B/param of momentum + the two triangles (HeavyBall's layout), diagonal sides as vectors
    w = nn.Parameter(torch.randn(10, 3))
    opt = optimlab.create([w], "psgd_kron", max_size_triangular=8)
    w.grad = torch.randn(10, 3)
    opt.step()
    st = opt.state[w]
    assert st["psgd_kron.Q_L"].shape == (10,) and st["psgd_kron.Q_R"].shape == (6,)


def test_hvp_variant_matches_reference_on_a_quadratic():
    torch.manual_seed(0)
    d1, d2 = 4, 3
    Hm = torch.randn(d1 * d2, d1 * d2, dtype=torch.float64)
    Hm = Hm @ Hm.T / 10 + torch.eye(d1 * d2, dtype=torch.float64)
    W0 = torch.randn(d1, d2, dtype=torch.float64)
    w = nn.Parameter(W0.clone())
    opt = ChainOptimizer([{"params": [w], "role": "matrix"}], psgd_kron_hvp())
    for k, val in dict(update_prob_flat=100, **HP).items():
        opt.param_groups[0][k] = val
    W, st = W0.clone(), {}
    for t in range(1, 7):
        def closure():
            opt.zero_grad()
            x = w.reshape(-1)
            loss = 0.5 * x @ Hm @ x
            loss.backward(create_graph=True)
            return loss
        G = (Hm @ W.reshape(-1)).reshape(d1, d2)
        v = torch.randn(d1, d2, generator=step_generator(0, t, 0), dtype=torch.float64)
        opt.step(closure)
        psgd_kron_step(W, G, st, t=t, v=v, hv=(Hm @ v.reshape(-1)).reshape(d1, d2), **HP)
        torch.testing.assert_close(w.detach(), W, rtol=1e-9, atol=1e-12)


def test_fit_whitens_a_kronecker_covariance():
    """Fitting on (v, g) with g ~ N(0, C_L ⊗ C_R) drives P toward the inverse square root of the covariance."""
    g = torch.Generator().manual_seed(0)
    CL = torch.diag(torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64))
    CR = torch.diag(torch.tensor([9.0, 1.0], dtype=torch.float64))
    QL, QR = torch.eye(3, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    for _ in range(3000):
        h = CL.sqrt() @ torch.randn(3, 2, generator=g, dtype=torch.float64) @ CR.sqrt()
        QL, QR = psgd_fit(QL, QR, torch.randn(3, 2, generator=g, dtype=torch.float64), h, 0.02)
    PL, PR = QL.T @ QL, QR.T @ QR
    P = torch.kron(PL, PR)
    target = torch.kron(torch.linalg.inv(CL).sqrt(), torch.linalg.inv(CR).sqrt())
    # the fixed point of E[hᵀPh + vᵀP⁻¹v] with E[vvᵀ] = I is P C P = I: P = C^{-1/2}, scale included
    assert (P - target).norm() / target.norm() < 0.1


def test_update_probability_schedule():
    assert update_probability(1, 1.0, 0.03, 0.001, 500) == 1.0
    assert update_probability(500, 1.0, 0.03, 0.001, 500) == 1.0
    assert abs(update_probability(1500, 1.0, 0.03, 0.001, 500) - torch.e**-1) < 1e-12
    assert update_probability(10**6, 1.0, 0.03, 0.001, 500) == 0.03
    # the fit runs on about p_t of the steps
    w = nn.Parameter(torch.randn(4, 4))
    opt = optimlab.create([w], "psgd_kron", update_prob_max=0.5, update_prob_min=0.5)
    fits = 0
    for _ in range(200):
        w.grad = torch.randn(4, 4)
        before = opt.state[w]["psgd_kron.Q_L"].clone() if opt.state[w] else torch.eye(4)
        opt.step()
        fits += not torch.equal(before, opt.state[w]["psgd_kron.Q_L"])
    assert 70 < fits < 130


def test_norm_lower_bound():
    A = torch.randn(5, 7, 7, dtype=torch.float64)
    A = A @ A.mT
    lb = norm_lower_bound(A).flatten()
    top = torch.linalg.matrix_norm(A, 2)
    assert (lb <= top * (1 + 1e-12)).all() and (lb >= top / 7**0.5).all()
    torch.testing.assert_close(norm_lower_bound(A, bounded=True).flatten(), lb, rtol=1e-12, atol=0)
    assert torch.isfinite(norm_lower_bound(torch.zeros(2, 3, 3))).all()


@pytest.mark.parametrize("kind", ["zero", "rank1", "huge", "tiny"])
def test_degenerate_gradients_give_no_nan(kind):
    w = nn.Parameter(torch.randn(8, 6))
    opt = optimlab.create([w], "psgd_kron", max_size_triangular=7)  # one triangular, one diagonal side
    for _ in range(5):
        g = {"zero": torch.zeros(8, 6), "rank1": torch.randn(8, 1) @ torch.randn(1, 6),
             "huge": (lambda x: x / x.abs().max() * 3e38)(torch.randn(8, 6)), "tiny": torch.randn(8, 6) * 1e-30}[kind]
        w.grad = g
        opt.step()
        assert torch.isfinite(w).all()
        assert all(torch.isfinite(v).all() for k, v in opt.state[w].items() if torch.is_tensor(v) and k != "step")


def test_resume_is_bit_identical():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    opt = optimlab.create(model, "psgd_kron", update_prob_max=0.5, update_prob_min=0.5)
    x, y = torch.randn(16, 6), torch.randn(16, 3)

    def train(m, o, n):
        for _ in range(n):
            o.zero_grad()
            nn.functional.mse_loss(m(x), y).backward()
            o.step()

    train(model, opt, 4)
    sm, so = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    train(model, opt, 6)
    clone = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    clone.load_state_dict(sm)
    opt2 = optimlab.create(clone, "psgd_kron", update_prob_max=0.5, update_prob_min=0.5)
    opt2.load_state_dict(so)
    train(clone, opt2, 6)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), clone.parameters()))


def test_bad_probabilities():
    with pytest.raises(ValueError, match="update_prob_min"):
        optimlab.create([nn.Parameter(torch.randn(3, 3))], "psgd_kron", update_prob_min=0.9, update_prob_max=0.5)
