"""ZO-SGD / ZO-SGDM / ZO-Adam: parity with the literal reference, exact restore, no .grad, seeds, errors."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

import optimlab
from optimlab.reference import zeroth_order as ref
from optimlab.transforms import zeroth_order as zo


def setup(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)).to(dtype)
    x, y = torch.randn(32, 5, dtype=dtype), torch.randn(32, 2, dtype=dtype)
    # the optimizer's parameter order (its param groups: matrices, then vectors) indexes the directions
    names = ["0.weight", "2.weight", "0.bias", "2.bias"]

    def f(ws):
        return nn.functional.mse_loss(functional_call(model, dict(zip(names, ws)), (x,)), y)

    return model, lambda: nn.functional.mse_loss(model(x), y), f


def ordered(model, opt):
    return [p for g in opt.param_groups for p in g["params"]]


CASES = {
    "zo_sgd": (ref.zo_gd_step, dict(lr=0.05)),
    "zo_sgdm": (ref.zo_gdm_step, dict(lr=0.02, momentum=0.8)),
    "zo_adam": (ref.zo_adam_step, dict(lr=0.01, betas=(0.9, 0.99), eps=1e-8)),
}


@pytest.mark.parametrize("q", [1, 3])
@pytest.mark.parametrize("name", sorted(CASES))
def test_parity_with_reference(name, q):
    step_ref, hp = CASES[name]
    model, closure, f = setup()
    opt = optimlab.create(model, name, mu=1e-3, q=q, seed=5, **hp)
    xs = [p.detach().clone() for p in ordered(model, opt)]
    state: dict = {}
    for _ in range(6):
        opt.step(closure)
        step_ref(f, xs, state, mu=1e-3, q=q, seed=5, **hp)
    for p, r in zip(ordered(model, opt), xs):
        torch.testing.assert_close(p.detach(), r, rtol=1e-12, atol=1e-14)
    assert opt.closure_evals == 6 * 2 * q


def test_restore_is_bit_identical_and_no_grad():
    """At lr = 0 a step perturbs and restores: the parameters come back bit for bit, no .grad appears."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 200), nn.Tanh(), nn.Linear(200, 10))  # 62k entries: two chunks
    x = torch.randn(16, 300)
    before = [p.detach().clone() for p in model.parameters()]
    opt = optimlab.create(model, "zo_sgd", lr=0.0, q=4, mu=1e-3)
    # an arithmetic restore (x + d − 2d + d) would miss a large share of entries: the fix-ups are exercised
    p0 = before[0].view(-1)[:zo.CHUNK]
    d = zo._chunk_z(p0, zo._mix(0, 1, 0, 0, 0), p0.numel()).mul_(1e-3)
    assert ((p0 + d - 2 * d + d) != p0).float().mean() > 0.1
    for _ in range(3):
        loss = opt.step(lambda: model(x).square().mean())
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b)
    assert all(p.grad is None for p in model.parameters())
    assert loss.ndim == 0 and not loss.requires_grad


def test_update_is_along_the_directions():
    """One ZO-SGD step moves x by −lr·c·z with c the central difference along z (q = 1, a linear loss)."""
    w = nn.Parameter(torch.randn(7, dtype=torch.float64))
    a = torch.randn(7, dtype=torch.float64)
    opt = optimlab.create([w], "zo_sgd", lr=0.1, mu=1e-2, seed=3)
    w0 = w.detach().clone()
    opt.step(lambda: w @ a)
    z = zo.direction(w, 3, 1, 0, 0)
    torch.testing.assert_close(w.detach(), w0 - 0.1 * (z @ a) * z, rtol=1e-10, atol=1e-12)


def test_seed_changes_directions_and_resume_is_deterministic():
    model, closure, _ = setup(seed=1)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    finals = []
    for seed in (0, 0, 1):
        model.load_state_dict(init)
        opt = optimlab.create(model, "zo_adam", lr=1e-2, seed=seed)
        for _ in range(4):
            opt.step(closure)
        finals.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert torch.equal(finals[0], finals[1]) and not torch.equal(finals[0], finals[2])


def test_closure_with_backward_is_refused_clearly():
    model, _, _ = setup()
    opt = optimlab.create(model, "zo_sgd")
    x = torch.randn(4, 5, dtype=torch.float64)

    def torch_closure():
        loss = model(x).sum()
        loss.backward()
        return loss

    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(TypeError, match="zo_sgd: a zeroth-order method evaluates the loss only"):
        opt.step(torch_closure)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(TypeError, match="zo_sgd: step\\(\\) needs a closure"):
        opt.step()


def test_frozen_parameters_are_not_perturbed():
    model, closure, _ = setup()
    model[0].weight.requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    seen = []
    inner = closure

    def closure():
        seen.append(torch.equal(model[0].weight, frozen))
        return inner()

    opt = optimlab.create(model, "zo_sgdm", lr=1e-2)
    for _ in range(3):
        opt.step(closure)
    assert torch.equal(model[0].weight, frozen) and all(seen) and len(seen) == 6
    assert model[0].weight not in opt.state


