"""Sophia-H, OASIS, SANIA-Hutchinson: Hutchinson's estimator, parity with the literal transcriptions (fp64, on a
quadratic whose Hessian is known), training on the lab's digits_mlp, extreme curvature and checkpoints."""

import copy
import math

import pytest
import torch
from torch import nn

import optimlab
from optimlab.lab.tasks import get_task
from optimlab.reference import curvature as ref
from optimlab.transforms.hessian import probe


def quadratic(seed=0, d1=(3, 4), d2=5):
    g = torch.Generator().manual_seed(seed)
    n = d1[0] * d1[1] + d2
    Q = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    eig = torch.logspace(-2, 1, n, dtype=torch.float64)
    eig[:3] *= -1  # indefinite: Sophia clips, OASIS and SANIA take |D|
    A = Q @ torch.diag(eig) @ Q.T
    b = torch.randn(n, generator=g, dtype=torch.float64)
    xs = [nn.Parameter(torch.randn(d1, generator=g, dtype=torch.float64)),
          nn.Parameter(torch.randn(d2, generator=g, dtype=torch.float64))]
    return A, b, xs


def f_of(A, b, x):
    return 0.5 * x @ A @ x - b @ x + 50.0  # positive on the trajectories below: SANIA's gap f − 0 > 0


def flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def hvp_closure(opt, A, b, xs):
    """The closure an HVP recipe steps with: f at xs, gradients with their graph (create_graph=True)."""
    def closure():
        opt.zero_grad()
        loss = f_of(A, b, flat(xs))
        loss.backward(create_graph=True)
        return loss
    return closure


