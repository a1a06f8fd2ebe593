"""The step context: closure checks, exact re-evaluation, evaluation counts, the global pre-pass, HVPs."""

import math

import pytest
import torch
from torch import nn

import optimlab
from optimlab.core.context import StepContext, dot, sq_dist, sq_norm
from optimlab.core.engine import ChainOptimizer
from optimlab.core.recipe import Recipe
from optimlab.core.transform import Bucket, Transform, chain


def model_and_data(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2)).to(dtype)
    x, y = torch.randn(16, 5, dtype=dtype), torch.randn(16, 2, dtype=dtype)
    return model, x, y


def make_closure(model, x, y, **backward):
    def closure():
        model.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward(**backward)
        return loss
    return closure


def snapshot(model, opt):
    params = [p.detach().clone() for p in model.parameters()]
    state = {id(p): {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in opt.state[p].items()}
             for p in model.parameters()}
    return params, state


def unchanged(model, opt, snap):
    params, state = snap
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))
    for p in model.parameters():
        now, before = opt.state[p], state[id(p)]
        assert now.keys() == before.keys()
        for k in now:
            assert torch.equal(torch.as_tensor(now[k]), torch.as_tensor(before[k])), k


class Probe(Transform):
    """Test transform: records what the context offers, then SGD."""

    name = "probe"
    seen: list = []

    def update(self, b: Bucket) -> None:
        Probe.seen.append(b.ctx)


def probe_opt(model, needs, transforms=None, **kw):
    recipe = Recipe(name="probe", chains={"*": chain(*(transforms or [Probe()]))}, needs=frozenset(needs))
    return ChainOptimizer([{"params": list(model.parameters()), "role": "matrix", "lr": 0.1}], recipe, **kw)


# -- refusals --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sps", "aegd", "sania_adagrad_sqr"])
def test_missing_closure_is_a_type_error_naming_the_optimizer(name):
    model, x, y = model_and_data()
    opt = optimlab.create(model, name)
    make_closure(model, x, y)()
    snap = snapshot(model, opt)
    with pytest.raises(TypeError, match=rf"^{name}: step\(\) needs a closure"):
        opt.step()
    unchanged(model, opt, snap)
    assert "step(closure) required" in str(optimlab.describe(name))
    assert "needs:" in str(optimlab.describe("dog")) and "required" not in str(optimlab.describe("dog"))


def test_non_scalar_loss_is_a_type_error():
    model, x, y = model_and_data()
    opt = optimlab.create(model, "sps")
    opt.step(make_closure(model, x, y))
    snap = snapshot(model, opt)

    def vector_loss():
        make_closure(model, x, y)()
        return torch.ones(3)

    with pytest.raises(TypeError, match=r"sps: the closure must return a scalar loss, got a tensor of shape \(3,\)"):
        opt.step(vector_loss)
    with pytest.raises(TypeError, match="sps: the closure must return a scalar loss .* got str"):
        opt.step(lambda: "1.0")
    unchanged(model, opt, snap)


@pytest.mark.parametrize("policy", ["error", "skip", "ignore"])
def test_non_finite_loss_under_each_policy(policy):
    model, x, y = model_and_data()
    opt = optimlab.create(model, "sps", nonfinite=policy)
    opt.step(make_closure(model, x, y))
    snap = snapshot(model, opt)

    def nan_loss():
        make_closure(model, x, y)()
        return torch.tensor(float("nan"))

    if policy == "error":
        with pytest.raises(FloatingPointError, match=r"sps: the closure's loss is nan; nothing was updated"):
            opt.step(nan_loss)
        unchanged(model, opt, snap)
    elif policy == "skip":
        out = opt.step(nan_loss)
        assert math.isnan(float(out)) and opt.skipped_steps == 1
        unchanged(model, opt, snap)
    else:  # no check: the NaN flows into the step size and the parameters (torch.optim's behaviour)
        opt.step(nan_loss)
        assert not all(torch.isfinite(p).all() for p in model.parameters())


def test_closure_that_changes_parameters_is_detected():
    model, x, y = model_and_data()
    opt = optimlab.create(model, "aegd")
    opt.step(make_closure(model, x, y))
    snap = snapshot(model, opt)

    def meddling():
        loss = make_closure(model, x, y)()
        with torch.no_grad():
            model[2].bias.add_(1.0)
        return loss

    with pytest.raises(ValueError, match=r"aegd: the closure modified parameter '2\.bias' in place"):
        opt.step(meddling)
    with torch.no_grad():
        model[2].bias.copy_(snap[0][3])  # the closure's own change is the closure's; the optimizer made none
    unchanged(model, opt, snap)


