"""The optimizer contract, checked for every registered optimizer (adding one adds no test code)."""

import copy

import pytest
import torch
from torch import nn

import optimlab
from models import mlp, regression_batches
from optimlab.core import ModelBatch

NAMES = optimlab.available()
# recipes whose step() needs the closure (the loss value, re-evaluation, HVPs) are stepped with one
NEEDS_CLOSURE = {n for n in NAMES if optimlab.describe(n).needs & {"loss", "reevaluate", "hvp", "value", "outputs"}}
# recipes that take Hessian-vector products: their closures call backward(create_graph=True)
NEEDS_HVP = {n for n in NAMES if "hvp" in optimlab.describe(n).needs}
# zeroth-order recipes call the closure under no_grad (function values only): the closures below skip
# backward() when the loss carries no graph, so that one closure serves both kinds
VALUES_ONLY = {n for n in NAMES if "value" in optimlab.describe(n).needs}
# Gauss–Newton recipes read the model's outputs: their closures carry closure.batch (core/model_batch.py)
NEEDS_OUTPUTS = {n for n in NAMES if "outputs" in optimlab.describe(n).needs}


def with_batch(closure, model, batch):
    """Hang the batch's ModelBatch on the closure (the loss below is F.mse_loss: kind "mse")."""
    dtype = next(model.parameters()).dtype
    closure.batch = ModelBatch(lambda: model(batch[0].to(dtype)), batch[1].to(dtype), "mse")
    return closure


def backward(loss, create_graph=False):
    if loss.requires_grad:
        loss.backward(create_graph=create_graph)


def step(opt, closure):
    """``opt.step(closure)`` for recipes that need it; otherwise the plain ``closure(); opt.step()``."""
    if opt.name in NEEDS_CLOSURE:
        return opt.step(closure)
    closure()
    return opt.step()


def fresh(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return mlp().to(dtype)


def loss_of(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x.to(next(model.parameters()).dtype)), y.to(next(model.parameters()).dtype))


def train(model, opt, steps, data):
    for _ in range(steps):
        batch = next(data)

        def closure(batch=batch):
            opt.zero_grad()
            loss = loss_of(model, batch)
            backward(loss, create_graph=opt.name in NEEDS_HVP)
            return loss

        step(opt, with_batch(closure, model, batch))


@pytest.mark.parametrize("name", NAMES)
def test_loss_falls_at_defaults(name):
    model = fresh()
    opt = optimlab.create(model, name)
    data = regression_batches()
    fixed = next(regression_batches(seed=7, n=256))
    before = loss_of(model, fixed).item()
    train(model, opt, 300, data)
    after = loss_of(model, fixed).item()
    # at their defaults the sign methods (lr 1e-4) and SGD (lr 1e-3, no momentum) are slow: 0.85 is
    # what all clear; Adam-type and Muon reach < 0.1 (a wrong sign or a no-op step fails it)
    assert after < 0.85 * before, f"{name}: loss {before:.4f} -> {after:.4f}"


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_bit_identically(name):
    model = fresh()
    opt = optimlab.create(model, name)
    data = regression_batches()
    train(model, opt, 5, data)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    data_a, data_b = regression_batches(seed=3), regression_batches(seed=3)
    train(model, opt, 5, data_a)

    clone = fresh(seed=123)  # different initial values, overwritten by the load
    clone.load_state_dict(saved_model)
    opt2 = optimlab.create(clone, name)
    opt2.load_state_dict(saved_opt)
    train(clone, opt2, 5, data_b)
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)
    for p, q in zip(model.parameters(), clone.parameters()):
        assert opt.state[p].keys() == opt2.state[q].keys()
        for k in opt.state[p]:
            assert torch.equal(torch.as_tensor(opt.state[p][k]), torch.as_tensor(opt2.state[q][k]))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtype_kept(name, dtype):
    model = fresh(dtype=dtype)
    opt = optimlab.create(model, name)
    train(model, opt, 2, regression_batches())
    for p in model.parameters():
        assert p.dtype == dtype
        assert torch.isfinite(p).all()
        for k, v in opt.state[p].items():
            if isinstance(v, torch.Tensor):
                assert v.dtype == dtype, f"{name}: state {k} is {v.dtype}"


