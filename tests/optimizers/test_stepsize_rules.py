"""DoG, L-DoG, SPS, Polyak heavy ball, SANIA, AEGD and the induced metric: parity with the literal
transcriptions (float64, 20 steps), the properties their papers state, and training on small lab tasks."""

import math

import pytest
import torch
from torch import nn

import optimlab
from optimlab.reference.parameter_free import dog_step, ldog_step
from optimlab.reference.polyak import aegd_step, induced_metric_step, polyak_hb_step, sania_step, sps_step

SHAPES = [(4, 3), (5,), (2, 2, 3), (3, 4)]


def objective(xs, coef):
    """A smooth positive loss whose gradient depends on x (a quadratic plus log-cosh)."""
    return sum(0.5 * (a * (x - 0.3) ** 2).sum() + 0.1 * torch.log(torch.cosh(2 * x)).sum() for x, a in zip(xs, coef))


def setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    ours = [nn.Parameter(torch.randn(*s, generator=g, dtype=torch.float64)) for s in SHAPES]
    coef = [torch.rand(*s, generator=g, dtype=torch.float64) * 3 + 0.1 for s in SHAPES]
    return ours, [p.detach().clone() for p in ours], coef


def value_and_grad(xs, coef):
    xs = [x.detach().requires_grad_(True) for x in xs]
    f = objective(xs, coef)
    return float(f.detach()), list(torch.autograd.grad(f, xs))


def run(name, hp, ref, steps=20, seed=0, groups=None):
    ours, refs, coef = setup(seed)
    params = ours if groups is None else groups(ours)
    opt = optimlab.create(params, name, **hp)
    state = {}
    for _ in range(steps):
        def closure():
            opt.zero_grad()
            loss = objective(ours, coef)
            loss.backward()
            return loss

        f, gs = value_and_grad(refs, coef)
        ref(refs, gs, f, state)
        opt.step(closure)
    return opt, ours, refs, state


def rel(a, b):
    return float((a - b).norm() / b.norm())


