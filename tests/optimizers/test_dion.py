"""Dion: parity with Algorithm 1 of the paper, error feedback, low rank, and the approach to Muon at full rank."""

import math

import pytest
import torch
from torch import nn

import optimlab
from optimlab.linalg import polar_svd
from optimlab.reference import dion_step
from optimlab.transforms.lowrank import dion_initial_q, dion_rank

F64 = torch.float64



def start(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(*s, generator=g, dtype=F64) / math.sqrt(s[1])) for s in shapes]


def run_reference(shapes, rank_fraction, mu, steps=12):
    """The optimizer and Algorithm 1 on the same gradients (which depend on the iterate)."""
    ours = start(shapes)
    refs = [p.detach().clone() for p in ours]
    states = [{"Q": dion_initial_q(p.shape, rank_fraction, 4, F64, p.device)} for p in ours]
    opt = optimlab.create(ours, "dion", lr=0.05, momentum=0.9, weight_decay=0.1, rank_fraction=rank_fraction,
                          q_seed=4)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p, r, st in zip(ours, refs, states):
            grad = torch.randn(p.shape, generator=g, dtype=F64) + 0.3 * p.detach()
            p.grad = grad
            dion_step(r, grad.clone(), st, lr=0.05, mu=mu, wd=0.1)
        opt.step()
    return opt, ours, refs, states


@pytest.mark.parametrize("rank_fraction", [1.0, 0.5, 0.2])
def test_dion_matches_algorithm_1(rank_fraction):
    shapes = [(8, 6), (6, 9), (8, 6), (5, 5)]
    opt, ours, refs, states = run_reference(shapes, rank_fraction, mu=0.9)
    for p, r, st in zip(ours, refs, states):
        assert ((p.detach() - r).norm() / r.norm()).item() < 1e-10
        torch.testing.assert_close(opt.state[p]["dion.momentum_buffer"], st["M"], rtol=1e-9, atol=1e-12)
        assert opt.state[p]["dion.Q"].shape == (p.shape[1], dion_rank(p.shape, rank_fraction))
    if rank_fraction == 0.5:  # the parity is not vacuous: another μ in the error feedback is caught
        _, ours, refs, _ = run_reference(shapes, rank_fraction, mu=0.5)
        assert max(((p.detach() - r).norm() / r.norm()).item() for p, r in zip(ours, refs)) > 1e-4


def test_dion_rank_rule():
    assert dion_rank(torch.Size([8, 6]), 1.0) == 6
    assert dion_rank(torch.Size([8, 6]), 0.5) == 3
    assert dion_rank(torch.Size([8, 6]), 0.01) == 1
    assert dion_rank(torch.Size([4, 2, 3, 3]), 0.25) == 1  # conv kernels: min(4, 18) = 4


def test_error_feedback_keeps_what_the_low_rank_step_missed():
    """With μ = 0 the buffer after a step is exactly the part of B outside span(P)."""
    w = nn.Parameter(torch.zeros(7, 5, dtype=F64))
    opt = optimlab.create([w], "dion", lr=1.0, momentum=0.0, weight_decay=0.0, rank_fraction=0.4)
    G = torch.randn(7, 5, dtype=F64)
    w.grad = G
    opt.step()
    P, _ = torch.linalg.qr(G @ dion_initial_q(w.shape, 0.4, 0, F64, w.device))  # the step's left basis
    torch.testing.assert_close(opt.state[w]["dion.momentum_buffer"], G - P @ P.T @ G, atol=1e-12, rtol=0)
    assert torch.linalg.matrix_rank(w.detach()) == 2  # rank r = ceil(0.4 · 5)


def test_full_rank_dion_approaches_muon_direction():
    """At full rank the buffer is heavy-ball momentum and the warm-started power iteration aligns P with
    its singular vectors, so P Qᵀ → polar(B): not equal at step 1, equal to ~1e-10 after 60 steps."""
    w = nn.Parameter(torch.zeros(9, 6, dtype=F64))
    opt = optimlab.create([w], "dion", lr=1.0, momentum=0.9, weight_decay=0.0)
    # a constant gradient with well separated singular values (1..6), so the iteration converges fast
    U, _ = torch.linalg.qr(torch.randn(9, 6, dtype=F64))
    V, _ = torch.linalg.qr(torch.randn(6, 6, dtype=F64))
    G = U @ torch.diag(torch.arange(6, 0, -1, dtype=F64)) @ V.T
    target = polar_svd(G) * math.sqrt(9 / 6)
    errors = []
    for _ in range(60):
        before = w.detach().clone()
        w.grad = G
        opt.step()
        errors.append(((before - w.detach()) - target).norm().item() / target.norm().item())
    assert errors[0] > 1e-2 and errors[-1] < 1e-8 and errors[-1] < errors[10] < errors[0]


def test_zero_gradient_gives_no_nan_and_no_step():
    w = nn.Parameter(torch.ones(6, 4))
    opt = optimlab.create([w], "dion", weight_decay=0.0, rank_fraction=0.5)
    w.grad = torch.zeros(6, 4)
    opt.step()
    assert torch.equal(w.detach(), torch.ones(6, 4))
    assert all(torch.isfinite(v).all() for v in opt.state[w].values() if isinstance(v, torch.Tensor))


def test_conv_kernels_are_flattened():
    w = nn.Parameter(torch.randn(4, 2, 3, 3))
    opt = optimlab.create([w], "dion", lr=0.1, rank_fraction=0.5)
    w.grad = torch.randn(4, 2, 3, 3)
    w0 = w.detach().clone()
    opt.step()
    step = (w0 * (1 - 0.1 * 0.01) - w.detach()).reshape(4, 18)
    assert torch.linalg.matrix_rank(step, atol=1e-5) == 2
    assert opt.state[w]["dion.Q"].shape == (18, 2)