def test_hvp_needs_a_graph_and_second_derivatives():
    model, x, y = model_and_data()
    opt = probe_opt(model, {"loss", "hvp"})
    with pytest.raises(TypeError, match=r"probe: needs Hessian-vector products, but the gradients carry no graph"):
        opt.step(make_closure(model, x, y))
    assert not any(opt.state[p] for p in model.parameters())

    class Hvp(Transform):
        name = "hvp_user"

        def prepare(self, b):
            b.ctx.hvp([torch.ones_like(p) for p in b.ctx.params])

        def update(self, b):
            pass

    opt = probe_opt(model, {"loss", "hvp"}, [Hvp()])
    centers = torch.randn(7, 7, dtype=torch.float64)

    def closure():
        model.zero_grad()
        h = torch.cdist(model[0](x), centers)  # cdist has no double backward in torch
        loss = nn.functional.mse_loss(model[2](h), y)
        loss.backward(create_graph=True)
        return loss

    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"probe: needs Hessian-vector products, but the model has no second derivatives"):
        opt.step(closure)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not any(opt.state[p] for p in model.parameters())  # fresh states taken back


def test_hvp_matches_the_exact_hessian_of_a_quadratic():
    torch.manual_seed(0)
    A = torch.randn(6, 6, dtype=torch.float64)
    A = A @ A.T
    w = nn.Parameter(torch.randn(6, dtype=torch.float64))
    opt = ChainOptimizer([{"params": [w], "role": "vector", "lr": 0.0}],
                         Recipe(name="probe", chains={"*": chain(Probe())}, needs=frozenset({"loss", "hvp"})))

    def closure():
        w.grad = None
        loss = 0.5 * w @ A @ w
        loss.backward(create_graph=True)
        return loss

    Probe.seen.clear()
    opt.step(closure)
    ctx = Probe.seen[-1]
    v = torch.randn(6, dtype=torch.float64)
    assert torch.allclose(ctx.hvp([v])[0], A @ v, rtol=1e-12, atol=1e-12)
    op = ctx.hessian_operator()
    assert torch.allclose(op.to_dense(), A, rtol=1e-12, atol=1e-12)


# -- re-evaluation and counting --------------------------------------------------------------------
def test_reevaluate_restores_parameters_and_grads_bit_identically_and_counts():
    model, x, y = model_and_data(dtype=torch.float32)
    opt = probe_opt(model, {"loss", "reevaluate"})
    Probe.seen.clear()
    closure = make_closure(model, x, y)
    loss = opt.step(closure)
    ctx = Probe.seen[-1]
    assert ctx.evals == 1 and opt.closure_evals == 1
    assert ctx.loss_value == pytest.approx(float(loss))
    before = [p.detach().clone() for p in model.parameters()]
    grads = [p.grad for p in model.parameters()]
    deltas = [torch.randn_like(p) * 0.37 for p in model.parameters()]  # sums not exactly representable
    with torch.no_grad():
        l2, g2 = ctx.reevaluate(deltas)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # bit-identical
    assert all(p.grad is g for p, g in zip(model.parameters(), grads))  # the very same grad tensors
    assert ctx.evals == 2 and opt.closure_evals == 2
    # what it returned is the loss and gradient at x + δ
    with torch.no_grad():
        for p, d in zip(model.parameters(), deltas):
            p.add_(d)
    expect = closure()
    assert float(l2) == pytest.approx(float(expect), rel=1e-6)
    for g, p in zip(g2, model.parameters()):
        assert torch.allclose(g, p.grad, rtol=1e-5, atol=1e-6)


