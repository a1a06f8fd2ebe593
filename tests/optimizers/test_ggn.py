"""Gauss–Newton / natural-gradient recipes (need "outputs"): natural_gradient, egn, sophia_g, tngd.

Parity with the literal float64 transcriptions (optimlab.reference.ggn), directions equal dense fp64 solves,
the ModelBatch convention's refusals, the GGN products, checkpoints, extreme gradients, lab training."""

import copy
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

import optimlab
from optimlab.core import ModelBatch, model_closure
from optimlab.core.model_batch import output_grad, sample_targets
from optimlab.linalg.gauss_newton import dense_gn_direction, egn_direction
from optimlab.reference import ggn as ref
from optimlab.transforms.ggn import woodbury_direction

NAMES = ("natural_gradient", "egn", "sophia_g", "tngd")


def net(seed=0, d_in=5, width=6, d_out=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, width), nn.Tanh(), nn.Linear(width, d_out)).double()


def data(kind, seed=1, b=8, d_in=5, c=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d_in, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (b,), generator=g) if kind == "cross_entropy" else \
        torch.randn(b, c, generator=g, dtype=torch.float64)
    return x, y


def flat_of(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def functional(model, x):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def f(theta):
        pieces = torch.split(theta, [math.prod(s) for s in shapes])
        return functional_call(model, {n: t.view(s) for n, t, s in zip(names, pieces, shapes)}, (x,))
    return f


def to_model_order(opt, model, v):
    """A flat vector laid out in the optimizer's parameter order (role groups) re-laid in model.parameters() order."""
    order = [p for g in opt.param_groups for p in g["params"]]
    pieces = {id(p): c for p, c in zip(order, torch.split(v, [p.numel() for p in order]))}
    return torch.cat([pieces[id(p)] for p in model.parameters()])


CASES = {
    "natural_gradient_dense": ("natural_gradient", dict(lr=0.5, damping=0.05), "cross_entropy"),
    "natural_gradient_cg": ("natural_gradient", dict(lr=0.5, damping=0.05, max_dense=0, cg_iters=200,
                                                     cg_tol=1e-14), "mse"),
    "egn": ("egn", dict(damping=1e-2, damping_min=1e-10), "cross_entropy"),
    "egn_half_sse": ("egn", dict(damping=1e-3, damping_min=1e-10), "half_sse"),
    "sophia_g": ("sophia_g", dict(lr=0.05, update_period=3), "cross_entropy"),
    "tngd": ("tngd", dict(lr=0.5, damping=0.05, tau=0.2, dt=0.01, temperature=0.0), "cross_entropy"),
    "tngd_noisy_cg": ("tngd", dict(lr=0.5, damping=0.05, tau=0.2, dt=0.01, temperature=1e-4, max_dense=0), "mse"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_the_literal_rule_in_float64(case):
    name, hp, kind = CASES[case]
    model = net()
    opt = optimlab.create(model, name, **hp)
    theta, state = flat_of(model), {}
    for t in range(1, 7):
        x, y = data(kind, seed=t)
        f = functional(model, x)
        if name == "natural_gradient":
            theta = ref.natural_gradient_step(theta, f, y, kind, state, lr=hp["lr"], damping=hp["damping"])
        elif name == "egn":
            theta = ref.egn_step(theta, f, y, kind, state, damping=hp["damping"])
        elif name == "sophia_g":
            y_hat = sample_targets(kind, f(theta).detach(), torch.Generator().manual_seed(t))
            theta = ref.sophia_g_step(theta, f, y, kind, y_hat, state, lr=hp["lr"], update_period=3)
        else:
            n = round(hp["tau"] / hp["dt"])
            gen = torch.Generator().manual_seed(t)
            scale = math.sqrt(2 * hp["temperature"] * hp["dt"])
            noise = [to_model_order(opt, model, scale * torch.randn(len(theta), generator=gen, dtype=torch.float64))
                     for _ in range(n)] if hp["temperature"] > 0 else None
            theta = ref.tngd_step(theta, f, y, kind, state, noise, lr=hp["lr"], damping=hp["damping"],
                                  tau=hp["tau"], h=hp["dt"])
        opt.step(model_closure(opt, model, x, y, kind))
        torch.testing.assert_close(flat_of(model), theta, rtol=1e-9, atol=1e-11, msg=lambda m: f"{case} step {t}: {m}")


@pytest.mark.parametrize("kind", ["cross_entropy", "mse", "half_sse"])
@pytest.mark.parametrize("lam", [1e-3, 1e-1])
def test_egn_direction_equals_the_dense_solve(kind, lam):
    model = net(3, width=10)
    x, y = data(kind, seed=4, b=6)
    opt = optimlab.create(model, "egn", damping=lam)
    closure = model_closure(opt, model, x, y, kind)
    closure()
    from optimlab.core.context import StepContext
    ctx = StepContext.begin(opt, closure)
    curv = ctx.model()
    J, Q = curv.jacobian(), curv.output_hessian()
    r = (curv.output_grad() * curv.f.shape[0]).reshape(-1).double()
    g = torch.cat([p.grad.reshape(-1) for p in ctx.params])  # J's columns follow the optimizer's order
    dense = dense_gn_direction(J, Q, r, lam, 6)
    mine = -woodbury_direction(J, Q, g, lam, 6)
    assert float((mine - dense).norm() / dense.norm()) <= 1e-8
    assert float((egn_direction(J, Q, r, lam, 6) - dense).norm() / dense.norm()) <= 1e-8
    # J against autograd's, Q·J the GGN products
    Jref = ref.jacobian(flat_of(model), functional(model, x))
    perm = to_model_order(opt, model, torch.arange(J.shape[1], dtype=torch.float64)).long()
    torch.testing.assert_close(J[:, perm], Jref, rtol=1e-12, atol=1e-12)
    v = [torch.randn_like(p) for p in ctx.params]
    Gv = torch.cat([t.reshape(-1) for t in curv.ggn(v)])
    G = J.T @ Q @ J / 6
    torch.testing.assert_close(Gv, G @ torch.cat([t.reshape(-1) for t in v]), rtol=1e-10, atol=1e-12)


def test_natural_gradient_cg_direction_equals_the_dense_solve():
    model_a, model_b = net(5, width=12), net(5, width=12)
    x, y = data("cross_entropy", seed=2, b=16)
    lam = 1e-2
    a = optimlab.create(model_a, "natural_gradient", lr=1.0, damping=lam)
    b = optimlab.create(model_b, "natural_gradient", lr=1.0, damping=lam, max_dense=0, cg_iters=500, cg_tol=1e-13)
    start = flat_of(model_a)
    a.step(model_closure(a, model_a, x, y))
    b.step(model_closure(b, model_b, x, y))
    da, db = flat_of(model_a) - start, flat_of(model_b) - start
    G, g = ref.ggn(start, functional(net(5, width=12), x), y, "cross_entropy")
    exact = -torch.linalg.solve(G + lam * torch.eye(len(g), dtype=g.dtype), g)
    assert float((da - exact).norm() / exact.norm()) <= 1e-8
    assert float((db - exact).norm() / exact.norm()) <= 1e-8


def test_tngd_relaxes_to_the_natural_gradient_step():
    model_a, model_b = net(2), net(2)
    x, y = data("cross_entropy", seed=3)
    a = optimlab.create(model_a, "natural_gradient", lr=1.0, damping=0.1)
    b = optimlab.create(model_b, "tngd", lr=1.0, damping=0.1, tau=400.0, max_sde_steps=100_000, temperature=0.0)
    start = flat_of(model_a)
    a.step(model_closure(a, model_a, x, y))
    b.step(model_closure(b, model_b, x, y))
    da, db = flat_of(model_a) - start, flat_of(model_b) - start
    assert float((db - da).norm() / da.norm()) <= 1e-8


@pytest.mark.parametrize("kind", ["cross_entropy", "mse", "half_sse"])
def test_gauss_newton_bartlett_estimate_is_unbiased(kind):
    model = net(1)
    x, y = data(kind, seed=5, b=4)
    theta = flat_of(model)
    f = functional(model, x)
    G, _ = ref.ggn(theta, f, y, kind)  # the literal GGN (reference/ggn.py)
    out = f(theta).detach()
    J = ref.jacobian(theta, f)
    n, b, c = 20000, 4, 3
    y_hat = sample_targets(kind, out.repeat(n, 1), torch.Generator().manual_seed(0))
    r_hat = output_grad(kind, out.repeat(n, 1), y_hat) * n  # ∂L/∂f per draw (each draw a batch of b rows)
    g_hat = r_hat.reshape(n, b * c) @ J  # ĝ = Jᵀ r̂, one row per draw
    est = (b * g_hat * g_hat).mean(0)
    # E[B ĝ⊙ĝ] = diag G (Bartlett); 20,000 draws: within a few percent of the diagonal's scale
    assert float((est - G.diagonal()).abs().max()) <= 0.05 * float(G.diagonal().abs().max())


def test_missing_batch_and_mismatched_loss_are_refused_clearly():
    model = net()
    x, y = data("mse")
    for name in NAMES:
        opt = optimlab.create(model, name)
        before = flat_of(model)

        def plain():
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss
        with pytest.raises(TypeError, match=rf"{name}: needs the model's outputs.*closure.batch"):
            opt.step(plain)
        with pytest.raises(TypeError, match=f"{name}: step\\(\\) needs a closure"):
            opt.step()
        plain.batch = ModelBatch(lambda: model(x), y, "half_sse")  # F.mse_loss is not mean_i ½‖f_i − y_i‖²
        with pytest.raises(ValueError, match=rf"{name}: the closure's loss .* is not the 'half_sse' loss"):
            opt.step(plain)
        assert torch.equal(flat_of(model), before) and not opt.state
    with pytest.raises(ValueError, match="loss must be one of"):
        ModelBatch(lambda: model(x), y, "nll")


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_resumes_bit_identically(name):
    model = net()
    opt = optimlab.create(model, name)
    steps = [data("cross_entropy", seed=s) for s in range(8)]
    for x, y in steps[:4]:
        opt.step(model_closure(opt, model, x, y))
    model2 = copy.deepcopy(model)
    opt2 = optimlab.create(model2, name)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    for x, y in steps[4:]:
        opt.step(model_closure(opt, model, x, y))
        opt2.step(model_closure(opt2, model2, x, y))
    assert torch.equal(flat_of(model), flat_of(model2))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [0.0, 1e30, 3e38])
def test_zero_and_huge_gradients_give_no_nan(name, scale):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    x, y = data("cross_entropy")
    x = x.float()
    # tngd's noise moves the state even at g = 0: its noiseless limit for the zero case
    opt = optimlab.create(model, name, **({"temperature": 0.0} if name == "tngd" and scale == 0 else {}))
    before = flat_of(model)
    for _ in range(3):
        closure = model_closure(opt, model, x, y)

        def scaled(closure=closure):
            loss = closure()
            for p in model.parameters():
                p.grad.copy_(torch.sign(p.grad) * scale)
            return loss
        scaled.batch = closure.batch
        try:
            opt.step(scaled)
        except FloatingPointError as e:  # the allowed refusal (a non-finite loss after a huge step): loud, named
            assert name in str(e)
            break
    after = flat_of(model)
    assert torch.isfinite(after).all(), name
    if scale == 0.0 and name != "sophia_g":  # sophia_g's weight decay moves the parameters
        assert torch.equal(after, before)
    for st in opt.state.values():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                assert not torch.isnan(v).any(), (name, k)


@pytest.mark.parametrize("name", NAMES)
def test_trains_on_digits_through_the_lab_runner(name):
    from optimlab.lab.runner import run

    hp = {"lr": 1e-2} if name == "sophia_g" else {}  # its clip moves each coordinate ≤ lr per step: 30 steps
    r = run("digits_mlp", name, hparams=hp, steps=30, task_options={"width": 8, "depth": 1, "batch_size": 32},
            eval_every=30)
    losses = [v for _, v in r.metrics["loss"]]
    assert math.isfinite(losses[-1]) and sum(losses[-5:]) / 5 < 0.8 * losses[0], (name, losses[0], losses[-5:])
    assert r.metrics["evals"][-1][1] >= 30  # every step's forward passes are counted


def test_runner_refuses_a_task_without_outputs():
    from optimlab.lab.runner import run

    with pytest.raises(ValueError, match="natural_gradient needs the model's outputs .* task 'rosenbrock'"):
        run("rosenbrock", "natural_gradient", steps=2)
