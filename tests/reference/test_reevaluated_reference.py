"""Second-gradient rules (FD-GR, exact GR, IGT, O2NC, SPIDER-NGD, SMB): recipe vs literal reference in fp64."""
import pytest
import torch

import optimlab
from optimlab.optimizers.reevaluated import exact_gr
from optimlab.reference import reevaluated as ref
from optimlab.transforms.reevaluated import OnlineToNonconvex

X = torch.randn(32, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
Y = torch.randn(32, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def loss_of(w, b):
    return torch.nn.functional.softplus(X @ w + b - Y).square().mean()


def grad_fn(xs):
    xs = [x.detach().clone().requires_grad_(True) for x in xs]
    f = loss_of(*xs)
    return float(f.detach()), list(torch.autograd.grad(f, xs))


def hvp_fn(xs, vs):
    xs = [x.detach().clone().requires_grad_(True) for x in xs]
    gs = torch.autograd.grad(loss_of(*xs), xs, create_graph=True)
    return list(torch.autograd.grad(gs, xs, vs))


def init():
    g = torch.Generator().manual_seed(2)
    return [torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)]


def run(recipe, hp, steps, create_graph=False):
    ps = [torch.nn.Parameter(t) for t in init()]
    opt = optimlab.create(ps, recipe, **hp)

    def closure():
        opt.zero_grad()
        loss = loss_of(*ps)
        loss.backward(create_graph=create_graph)
        return loss

    for _ in range(steps):
        opt.step(closure)
    return [p.detach() for p in ps], opt


CASES = {
    "fd_gr": (dict(lr=0.1, gr_gamma=0.2, gr_h=0.05),
              lambda xs, st: ref.fd_gr_step(xs, grad_fn, lr=0.1, gamma=0.2, h=0.05), 2),
    "igt": (dict(lr=0.05, momentum=0.8), lambda xs, st: ref.igt_step(xs, grad_fn, st, lr=0.05, beta=0.8), 2),
    "spider_ngd": (dict(lr=0.05, spider_q=3, norm_power=0.7),
                   lambda xs, st: ref.spider_ngd_step(xs, grad_fn, st, lr=0.05, beta=0.7, q=3), None),
    "smb": (dict(lr=30.0), lambda xs, st: ref.smb_step(xs, grad_fn, lr=30.0, c=1e-4), 2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_recipe_matches_reference(name):
    hp, step, evals = CASES[name]
    steps = 8
    got, opt = run(name, hp, steps)
    xs, st = init(), {}
    for _ in range(steps):
        step(xs, st)
    for a, b in zip(got, xs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    if evals is not None:
        assert opt.closure_evals == evals * steps


def test_smb_rejects_some_trial_steps_at_a_large_lr():
    # the parity case above must exercise both branches: count the Armijo failures on the reference path
    xs, fails = init(), 0
    for _ in range(8):
        f, g = grad_fn(xs)
        f2, _ = grad_fn([x - 30.0 * gi for x, gi in zip(xs, g)])
        fails += f2 > f - 1e-4 * 30.0 * sum(float((gi * gi).sum()) for gi in g)
        ref.smb_step(xs, grad_fn, lr=30.0, c=1e-4)
    assert 0 < fails < 8


def test_o2nc_matches_reference_with_the_same_draws():
    got, opt = run("o2nc", dict(lr=0.05, radius=0.1, seed=4), 8)
    xs, st = init(), {}
    t = OnlineToNonconvex()
    for k in range(1, 9):
        gen = torch.Generator().manual_seed(4 * 1_000_003 + k)
        s = float(torch.rand((), generator=gen, dtype=torch.float64))
        ref.o2nc_step(xs, grad_fn, st, lr=0.05, radius=0.1, s=s)
    for a, b in zip(got, xs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert t.name == "o2nc"


def test_exact_gr_matches_reference_and_fd_gr_approaches_it():
    got, _ = run(exact_gr(), dict(lr=0.1, gr_gamma=0.2), 5, create_graph=True)
    xs = init()
    for _ in range(5):
        ref.exact_gr_step(xs, grad_fn, hvp_fn, lr=0.1, gamma=0.2)
    for a, b in zip(got, xs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    fd, _ = run("fd_gr", dict(lr=0.1, gr_gamma=0.2, gr_h=1e-5), 5)
    for a, b in zip(fd, xs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_udog_matches_reference():
    from optimlab.reference.parameter_free import udog_step

    got, opt = run("udog", dict(), 10)
    shapes = [t.shape for t in init()]
    x = torch.cat([t.reshape(-1) for t in init()])

    def flat_grad(v):
        parts = list(torch.split(v, [s.numel() for s in shapes]))
        return torch.cat([g.reshape(-1) for g in grad_fn([p.view(s) for p, s in zip(parts, shapes)])[1]])

    st = {}
    for _ in range(10):
        udog_step(x, flat_grad, st)
    torch.testing.assert_close(torch.cat([g.reshape(-1) for g in got]), x, rtol=1e-10, atol=1e-12)
    assert opt.closure_evals == 1 + 2 * 9  # step 1: M = the closure's gradient
    assert st["rbar"] > 1e-5  # it moved well beyond r_ε