def test_reevaluate_refuses_a_closure_that_moves_parameters_and_still_restores():
    model, x, y = model_and_data()
    opt = probe_opt(model, {"loss", "reevaluate"})
    Probe.seen.clear()
    state = {"meddle": False}

    def closure():
        loss = make_closure(model, x, y)()
        if state["meddle"]:
            with torch.no_grad():
                model[0].weight.mul_(2.0)
        return loss

    opt.step(closure)
    before = [p.detach().clone() for p in model.parameters()]
    state["meddle"] = True
    with pytest.raises(ValueError, match=r"probe: the closure, called by reevaluate\(\), modified parameter"):
        with torch.no_grad():
            Probe.seen[-1].reevaluate([torch.ones_like(p) for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_plain_recipes_pass_the_closure_value_through_and_count():
    model, x, y = model_and_data()
    opt = optimlab.create(model, "adamw")
    assert opt.step(lambda: "anything") == "anything"  # no needs: torch.optim's contract, no checks
    assert opt.closure_evals == 1


# -- the global pre-pass --------------------------------------------------------------------------
def test_reductions_equal_a_direct_computation():
    torch.manual_seed(0)
    a = [torch.randn(4, 3), torch.randn(7), torch.randn(2, 2, 2)]
    b = [torch.randn_like(t) for t in a]
    flat_a, flat_b = torch.cat([t.reshape(-1) for t in a]), torch.cat([t.reshape(-1) for t in b])
    assert float(sq_norm(a)) == pytest.approx(float(flat_a @ flat_a), rel=1e-6)
    assert float(sq_dist(a, b)) == pytest.approx(float((flat_a - flat_b) @ (flat_a - flat_b)), rel=1e-6)
    assert float(dot(a, b)) == pytest.approx(float(flat_a @ flat_b), rel=1e-5)


def test_global_prepass_spans_all_groups_and_buckets_once_per_step():
    torch.manual_seed(0)
    ps = [nn.Parameter(torch.randn(s, dtype=torch.float64)) for s in [(4, 3), (4, 3), (5,), (2, 6)]]
    ps.append(nn.Parameter(torch.randn(3)))  # another dtype: another bucket
    calls = []

    class Norms(Transform):
        name = "norms"

        def prepare(self, b):
            calls.append(len(b.params))
            b.ctx.add("g_sq", sq_norm(b.grads).double())

        def update(self, b):
            b.ctx.shared("seen", list).append(float(b.ctx.total("g_sq")))

    recipe = Recipe(name="norms", chains={"*": chain(Norms())}, needs=frozenset({"global"}))
    groups = [{"params": ps[:2], "role": "matrix", "lr": 0.0}, {"params": ps[2:], "role": "vector", "lr": 0.0}]
    opt = ChainOptimizer(groups, recipe)
    for p in ps:
        p.grad = torch.randn_like(p)
    seen = []
    orig = StepContext.shared

    def spy(self, key, compute):
        out = orig(self, key, compute)
        if key == "seen":
            seen.append(out)
        return out

    StepContext.shared = spy
    try:
        opt.step()
    finally:
        StepContext.shared = orig
    direct = sum(float((p.grad.double() ** 2).sum()) for p in ps)
    assert sum(calls) == len(ps)  # every parameter in exactly one prepare call
    assert seen and all(v == pytest.approx(direct, rel=1e-6) for v in seen[-1])
    assert len(seen[-1]) == len(calls)  # every bucket read the same total


def test_recipes_without_needs_run_no_prepass():
    model, x, y = model_and_data()
    opt = optimlab.create(model, "adamw")
    assert opt.recipe.needs == frozenset()
    assert all(not opt.recipe.chain_for(g["role"]).prepares for g in opt.param_groups)


def test_unknown_need_is_refused():
    with pytest.raises(ValueError, match=r"bad: needs must be a subset of .* got \['telepathy'\]"):
        Recipe(name="bad", chains={"*": chain(Probe())}, needs=frozenset({"telepathy"}))


def test_hvp_after_an_in_place_write_says_so():
    # a transform that writes a parameter before taking an HVP (the psgd_kron_hvp bug) is told why, not that
    # the model lacks second derivatives
    model, x, y = model_and_data()

    class WriteThenHvp(Transform):
        name = "write_then_hvp"

        def update(self, b):
            for p in b.params:  # an in-place write bumps the version of what autograd saved (the second weight)
                p.add_(0.0)
            b.ctx.hvp([torch.ones_like(p) for p in b.ctx.params])

    opt = probe_opt(model, {"loss", "hvp"}, [WriteThenHvp()])
    with pytest.raises(ValueError, match=r"probe: needs Hessian-vector products, but a tensor the closure's graph "
                                         r"saved was modified in place after backward"):
        opt.step(make_closure(model, x, y, create_graph=True))