def test_nonfinite_loss_policy():
    model, closure, _ = setup()
    with torch.no_grad():
        model[2].bias[0] = float("nan")
    before = [p.detach().clone() for p in model.parameters()]
    opt = optimlab.create(model, "zo_adam")
    with pytest.raises(FloatingPointError, match=r"zo_adam: .*parameter '2\.bias'|zo_adam: .*#1 of the"):
        opt.step(closure)
    assert all(torch.equal(a, b, ) or (a.isnan() == b.isnan()).all() for a, b in zip(before, model.parameters()))
    assert not any(opt.state[p] for p in model.parameters())
    skipper = optimlab.create(model, "zo_adam", nonfinite="skip")
    skipper.step(closure)
    assert skipper.skipped_steps == 1 and not any(skipper.state[p] for p in model.parameters())


@pytest.mark.parametrize("name", ["zo_sgd", pytest.param("zo_sgdm", marks=pytest.mark.slow),
                                  pytest.param("zo_adam", marks=pytest.mark.slow)])
def test_trains_digits_classifier(name):
    """Forward-only training of a small classifier: the loss falls (the parity test checks the rule; the
    contract tests check that every recipe lowers a regression loss at its defaults)."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    d = load_digits()
    x = torch.tensor(d.data[:256], dtype=torch.float32) / 16
    y = torch.tensor(d.target[:256])
    model = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10))
    lr = {"zo_sgd": 0.1, "zo_sgdm": 0.01, "zo_adam": 0.03}[name]
    opt = optimlab.create(model, name, lr=lr, q=4)
    closure = lambda: nn.functional.cross_entropy(model(x), y)  # noqa: E731
    with torch.no_grad():
        before = float(closure())
    for _ in range(150):
        opt.step(closure)
    with torch.no_grad():
        assert float(closure()) < 0.6 * before


@pytest.mark.parametrize("constraint", ["l1", "simplex", "box"])
def test_frank_wolfe_parity_and_feasibility(constraint):
    model, closure, f = setup()
    with torch.no_grad():  # start inside the set
        for p in model.parameters():
            p.fill_(0.01 if constraint == "simplex" else 0.0)
    opt = optimlab.create(model, "zo_frank_wolfe", constraint=constraint, radius=0.5, seed=2)
    xs = [p.detach().clone() for p in ordered(model, opt)]
    state: dict = {}
    for _ in range(8):
        opt.step(closure)
        ref.zo_fw_step(f, xs, state, constraint=constraint, radius=0.5, seed=2)
    for p, r in zip(ordered(model, opt), xs):
        torch.testing.assert_close(p.detach(), r, rtol=1e-11, atol=1e-13)
        if constraint == "l1":
            assert p.abs().sum() <= 0.5 + 1e-12
        elif constraint == "box":
            assert p.abs().max() <= 0.5 + 1e-12
        else:
            assert (p >= 0).all()
    assert opt.closure_evals == 16


def test_lmo_vertices():
    from optimlab.transforms.frank_wolfe import lmo

    g = torch.tensor([0.5, -2.0, 1.0])
    assert torch.equal(lmo(g, "l1", 3.0), torch.tensor([0.0, 3.0, 0.0]))
    assert torch.equal(lmo(g, "simplex", 2.0), torch.tensor([0.0, 2.0, 0.0]))
    assert torch.equal(lmo(g, "box", 1.0), torch.tensor([-1.0, 1.0, -1.0]))


@pytest.mark.parametrize("sphere", [False, True])
def test_langevin_parity_and_average(sphere):
    model, closure, f = setup()
    opt = optimlab.create(model, "langevin", lr=0.05, beta=100.0, sphere=sphere, seed=4)
    ps = ordered(model, opt)
    xs = [p.detach().clone() for p in ps]
    state: dict = {}
    for _ in range(5):
        opt.zero_grad()
        closure().backward()
        gs = [p.grad.detach().clone() for p in ps]
        opt.step()
        ref.langevin_step(xs, gs, state, lr=0.05, beta=100.0, sphere=sphere, seed=4)
    for p, r, a in zip(ps, xs, state["avg"]):
        torch.testing.assert_close(p.detach(), r, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(opt.state[p]["langevin.avg"], a, rtol=1e-12, atol=1e-14)
        if sphere:
            assert abs(float(p.detach().norm()) - 1) < 1e-12


def test_zo_spider_parity_across_epochs():
    model, closure, f = setup()
    hp = dict(lr=0.02, delta=1e-3, epoch=3, b1=4, b2=2, seed=6)
    opt = optimlab.create(model, "zo_spider", **hp)
    xs = [p.detach().clone() for p in ordered(model, opt)]
    state: dict = {}
    for _ in range(7):  # full estimates at steps 1, 4, 7; recursive corrections between
        opt.step(closure)
        ref.zo_spider_step(f, xs, state, **hp)
    for p, r in zip(ordered(model, opt), xs):
        torch.testing.assert_close(p.detach(), r, rtol=1e-10, atol=1e-12)
    assert opt.closure_evals == 3 * 2 * 4 + 4 * 4 * 2


def test_lab_runner_trains_zeroth_order_recipes(tmp_path):
    """The runner gives value-only recipes a forward-only closure and never calls backward()."""
    from optimlab.lab.runner import run

    db = str(tmp_path / "runs.db")
    start = run("quadratic", "zo_sgd", hparams={"lr": 0.02}, seed=0, steps=1, store=db + "0", eval_every=1)
    res = run("quadratic", "zo_sgd", hparams={"lr": 0.02}, seed=0, steps=200, store=db, eval_every=200)
    assert start.ok and res.ok
    assert res.final["evals"] == 200 + 2 * 200  # one logged loss per step plus the 2q closure calls
    assert res.final["eval_loss"] < 0.5 * start.final["eval_loss"]
