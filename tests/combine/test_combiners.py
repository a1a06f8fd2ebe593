"""Every combiner against its literal reference; UPGrad's non-conflict property; torchjd cross-check; state."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from optimlab.combine import ODICE, Bloop, PCGrad, PrimalDual, Sum, UPGrad, iwrm_backward, jacobian
from optimlab.reference.combine import (bloop_ref, odice_ref, pcgrad_ref, primal_dual_ref, sum_ref,
                                        upgrad_ref)


def rows(J):
    return [r.numpy().copy() for r in J]


def rand_J(m, n, seed):
    return torch.randn(m, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_sum_and_odice_match_reference():
    for seed in range(5):
        J = rand_J(3, 20, seed)
        np.testing.assert_allclose(Sum().combine(J).numpy(), sum_ref(rows(J)), rtol=1e-13, atol=1e-13)
        J2 = J[:2]
        np.testing.assert_allclose(ODICE(0.7).combine(J2).numpy(), odice_ref(*rows(J2), 0.7), rtol=1e-12, atol=1e-12)
    # the backward part is orthogonal to the forward one
    J = rand_J(2, 10, 9)
    d = ODICE(1.0).combine(J)
    assert abs(float((d - J[0]) @ J[0])) < 1e-10


def test_pcgrad_matches_reference_over_steps_and_resumes():
    pc, other = PCGrad(seed=3), PCGrad(seed=3)
    for step in range(6):
        J = rand_J(4, 15, step)
        orders = pc.orders(4)
        np.testing.assert_allclose(pc.combine(J).numpy(), pcgrad_ref(rows(J), orders), rtol=1e-12, atol=1e-12)
    other.load_state_dict(pc.state_dict())
    J = rand_J(4, 15, 99)
    assert torch.equal(pc.combine(J), other.combine(J))


def test_pcgrad_removes_conflicts_between_two_gradients():
    J = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    d = PCGrad().combine(J)
    # g1' = g1 - (<g1,g2>/|g2|^2) g2 = (0.5, 0.5); g2' = g2 - (<g2,g1>/|g1|^2) g1 = (0, 1)
    torch.testing.assert_close(d, torch.tensor([0.5, 1.5], dtype=torch.float64))


def test_bloop_matches_reference_and_state_round_trips():
    b, state = Bloop(lam=0.3, rho=0.2), {}
    seq = [rand_J(2, 12, s) for s in range(5)]
    for J in seq[:3]:
        np.testing.assert_allclose(b.combine(J).numpy(), bloop_ref(*rows(J), state, 0.3, 0.2), rtol=1e-12, atol=1e-12)
    sd = b.state_dict()
    c = Bloop(lam=0.3, rho=0.2)
    c.load_state_dict(sd)
    for J in seq[3:]:
        assert torch.equal(b.combine(J), c.combine(J))
    # with rho = 1 the projection is exactly orthogonal to the current training gradient
    J = rand_J(2, 12, 7)
    d = Bloop(lam=1.0, rho=1.0).combine(J)
    assert abs(float((d - J[0]) @ J[0])) < 1e-10


@pytest.mark.parametrize("bad, err, msg", [
    ("not a dict", TypeError, "must be a dict"),
    ({"combiner": "bloop"}, ValueError, "state dict keys"),
    ({"combiner": "pcgrad", "lam": 0.1, "rho": 0.01, "steps": 0, "ema": None}, ValueError, "saved by combiner"),
    ({"combiner": "bloop", "lam": 0.5, "rho": 0.01, "steps": 0, "ema": None}, ValueError, "lam=0.5"),
    ({"combiner": "bloop", "lam": 0.1, "rho": 0.01, "steps": 3, "ema": None}, ValueError, "'ema' is missing"),
    ({"combiner": "bloop", "lam": 0.1, "rho": 0.01, "steps": 1, "ema": torch.zeros(2, 2)}, TypeError, "1-D"),
    ({"combiner": "bloop", "lam": 0.1, "rho": 0.01, "steps": 1, "ema": torch.tensor([float("nan")])},
     ValueError, "non-finite"),
    ({"combiner": "bloop", "lam": 0.1, "rho": 0.01, "steps": -1, "ema": None}, ValueError, "steps"),
])
def test_bloop_rejects_bad_state(bad, err, msg):
    with pytest.raises(err, match=msg):
        Bloop().load_state_dict(bad)


def test_bloop_rejects_state_of_another_size():
    b = Bloop()
    b.combine(rand_J(2, 5, 0))
    c = Bloop()
    c.combine(rand_J(2, 6, 0))
    with pytest.raises(ValueError, match=r"saved 'ema' is \(5,\)"):
        c.load_state_dict(b.state_dict())
    with pytest.raises(ValueError, match="the EMA has 5 elements"):
        b.combine(rand_J(2, 6, 1))


def test_primal_dual_matches_reference_and_multipliers_stay_nonnegative():
    pd, state = PrimalDual(levels=[0.5, 1.0], dual_lr=0.3), {}
    for s in range(6):
        J = rand_J(3, 8, s)
        values = torch.tensor([1.0, 0.5 + np.sin(s), 1.0 - 0.4 * s], dtype=torch.float64)
        ref = primal_dual_ref(rows(J), values.tolist(), state, [0.5, 1.0], 0.3)
        np.testing.assert_allclose(pd.combine(J, values).numpy(), ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(pd.multipliers.numpy(), state["mu"], rtol=1e-12, atol=1e-15)
    assert (pd.multipliers >= 0).all()
    q = PrimalDual(levels=[0.5, 1.0], dual_lr=0.3)
    q.load_state_dict(pd.state_dict())
    assert torch.equal(q.multipliers, pd.multipliers)
    bad = pd.state_dict()
    bad["multipliers"] = torch.tensor([-1.0, 0.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="finite and >= 0"):
        q.load_state_dict(bad)


def test_upgrad_matches_primal_reference():
    for seed in range(4):
        J = rand_J(5, 12, seed)
        np.testing.assert_allclose(UPGrad().combine(J).numpy(), upgrad_ref(rows(J)), rtol=1e-5, atol=1e-6)
    J = rand_J(3, 12, 11)
    np.testing.assert_allclose(UPGrad(pref=[0.2, 0.5, 0.3]).combine(J).numpy(),
                               upgrad_ref(rows(J), [0.2, 0.5, 0.3]), rtol=1e-5, atol=1e-6)


def test_upgrad_never_conflicts_on_1000_random_jacobians():
    gen = torch.Generator().manual_seed(0)
    worst = float("inf")
    for _ in range(1000):
        J = torch.randn(8, 50, generator=gen, dtype=torch.float64)
        worst = min(worst, float((J @ UPGrad().combine(J)).min()))
    assert worst >= -1e-9, worst


def test_upgrad_rank_deficient_and_nonconflicting_cases():
    g = rand_J(1, 10, 0)[0]
    # duplicated and opposite rows: rank-deficient Gramian, still no conflict
    J = torch.stack([g, g, -0.5 * g + rand_J(1, 10, 1)[0], 2 * g])
    d = UPGrad().combine(J)
    assert float((J @ d).min()) >= -1e-9
    # no conflicts at all: UPGrad is the mean
    J = torch.rand(4, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(UPGrad().combine(J), J.mean(0))
    # all-zero Jacobian: zero direction
    assert torch.equal(UPGrad().combine(torch.zeros(3, 4, dtype=torch.float64)), torch.zeros(4, dtype=torch.float64))


def test_upgrad_agrees_with_torchjd():
    from torchjd._linalg._dual_cone import QuadprogProjector
    from torchjd.aggregation import UPGrad as TorchJDUPGrad

    worst_exact, worst_default = 0.0, 0.0
    for seed in range(50):
        J = rand_J(8, 50, seed)
        d = UPGrad().combine(J)
        exact = TorchJDUPGrad(projector=QuadprogProjector(norm_eps=0.0, reg_eps=0.0))(J)
        default = TorchJDUPGrad()(J)
        worst_exact = max(worst_exact, float((d - exact).norm() / d.norm()))
        worst_default = max(worst_default, float((d - default).norm() / d.norm()))
    # torchjd unregularised (quadprog): the same QP, the same answer
    assert worst_exact < 1e-10, worst_exact
    # torchjd's default adds 1e-4 to the normalised Gramian's diagonal: ~1e-4 relative difference
    assert worst_default < 5e-3, worst_default


def test_backward_writes_grad_like_autograd_for_sum():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    x = torch.randn(5, 4)
    losses = lambda: [model(x).pow(2).mean(), model(x)[:, 0].sum(), (model(x) - 1).abs().mean()]  # noqa: E731
    sum(losses()).backward()
    want = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    Sum().backward(losses(), model)
    for p, w in zip(model.parameters(), want):
        torch.testing.assert_close(p.grad, w)
    # accumulates like backward()
    Sum().backward(losses(), model)
    for p, w in zip(model.parameters(), want):
        torch.testing.assert_close(p.grad, 2 * w)


def test_any_optimizer_steps_on_the_combined_direction():
    import optimlab

    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optimlab.create(model.parameters(), "adamw", lr=1e-2)
    x = torch.randn(8, 3)
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    UPGrad().backward([model(x)[:, 0].pow(2).mean(), (model(x)[:, 1] - 1).pow(2).mean()], model)
    opt.step()
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_iwrm_matches_upgrad_on_the_autograd_jacobian():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))
    d, losses = iwrm_backward(model, nn.functional.cross_entropy, x, y)
    per = nn.functional.cross_entropy(model(x), y, reduction="none")
    J = jacobian(per, model)
    torch.testing.assert_close(d, UPGrad().combine(J), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(losses, per.detach())
    flat = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(flat, d)


def test_bad_input_names_the_problem():
    model = nn.Linear(2, 2)
    extra = nn.Parameter(torch.zeros(3))
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="list of losses is empty"):
        UPGrad().backward([], model)
    with pytest.raises(ValueError, match=r"loss 1 has shape \(4, 2\); each loss must be a scalar"):
        Sum().backward([model(x).sum(), model(x)], model)
    with pytest.raises(ValueError, match=r"loss 0 does not depend on parameter 'param 2 \(3,\)'"):
        Sum().backward([model(x).sum()], [model.weight, model.bias, extra])
    with pytest.raises(ValueError, match="loss 0 does not require grad"):
        Sum().backward([torch.tensor(1.0)], model)
    with pytest.raises(ValueError, match="needs exactly 2 losses"):
        Bloop().backward([model(x).sum()], model)
    with pytest.raises(ValueError, match="needs exactly 3 losses"):
        PrimalDual(levels=[0.1, 0.2]).backward([model(x).sum()], model)
    with pytest.raises(ValueError, match="rho must be in"):
        Bloop(rho=0.0)
    with pytest.raises(TypeError, match="lam must be a number"):
        Bloop(lam="big")
    # allow_unused treats the missing gradient as zero
    d = Sum().backward([model(x).sum()], [model.weight, model.bias, extra], allow_unused=True)
    assert torch.equal(extra.grad, torch.zeros(3)) and d.shape == (9,)
    # a loss on a named module parameter says which
    m2 = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="does not depend on parameter '1.weight'"):
        Sum().backward([m2[0](x).sum()], m2)