CASES = {
    "sophia_h": (ref.sophia_step, dict(lr=0.05, update_period=3), "gaussian", False),
    "oasis": (ref.oasis_step, dict(lr=1.0, alpha=0.05, eta0=0.1), "rademacher", "grad"),
    "sania_hutchinson": (ref.sania_hutchinson_step, dict(lr=0.2, alpha=0.05), "rademacher", True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_the_literal_rule_in_float64(name):
    fn, hp, kind, wants_f = CASES[name]
    A, b, xs = quadratic()
    ys = [x.detach().clone() for x in xs]
    opt = optimlab.create(xs, name, **hp)
    state = {}
    for t in range(1, 9):
        closure = hvp_closure(opt, A, b, xs)
        y = flat(ys)
        gy = A @ y - b
        zs = [probe(x, 0, t, i, kind) for i, x in enumerate(xs)]
        gs = [gy[:12].view(3, 4), gy[12:]]
        if wants_f == "grad":
            fn(ys, gs, lambda v: A @ v, zs, state, lambda v: A @ v - b, **hp)
        else:
            fn(ys, gs, lambda v: A @ v, zs, *((float(f_of(A, b, y)),) if wants_f else ()), state, **hp)
        opt.step(closure)
        for x, yy in zip(xs, ys):
            torch.testing.assert_close(x.detach(), yy, rtol=1e-10, atol=1e-11, msg=f"{name} step {t}")


def test_hutchinson_diagonal_is_unbiased():
    A, _, xs = quadratic()
    x = flat(xs).detach()
    est = torch.zeros_like(x)
    n = 4000
    for s in range(n):
        z = flat([probe(p, 0, s, i) for i, p in enumerate(xs)])
        est += z * (A @ z)
    # Rademacher: Var(z_i (Az)_i) = Σ_{j≠i} A_ij², so the standard error is ‖offdiag row‖/√n
    se = (A.square().sum(1) - A.diagonal().square()).sqrt() / math.sqrt(n)
    assert ((est / n - A.diagonal()).abs() < 5 * se + 1e-12).all()


HVP_NAMES = list(CASES) + ["saddle_free_newton", "regularized_newton"]


@pytest.mark.parametrize("name", HVP_NAMES)
def test_trains_digits_mlp(name):
    inst = get_task("digits_mlp").build(0)
    model = inst.model
    before = inst.evaluate(model)["train_loss"]
    opt = optimlab.create(model, name)
    for step in range(150):
        def closure(batch=inst.batch(step)):
            opt.zero_grad()
            loss = inst.loss(model, batch)
            loss.backward(create_graph=True)
            return loss
        opt.step(closure)
    after = inst.evaluate(model)["train_loss"]
    assert after < before / 4, f"{name}: train loss {before:.3f} -> {after:.3f}"


@pytest.mark.parametrize("scale", [0.0, 1e30, 3e38])
@pytest.mark.parametrize("name", HVP_NAMES)
def test_zero_and_huge_curvature_give_finite_steps(name, scale):
    # a quadratic with Hessian scale·I (0: flat) and gradients near the float32 limit
    x = nn.Parameter(torch.linspace(-1, 1, 6))
    opt = optimlab.create([x], name)
    for _ in range(3):
        def closure():
            opt.zero_grad()
            dx = x - x.detach()  # 0: the loss is 1, its gradient G, its Hessian scale·I
            loss = 0.5 * scale * dx.square().sum() + (dx * (1e38 if scale else 0.0)).sum() + 1.0
            loss.backward(create_graph=True)
            return loss
        opt.step(closure)
    assert torch.isfinite(x).all()
    for k, v in opt.state[x].items():
        if torch.is_tensor(v):
            assert not v.isnan().any(), f"{name}: state {k} NaN"


@pytest.mark.parametrize("name", HVP_NAMES)
def test_checkpoint_resumes_bit_identically(name):
    A, b, xs = quadratic()
    opt = optimlab.create(xs, name)

    def run(o, ps, steps):
        for _ in range(steps):
            def closure():
                o.zero_grad()
                loss = f_of(A, b, flat(ps))
                loss.backward(create_graph=True)
                return loss
            o.step(closure)

    run(opt, xs, 4)
    ys = [nn.Parameter(x.detach().clone()) for x in xs]
    opt2 = optimlab.create(ys, name)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # a saved checkpoint, not shared tensors
    run(opt, xs, 13)
    run(opt2, ys, 13)
    for x, y in zip(xs, ys):
        assert torch.equal(x, y)


def test_mfac_matches_the_dense_literal_rule_in_float64():
    g = torch.Generator().manual_seed(3)
    xs = [nn.Parameter(torch.randn(4, 5, generator=g, dtype=torch.float64)),
          nn.Parameter(torch.randn(6, generator=g, dtype=torch.float64))]
    ys = [x.detach().clone() for x in xs]
    hp = dict(lr=0.05, ngrads=4, damp=0.3, momentum=0.5)
    opt = optimlab.create(xs, "mfac", **hp)
    state = {}
    for _ in range(9):  # the window wraps twice
        gs = [torch.randn(x.shape, generator=g, dtype=torch.float64) for x in xs]
        for x, gg in zip(xs, gs):
            x.grad = gg.clone()
        opt.step()
        ref.mfac_step(ys, gs, state, **hp)
        for x, y in zip(xs, ys):
            torch.testing.assert_close(x.detach(), y, rtol=1e-10, atol=1e-12)


def test_mfac_trains_digits_mlp():
    inst = get_task("digits_mlp").build(0)
    model = inst.model
    before = inst.evaluate(model)["train_loss"]
    opt = optimlab.create(model, "mfac")
    for step in range(150):
        opt.zero_grad()
        inst.loss(model, inst.batch(step)).backward()
        opt.step()
    after = inst.evaluate(model)["train_loss"]
    assert after < before / 10, f"mfac: train loss {before:.3f} -> {after:.3f}"


def test_scaled_gd_matches_the_literal_rule_in_float64():
    g = torch.Generator().manual_seed(5)
    xs = [nn.Parameter(torch.randn(7, 3, generator=g, dtype=torch.float64)),
          nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64))]
    ys = [x.detach().clone() for x in xs]
    opt = optimlab.create(xs, "scaled_gd", lr=0.3, damp=0.05)
    for _ in range(5):
        gs = [torch.randn(x.shape, generator=g, dtype=torch.float64) for x in xs]
        for x, gg in zip(xs, gs):
            x.grad = gg.clone()
        opt.step()
        ref.scaled_gd_step(ys, gs, lr=0.3, damp=0.05)
        for x, y in zip(xs, ys):
            torch.testing.assert_close(x.detach(), y, rtol=1e-11, atol=1e-12)


