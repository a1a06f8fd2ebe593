"""Shampoo, SOAP, ASGO and DASGO against their literal float64 references, and their numerics."""

import copy

import pytest
import torch
from torch import nn

import optimlab
from optimlab.reference.shampoo import asgo_step, shampoo_literal_step, shampoo_step, soap_step


def grads(shape, steps, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=dtype) for _ in range(steps)]


def run_ours(name, W0, gs, **hp):
    w = nn.Parameter(W0.clone())
    opt = optimlab.create([w], name, **hp)
    for G in gs:
        w.grad = G.clone()
        opt.step()
    return w.detach(), opt


def test_shampoo_k1_no_grafting_is_the_literal_rule():
    W0 = torch.randn(6, 5, dtype=torch.float64)
    gs = grads((6, 5), 10)
    ours, _ = run_ours("shampoo", W0, gs, lr=0.1, betas=(0.0, 1.0), grafting="none", precondition_frequency=1,
                       matrix_eps=1e-4, weight_decay=0.0)
    W, st = W0.clone(), {}
    for G in gs:
        shampoo_literal_step(W, G, st, lr=0.1, eps=1e-4)
    torch.testing.assert_close(ours, W, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("grafting", ["adam", "none"])
@pytest.mark.parametrize("block, shape", [(1024, (6, 5)), (4, (10, 7)), (3, (2, 3, 3))])
def test_shampoo_matches_reference(grafting, block, shape):
    W0 = torch.randn(shape, dtype=torch.float64)
    gs = grads(shape, 9, seed=1)
    hp = dict(lr=0.05, betas=(0.9, 0.99), matrix_eps=1e-6, eps=1e-8, precondition_frequency=3, block_size=block,
              grafting=grafting, weight_decay=0.1)
    ours, _ = run_ours("shampoo", W0, gs, **hp)
    W, st = W0.clone().reshape(shape[0], -1), {}
    for t, G in enumerate(gs, 1):
        shampoo_step(W, G.reshape(shape[0], -1), st, t=t, lr=0.05, beta1=0.9, beta2=0.99, eps=1e-6, graft_eps=1e-8,
                     k=3, block=block, grafting=grafting, weight_decay=0.1)
    torch.testing.assert_close(ours.reshape(shape[0], -1), W, rtol=1e-9, atol=1e-12)


def test_shampoo_newton_roots_match_eigh():
    W0 = torch.randn(8, 6, dtype=torch.float64)
    gs = grads((8, 6), 6, seed=2)
    a, _ = run_ours("shampoo", W0, gs, root_method="eigh", matrix_eps=1e-6, precondition_frequency=2)
    b, _ = run_ours("shampoo", W0, gs, root_method="newton", matrix_eps=1e-6, precondition_frequency=2)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 5), (4, 9)])
def test_soap_matches_reference(shape):
    W0 = torch.randn(shape, dtype=torch.float64)
    gs = grads(shape, 12, seed=3)
    ours, _ = run_ours("soap", W0, gs, lr=0.01, betas=(0.9, 0.95), shampoo_beta=0.9, eps=1e-8,
                       precondition_frequency=3, weight_decay=0.1)
    W, st = W0.clone(), {}
    for t, G in enumerate(gs, 1):
        soap_step(W, G, st, t=t, lr=0.01, beta1=0.9, beta2=0.95, shampoo_beta=0.9, eps=1e-8, k=3, weight_decay=0.1)
    torch.testing.assert_close(ours, W, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["asgo", "dasgo"])
@pytest.mark.parametrize("shape", [(5, 8), (9, 4)])
def test_asgo_matches_reference(name, shape):
    W0 = torch.randn(shape, dtype=torch.float64)
    gs = grads(shape, 8, seed=4)
    ours, _ = run_ours(name, W0, gs, lr=0.05, betas=(0.9, 0.99), matrix_eps=1e-6, precondition_frequency=3,
                       weight_decay=0.1)
    W, st = W0.clone(), {}
    for t, G in enumerate(gs, 1):
        asgo_step(W, G, st, t=t, lr=0.05, beta1=0.9, beta2=0.99, eps=1e-6, k=3, diagonal=name == "dasgo",
                  weight_decay=0.1)
    torch.testing.assert_close(ours, W, rtol=1e-9, atol=1e-12)


def test_soap_plain_statistics_equal_the_rescaled(monkeypatch):
    """The CPU fast path (no power-of-two rescaling of G Gᵀ at ordinary scales) changes no bit."""
    from optimlab.transforms import soap

    W0 = torch.randn(12, 7)
    gs = grads((12, 7), 8, seed=6, dtype=torch.float32)
    fast, _ = run_ours("soap", W0, gs, precondition_frequency=3)
    monkeypatch.setattr(soap, "_PLAIN", (float("inf"), float("inf")))  # always the rescaled path
    slow, _ = run_ours("soap", W0, gs, precondition_frequency=3)
    assert torch.equal(fast, slow)