@pytest.mark.parametrize("name", NAMES)
def test_closure_grad_untouched_and_none_grads_skipped(name):
    model = fresh()
    opt = optimlab.create(model, name)
    frozen = model[2].weight  # gets no gradient this step
    if name in VALUES_ONLY:  # no gradients at all: what is not trained does not require grad
        frozen.requires_grad_(False)
    before_frozen = frozen.detach().clone()
    x, y = next(regression_batches())

    def closure():
        opt.zero_grad()
        loss = loss_of(model, (x, y))
        backward(loss, create_graph=name in NEEDS_HVP)
        frozen.grad = None
        return loss

    grads_seen = {}

    def closure_recording():
        loss = closure()
        if not grads_seen:  # the first call's gradients (re-evaluating recipes call it again elsewhere)
            grads_seen.update({id(p): p.grad.clone() for p in model.parameters() if p.grad is not None})
        return loss

    loss = opt.step(with_batch(closure_recording, model, (x, y)))
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0
    assert torch.equal(frozen, before_frozen)
    assert frozen not in opt.state or not opt.state[frozen]
    for p in model.parameters():
        if p.grad is not None:
            assert torch.equal(p.grad, grads_seen[id(p)]), f"{name} modified p.grad"
    assert all(opt.state[p]["step"] == 1 for p in model.parameters() if p is not frozen)


@pytest.mark.parametrize("name", NAMES)
def test_lr_scheduler_takes_effect(name):
    model = fresh()
    opt = optimlab.create(model, name)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 if t == 0 else 0.0)
    data = regression_batches()
    train(model, opt, 1, data)
    sched.step()
    assert all(g["lr"] == 0.0 for g in opt.param_groups)
    snapshot = [p.detach().clone() for p in model.parameters()]
    train(model, opt, 3, data)
    for a, b in zip(snapshot, model.parameters()):
        assert torch.equal(a, b), f"{name} moved parameters at lr=0"


@pytest.mark.parametrize("name", NAMES)
def test_nonfinite_gradient_policy(name):
    model = fresh()
    x, y = next(regression_batches())
    opt = optimlab.create(model, name)

    def closure():
        model.zero_grad()
        loss = loss_of(model, (x, y))
        backward(loss, create_graph=name in NEEDS_HVP)
        if loss.requires_grad:
            model[0].bias.grad[0] = float("nan")
        return loss

    if name in VALUES_ONLY:  # no gradient to spoil: a NaN parameter makes the loss NaN
        with torch.no_grad():
            model[0].bias[0] = float("nan")
    before = [p.detach().clone() for p in model.parameters()]
    with_batch(closure, model, (x, y))
    with pytest.raises(FloatingPointError, match=r"0\.bias"):
        step(opt, closure)
    assert all(torch.equal(a, b) or torch.allclose(a, b, equal_nan=True, rtol=0, atol=0)
               for a, b in zip(before, model.parameters()))
    assert not any(opt.state[p] for p in model.parameters())
    skipper = optimlab.create(model, name, nonfinite="skip")
    step(skipper, closure)
    assert skipper.skipped_steps == 1
    assert all(torch.equal(a, b) or torch.allclose(a, b, equal_nan=True, rtol=0, atol=0)
               for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("name", NAMES)
def test_describe_is_complete(name):
    d = optimlab.describe(name)
    text = str(d)
    assert d.summary and d.paper and "arXiv" in d.paper or "ICML" in d.paper or "2024" in d.paper
    assert "lr" in text and "bytes per parameter" in text
    for info in d.roles.values():
        assert info["state_bytes"] >= 0
        assert all(doc for _, doc, _ in info["hparams"].values())