def test_scaled_gd_recovers_an_ill_conditioned_matrix_sensing_target():
    # lab task matrix_sensing (symmetric, κ = 100, k = 5 > r = 3): ScaledGD(λ = σ_r) reaches 1% relative error
    inst = get_task("matrix_sensing", n=10, rank=3, width=5, condition=100.0).build(0)
    model = inst.model
    opt = optimlab.create(model, "scaled_gd", lr=0.3, damp=0.01)
    for step in range(300):
        opt.zero_grad()
        inst.loss(model, inst.batch(step)).backward()
        opt.step()
    assert inst.evaluate(model)["rel_error"] < 0.01


def test_saddle_free_newton_with_a_full_krylov_space_is_the_exact_rule():
    A, b, xs = quadratic()  # indefinite: three negative eigenvalues
    ys = [x.detach().clone() for x in xs]
    opt = optimlab.create(xs, "saddle_free_newton", lr=0.5, damp=0.05, krylov_dim=17)
    for _ in range(4):
        closure = hvp_closure(opt, A, b, xs)
        gy = A @ flat(ys) - b
        ref.sfn_step(ys, [gy[:12].view(3, 4), gy[12:]], A, lr=0.5, damp=0.05)
        opt.step(closure)
        for x, y in zip(xs, ys):
            torch.testing.assert_close(x.detach(), y, rtol=1e-9, atol=1e-10)


def test_sophia_h_matches_pytorch_optimizer_given_the_same_hutchinson_estimates():
    # pytorch_optimizer's SophiaH writes the rule as lr'·clip(m / max(h, ε'), p): with p = γ, ε' = ε/γ,
    # lr' = lr/γ and weight decay λ' = λγ it is the paper's lr·clip(m / max(γh, ε), 1). Its probes come
    # from its own generator, so ours (z ⊙ Hz) are passed to it on the curvature steps.
    from pytorch_optimizer import SophiaH

    A, b, xs = quadratic()
    ys = [nn.Parameter(x.detach().clone()) for x in xs]
    lr, rho, eps, wd, k = 0.05, 0.04, 1e-12, 0.1, 3
    ours = optimlab.create(xs, "sophia_h", lr=lr, rho=rho, eps=eps, weight_decay=wd, update_period=k)
    theirs = SophiaH(ys, lr=lr / rho, p=rho, eps=eps / rho, weight_decay=wd * rho, update_period=k,
                     betas=(0.965, 0.99))
    for t in range(1, 11):
        closure = hvp_closure(ours, A, b, xs)
        ours.step(closure)
        theirs.zero_grad()
        f_of(A, b, flat(ys)).backward()
        hess = None
        if (t - 1) % k == 0:
            zs = [probe(y, 0, t, i, "gaussian") for i, y in enumerate(ys)]
            hz = A @ flat(zs)
            hess = [z * h.view_as(z) for z, h in zip(zs, (hz[:12], hz[12:]))]
        theirs.step(hessian=hess)
        for x, y in zip(xs, ys):
            torch.testing.assert_close(x.detach(), y.detach(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("max_dense", [100, 1])  # dense eigh path, and the CG path
def test_regularized_newton_is_the_literal_rule_on_a_convex_quadratic(max_dense):
    A, b, xs = quadratic()
    A = A @ A.T + 0.1 * torch.eye(len(A), dtype=torch.float64)  # convex: both paths solve the same system
    ys = [x.detach().clone() for x in xs]
    opt = optimlab.create(xs, "regularized_newton", lr=0.7, lipschitz=2.0, max_dense=max_dense, cg_iters=60)
    for _ in range(4):
        closure = hvp_closure(opt, A, b, xs)
        gy = A @ flat(ys) - b
        ref.regularized_newton_step(ys, [gy[:12].view(3, 4), gy[12:]], A, lr=0.7, lipschitz=2.0)
        opt.step(closure)
        for x, y in zip(xs, ys):
            torch.testing.assert_close(x.detach(), y, rtol=1e-8, atol=1e-9)