def test_soap_cross_check_pytorch_optimizer():
    """Same settings as pytorch_optimizer's SOAP (the reference code's port): wd 0, one matrix, float32."""
    from pytorch_optimizer import SOAP

    torch.manual_seed(0)
    W0 = torch.randn(12, 7)
    gs = grads((12, 7), 25, seed=5, dtype=torch.float32)
    ours, _ = run_ours("soap", W0, gs, lr=3e-3, betas=(0.95, 0.95), shampoo_beta=0.95, eps=1e-8,
                       precondition_frequency=4, weight_decay=0.0)
    w = nn.Parameter(W0.clone())
    ref = SOAP([w], lr=3e-3, betas=(0.95, 0.95), shampoo_beta=0.95, eps=1e-8, precondition_frequency=4,
               weight_decay=0.0)
    for G in gs:
        w.grad = G.clone()
        ref.step()
    # float32 eigh/QR rounding only: the two runs agree to ~1e-6 of the total displacement
    torch.testing.assert_close(ours - W0, w.detach() - W0, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["shampoo", "soap", "asgo", "dasgo"])
def test_resume_mid_interval_is_bit_identical(name):
    """Save between two root/basis refreshes: the cached roots and eigenbases travel in the checkpoint."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    opt = optimlab.create(model, name, precondition_frequency=3)
    x, y = torch.randn(32, 6), torch.randn(32, 3)

    def train(m, o, n, seed):
        g = torch.Generator().manual_seed(seed)
        for _ in range(n):
            idx = torch.randint(0, 32, (8,), generator=g)
            o.zero_grad()
            nn.functional.mse_loss(m(x[idx]), y[idx]).backward()
            o.step()

    train(model, opt, 5, 1)
    sm, so = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    train(model, opt, 5, 2)
    clone = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    clone.load_state_dict(sm)
    opt2 = optimlab.create(clone, name, precondition_frequency=3)
    opt2.load_state_dict(so)
    train(clone, opt2, 5, 2)
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)
    keys = set().union(*(opt.state[p].keys() for p in model.parameters()))
    assert any("root" in k or "Q_" in k for k in keys)


@pytest.mark.parametrize("name", ["shampoo", "soap", "asgo", "dasgo"])
@pytest.mark.parametrize("kind", ["zero", "rank1", "huge", "tiny"])
def test_degenerate_gradients_give_no_nan(name, kind):
    w = nn.Parameter(torch.randn(8, 6))
    opt = optimlab.create([w], name, precondition_frequency=2)
    for t in range(5):
        if kind == "zero":
            g = torch.zeros(8, 6)
        elif kind == "rank1":
            g = torch.randn(8, 1) @ torch.randn(1, 6)
        else:
            x = torch.randn(8, 6)
            g = x / x.abs().max() * (3e38 if kind == "huge" else 1e-30)
        w.grad = g
        opt.step()
        assert torch.isfinite(w).all(), (name, kind, t)
        for k, v in opt.state[w].items():
            if torch.is_tensor(v) and v.is_floating_point():
                assert not v.isnan().any(), (name, kind, k)
    if kind == "zero":  # a zero gradient moves nothing but decay
        assert torch.isfinite(w).all()


def test_shampoo_blocking_state_shapes():
    w = nn.Parameter(torch.randn(10, 7))
    opt = optimlab.create([w], "shampoo", block_size=4)
    w.grad = torch.randn(10, 7)
    opt.step()
    st = opt.state[w]
    assert st["shampoo.L"].shape == (3 * 2, 4, 4) and st["shampoo.R"].shape == (6, 4, 4)
    assert st["shampoo.L_root"].abs().sum() > 0


def test_bad_hyperparameters():
    w = nn.Parameter(torch.randn(4, 4))
    with pytest.raises(ValueError, match=r"betas\[0\]"):
        optimlab.create([w], "shampoo", betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="grafting"):
        optimlab.create([w], "shampoo", grafting="sgd")
    with pytest.raises(ValueError, match="root_method"):
        optimlab.create([w], "asgo", root_method="svd")
    with pytest.raises(ValueError, match="precondition_frequency"):
        optimlab.create([w], "soap", precondition_frequency=0)


def test_shampoo_1d_fallback_is_adam():
    """A vector given the Shampoo chain (matrix role by hand) takes Adam's direction: torch.optim.Adam's step."""
    b0 = torch.randn(7, dtype=torch.float64)
    b, ref = nn.Parameter(b0.clone()), nn.Parameter(b0.clone())
    opt = optimlab.create([{"params": [b], "role": "matrix"}], "shampoo", lr=0.01, weight_decay=0.0)
    adam = torch.optim.Adam([ref], lr=0.01, foreach=False)
    for G in grads((7,), 6, seed=9):
        b.grad, ref.grad = G.clone(), G.clone()
        opt.step()
        adam.step()
    torch.testing.assert_close(b, ref, rtol=1e-12, atol=1e-14)