CASES = {
    "dog": ({}, lambda xs, gs, f, st: dog_step(xs, gs, st)),
    "dog_scaled": ({"lr": 0.5, "reps_rel": 1e-3, "eps": 1e-6},
                   lambda xs, gs, f, st: dog_step(xs, gs, st, lr=0.5, reps_rel=1e-3, eps=1e-6)),
    "ldog": ({}, lambda xs, gs, f, st: ldog_step(xs, gs, st.setdefault("per", [{} for _ in xs]))),
    "sps": ({}, lambda xs, gs, f, st: sps_step(xs, gs, f, st)),
    "sps_capped": ({"c": 0.2, "max_step": 0.05, "f_star": 0.1},
                   lambda xs, gs, f, st: sps_step(xs, gs, f, st, c=0.2, max_step=0.05, f_star=0.1)),
    "polyak_momentum": ({}, lambda xs, gs, f, st: polyak_hb_step(xs, gs, f, st)),
    "polyak_momentum_b": ({"momentum": 0.5, "c": 2.0, "lr": 0.7},
                          lambda xs, gs, f, st: polyak_hb_step(xs, gs, f, st, momentum=0.5, c=2.0, lr=0.7)),
    "sania_adagrad_sqr": ({}, lambda xs, gs, f, st: sania_step(xs, gs, f, st)),
    "sania_adam_sqr": ({"beta2": 0.9}, lambda xs, gs, f, st: sania_step(xs, gs, f, st, preconditioner="adam",
                                                                         beta2=0.9)),
    "aegd": ({"lr": 0.3}, lambda xs, gs, f, st: aegd_step(xs, gs, f, st, lr=0.3)),
    "induced_metric": ({"lr": 0.05}, lambda xs, gs, f, st: induced_metric_step(xs, gs, st, lr=0.05)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(case):
    name = case if case in optimlab.available() else case.rsplit("_", 1)[0]
    hp, ref = CASES[case]
    _, ours, refs, _ = run(name, hp, ref)
    for p, r in zip(ours, refs):
        assert rel(p.detach(), r) <= 1e-10, case


def test_dog_is_global_across_param_groups_and_averages():
    """Two param groups (roles) still share one DoG step; the polynomial average matches the reference."""
    groups = lambda ps: [{"params": ps[:2], "role": "vector"}, {"params": ps[2:], "role": "matrix"}]  # noqa: E731
    opt, ours, refs, state = run("dog", {"average": True, "gamma": 8.0},
                                 lambda xs, gs, f, st: dog_step(xs, gs, st, gamma=8.0), groups=groups)
    for p, r in zip(ours, refs):
        assert rel(p.detach(), r) <= 1e-10
    train_point = [p.detach().clone() for p in ours]
    opt.eval()
    for p, xbar in zip(ours, state["xbar"]):
        assert rel(p.detach(), xbar) <= 1e-10
    opt.train()
    assert all(torch.equal(a, p) for a, p in zip(train_point, ours))  # the swap back is exact


def test_aegd_energy_never_increases_even_at_a_huge_step():
    ours, _, coef = setup()
    opt = optimlab.create(ours, "aegd", lr=50.0)
    previous = None
    for _ in range(50):
        def closure():
            opt.zero_grad()
            loss = objective(ours, coef)
            loss.backward()
            return loss
        opt.step(closure)
        r = torch.cat([opt.state[p]["aegd.r"].reshape(-1) for p in ours])
        if previous is not None:
            assert bool((r <= previous).all())
        previous = r
    assert all(torch.isfinite(p).all() for p in ours)


def test_aegd_refuses_a_loss_below_minus_c_with_state_unchanged():
    ours, _, coef = setup()
    opt = optimlab.create(ours, "aegd", c=1.0)

    def closure():
        opt.zero_grad()
        loss = objective(ours, coef) - 1e6
        loss.backward()
        return loss

    before = [p.detach().clone() for p in ours]
    with pytest.raises(ValueError, match=r"aegd: AEGD needs f \+ c > 0"):
        opt.step(closure)
    assert all(torch.equal(a, p) for a, p in zip(before, ours))
    assert not any(opt.state[p] for p in ours)


def test_sania_adam_sqr_is_scale_invariant_where_adam_is_not():
    """Logistic regression on features scaled by diag(s), s ~ 10^U(−2, 2): reparametrising w = w'/s, the loss
    curves of SANIA Adam-SQR coincide (fp64); Adam's do not."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 6, generator=g, dtype=torch.float64)
    y = (X @ torch.randn(6, generator=g, dtype=torch.float64) > 0).double()
    s = 10 ** (torch.rand(6, generator=g, dtype=torch.float64) * 4 - 2)

    def curve(name, features, **hp):
        w = nn.Parameter(torch.zeros(6, dtype=torch.float64))
        opt = optimlab.create([w], name, **hp)
        losses = []
        for _ in range(30):
            def closure():
                opt.zero_grad()
                loss = nn.functional.binary_cross_entropy_with_logits(features @ w, y)
                loss.backward()
                return loss
            losses.append(float(opt.step(closure).detach()))
        return torch.tensor(losses)

    a, b = curve("sania_adam_sqr", X), curve("sania_adam_sqr", X * s)
    assert float((a - b).abs().max() / a.abs().max()) <= 1e-6
    assert float(a[-1]) < 0.8 * float(a[0])
    c, d = curve("adam", X, lr=0.1), curve("adam", X * s, lr=0.1)
    assert float((c - d).abs().max() / c.abs().max()) > 1e-2


def test_induced_metric_bounds_the_step_by_lr_over_two():
    """‖g‖/(1 + ‖g‖²) ≤ 1/2: one step never moves more than lr/2, however large the gradient."""
    w = nn.Parameter(torch.tensor([1e6, -3e5], dtype=torch.float64))
    opt = optimlab.create([w], "induced_metric", lr=1.0)
    before = w.detach().clone()
    w.grad = w.detach() * 10
    opt.step()
    assert float((w.detach() - before).norm()) <= 0.5


# -- training on lab tasks --------------------------------------------------------------------------
TRAIN = {"dog": {}, "ldog": {}, "sps": {}, "polyak_momentum": {}, "sania_adagrad_sqr": {}, "sania_adam_sqr": {},
         "aegd": {}, "induced_metric": {"lr": 0.5}}


@pytest.mark.parametrize("name", sorted(TRAIN))
def test_trains_a_quadratic(name):
    """Lab task quadratic (d = 50, condition 100, rotated), 300 full-batch steps: f falls at least 100×."""
    from optimlab.lab.tasks import get_task

    inst = get_task("quadratic", dim=50, condition=100.0).build(seed=0)
    model = inst.model
    opt = optimlab.create(list(model.parameters()), name, **TRAIN[name])
    batch = inst.batch(0)
    start = float(inst.loss(model, batch))
    for _ in range(300):
        def closure():
            opt.zero_grad()
            loss = inst.loss(model, batch)
            loss.backward()
            return loss
        opt.step(closure)
    end = float(inst.loss(model, batch))
    assert math.isfinite(end) and end < start / 100, f"{name}: {start:.4g} -> {end:.4g}"
