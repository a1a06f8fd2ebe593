"""Bad input for the re-evaluating recipes (a second closure call per step) and the HVP/JVP ones: clear errors
naming the optimizer and the problem, with parameters and state unchanged."""
import math

import pytest
import torch
from torch import nn

import optimlab
from optimlab.optimizers.ghosts import safe_radius
from optimlab.optimizers.reevaluated import exact_gr

from test_context import make_closure, model_and_data, snapshot, unchanged

REEVAL = ["fd_gr", "igt", "o2nc", "spider_ngd", "smb", "udog"]


def stepped(name, steps=2, **kw):
    model, x, y = model_and_data()
    opt = optimlab.create(model, name, **kw)
    for _ in range(steps):  # every rule past its first step (spider: a re-evaluating step comes next)
        opt.step(make_closure(model, x, y))
    return model, x, y, opt


def second_call(model, x, y, bad):
    """A closure that is fine on its first call and ``bad(loss)`` on the re-evaluation."""
    calls = [0]

    def closure():
        calls[0] += 1
        loss = make_closure(model, x, y)()
        return bad(loss) if calls[0] == 2 else loss
    return closure


@pytest.mark.parametrize("name", REEVAL)
def test_non_scalar_loss_at_the_second_point(name):
    model, x, y, opt = stepped(name)
    snap = snapshot(model, opt)
    with pytest.raises(TypeError,
                       match=rf"^{name}: the closure must return a scalar loss, got a tensor of shape \(2,\)"):
        opt.step(second_call(model, x, y, lambda loss: torch.stack([loss, loss])))
    unchanged(model, opt, snap)


@pytest.mark.parametrize("name", REEVAL)
@pytest.mark.parametrize("policy", ["error", "skip", "ignore"])
def test_non_finite_loss_at_the_second_point_under_each_policy(name, policy):
    model, x, y, opt = stepped(name, nonfinite=policy)
    snap = snapshot(model, opt)

    def nan_grads(loss):
        for p in model.parameters():
            p.grad.fill_(float("nan"))
        return loss * float("nan")

    closure = second_call(model, x, y, nan_grads)
    if policy == "error":
        with pytest.raises(FloatingPointError, match=rf"^{name}: at the re-evaluated point the closure's loss nan; "
                                                     r"nothing was updated"):
            opt.step(closure)
        unchanged(model, opt, snap)
    elif policy == "skip":
        out = opt.step(closure)
        assert math.isfinite(float(out)) and opt.skipped_steps == 1
        unchanged(model, opt, snap)
    else:  # no check: the NaN flows into the update or the state (o2nc: the next step's m), as torch.optim would
        opt.step(closure)
        if name == "smb":  # a NaN trial loss fails Armijo and a NaN curvature gives no shortening: the SGD step
            assert all(torch.isfinite(p).all() for p in model.parameters())
            assert not all(torch.equal(a, b) for a, b in zip(snap[0], model.parameters()))
            return
        tensors = list(model.parameters()) + [v for st in opt.state.values() for v in st.values()
                                              if isinstance(v, torch.Tensor)]
        assert not all(torch.isfinite(t).all() for t in tensors)


@pytest.mark.parametrize("name", REEVAL)
def test_closure_that_moves_parameters_on_the_second_call(name):
    model, x, y, opt = stepped(name)
    snap = snapshot(model, opt)

    def meddle(loss):
        with torch.no_grad():
            model[0].weight.mul_(2.0)
        return loss

    with pytest.raises(ValueError, match=rf"^{name}: the closure, called by reevaluate\(\), modified parameter "
                                         r"'0\.weight' in place"):
        opt.step(second_call(model, x, y, meddle))
    unchanged(model, opt, snap)  # reevaluate() restores the parameters from its copy, bit-identically


def test_exact_gr_on_a_model_without_second_derivatives():
    model, x, y = model_and_data()
    opt = optimlab.create(model, exact_gr(), lr=0.1)
    centers = torch.randn(7, 7, dtype=torch.float64)

    def closure():
        model.zero_grad()
        loss = nn.functional.mse_loss(model[2](torch.cdist(model[0](x), centers)), y)  # cdist: no double backward
        loss.backward(create_graph=True)
        return loss

    snap = snapshot(model, opt)
    with pytest.raises(ValueError, match=r"^exact_gr: needs Hessian-vector products, but the model has no second "
                                         r"derivatives"):
        opt.step(closure)
    unchanged(model, opt, snap)
    with pytest.raises(TypeError, match=r"^exact_gr: needs Hessian-vector products, but the gradients carry no graph"):
        opt.step(make_closure(model, x, y))
    unchanged(model, opt, snap)


def test_controller_jvp_on_outputs_without_second_derivatives_leaves_parameters():
    model, x, y = model_and_data()
    opt = optimlab.create(model, safe_radius("sgd"), lr=0.1)
    centers = torch.randn(7, 7, dtype=torch.float64)
    closure = make_closure(model, x, y)
    closure.outputs = lambda: model[2](torch.cdist(model[0](x), centers))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"^sgd\+safe_radius: needs Jacobian-vector products of the outputs, but "
                                         r"double backward through closure.outputs failed"):
        opt.step(closure)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
