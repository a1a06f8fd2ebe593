"""N-HARPG: parity with the literal transcription, the exactness of the Hessian-aided transport on a
quadratic, the closure contract, and training on the policy-gradient task."""

import pytest
import torch

import optimlab
from optimlab.reference.policy_gradient import n_harpg as ref_n_harpg
from optimlab.transforms.policy_gradient import harpg_q

D = 7


def _problem():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(D, D, generator=g, dtype=torch.float64)
    a = a @ a.T / D + 0.5 * torch.eye(D, dtype=torch.float64)
    c = torch.randn(D, generator=g, dtype=torch.float64)

    def f(x):
        return 0.5 * x @ a @ x + c @ x + 0.25 * (x ** 4).sum()  # non-quadratic: the HVP depends on θ̂

    return f, torch.randn(D, generator=g, dtype=torch.float64)


def _grad(f, x):
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(f(x), x)[0]


def _hvp(f, x, v):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    return torch.autograd.grad(g, x, v)[0]


def _run_recipe(f, x0, steps, split=False, **hp):
    if split:  # two parameters: the norm and the HVP are taken over both
        ps = [torch.nn.Parameter(x0[:3].clone()), torch.nn.Parameter(x0[3:].clone())]
        full = lambda: torch.cat(ps)  # noqa: E731
    else:
        ps = [torch.nn.Parameter(x0.clone())]
        full = lambda: ps[0]  # noqa: E731
    opt = optimlab.create(ps, "n_harpg", **hp)
    for _ in range(steps):
        def closure():
            opt.zero_grad()
            loss = f(full())
            loss.backward(create_graph=True)
            return loss

        opt.step(closure)
    return torch.cat([p.detach().reshape(-1) for p in ps]), opt


@pytest.mark.parametrize("split", [False, True])
def test_parity_with_reference_fp64(split):
    f, x0 = _problem()
    hp = dict(lr=0.05, momentum=0.8, seed=5)
    steps = 12
    ours, opt = _run_recipe(f, x0, steps, split=split, **hp)
    ref = ref_n_harpg(x0, lambda x: _grad(f, x), lambda x, v: _hvp(f, x, v), steps, lr=0.05, momentum=0.8,
                      q=lambda t: harpg_q(5, t))
    torch.testing.assert_close(ours, ref[-1], rtol=1e-12, atol=1e-12)
    assert opt.closure_evals == 2 * steps - 1  # one extra evaluation (at θ̂) from the second step on


def test_seed_changes_the_draws_and_the_iterates():
    f, x0 = _problem()
    a, _ = _run_recipe(f, x0, 6, lr=0.05, momentum=0.8, seed=0)
    b, _ = _run_recipe(f, x0, 6, lr=0.05, momentum=0.8, seed=1)
    assert not torch.equal(a, b)


def test_transport_is_exact_on_a_quadratic():
    """With a constant Hessian, ∇²f(θ̂)(θ_t − θ_{t−1}) = g_t − g_{t−1}, so d_t = g_t at every step: N-HARPG on a
    deterministic quadratic is exactly normalized gradient descent (a missing or mis-signed correction is not)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(D, D, generator=g, dtype=torch.float64)
    a = a @ a.T / D + torch.eye(D, dtype=torch.float64)
    f = lambda x: 0.5 * x @ a @ x  # noqa: E731
    x0 = torch.randn(D, generator=g, dtype=torch.float64)
    ours, _ = _run_recipe(f, x0, 8, lr=0.03, momentum=0.9)
    x = x0.clone()
    for _ in range(8):
        gx = a @ x
        x = x - 0.03 * gx / gx.norm()
    torch.testing.assert_close(ours, x, rtol=1e-12, atol=1e-12)


def test_needs_a_create_graph_closure():
    p = torch.nn.Parameter(torch.ones(3))
    opt = optimlab.create([p], "n_harpg")
    with pytest.raises(TypeError, match="closure"):
        opt.step()

    def plain():
        opt.zero_grad()
        loss = (p ** 4).sum()
        loss.backward()
        return loss

    with pytest.raises(TypeError, match="create_graph"):
        opt.step(plain)


def test_trains_on_the_policy_task():
    from optimlab.lab.tasks import get_task

    inst = get_task("policy_mdp").build(0)
    model = inst.model
    before = inst.evaluate()["eval_loss"]
    opt = optimlab.create(list(model.parameters()), "n_harpg", lr=0.1, momentum=0.9)
    for step in range(120):
        batch = inst.batch(step)

        def closure(batch=batch):
            opt.zero_grad()
            loss = inst.loss(model, batch)
            loss.backward(create_graph=True)
            return loss

        opt.step(closure)
    after = inst.evaluate()["eval_loss"]
    assert after < 0.5 * before, (before, after)
