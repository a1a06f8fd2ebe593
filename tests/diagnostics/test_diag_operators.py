"""Curvature operators: exactness against independent dense references, data handling, BN/dropout policy."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from optimlab.diagnostics import GGNOperator, HessianOperator, make_operator, supervised_loss
from optimlab.diagnostics.data import as_batches

from diag_helpers import dense_hessian


def test_hvp_matches_dense_reference(mlp_problem, mlp_hessian):
    model, loss_fn, batch = mlp_problem
    op = HessianOperator(model, loss_fn, batch)
    torch.testing.assert_close(op.to_dense(), mlp_hessian, atol=1e-10, rtol=1e-8)
    v = torch.randn(op.dim, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(v), mlp_hessian @ v, atol=1e-10, rtol=1e-8)
    uncached = HessianOperator(model, loss_fn, batch, cache_graph=False)
    torch.testing.assert_close(uncached.matvec(v), mlp_hessian @ v, atol=1e-10, rtol=1e-8)
    assert op.data.num_examples == 48 and op.data.num_batches == 1


def test_batches_are_weighted_by_examples(mlp_problem, mlp_hessian):
    model, loss_fn, (x, y) = mlp_problem
    batches = [(x[:16], y[:16]), (x[16:], y[16:])]  # unequal sizes: weights 1/3 and 2/3
    op = HessianOperator(model, loss_fn, batches)
    assert (op.data.num_batches, op.data.num_examples) == (2, 48)
    v = torch.randn(op.dim, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(v), mlp_hessian @ v, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(op.gradient(), HessianOperator(model, loss_fn, (x, y)).gradient())
    first = HessianOperator(model, loss_fn, iter(batches), max_batches=1)
    assert (first.data.num_batches, first.data.num_examples) == (1, 16)


def test_cached_graph_is_dropped_after_an_optimizer_step(mlp_problem):
    model, loss_fn, batch = mlp_problem
    op = HessianOperator(model, loss_fn, batch)
    v = torch.randn(op.dim, dtype=torch.float64)
    before = op.matvec(v)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss_fn(model, batch).backward()
    opt.step()
    after = op.matvec(v)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, dense_hessian(model, loss_fn, batch) @ v, atol=1e-10, rtol=1e-8)


def test_ggn_is_jacobian_transpose_times_loss_hessian_times_jacobian(mlp_problem):
    model, loss_fn, (x, y) = mlp_problem
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone() for p in model.parameters())
    jac = torch.autograd.functional.jacobian(
        lambda *ps: torch.func.functional_call(model, dict(zip(names, ps)), (x,)), params)
    J = torch.cat([j.reshape(y.numel(), -1) for j in jac], dim=1)
    expected = (2.0 / y.numel()) * J.T @ J  # mse_loss(mean) has output Hessian 2/(N·C)·I
    G = GGNOperator(model, loss_fn, (x, y)).to_dense()
    torch.testing.assert_close(G, expected, atol=1e-10, rtol=1e-8)
    assert float(torch.linalg.eigvalsh(G).min()) > -1e-10  # PSD


def test_ggn_equals_hessian_for_a_linear_model():
    torch.manual_seed(1)
    model = nn.Linear(4, 2).double()
    batch = (torch.randn(20, 4, dtype=torch.float64), torch.randn(20, 2, dtype=torch.float64))
    loss_fn = supervised_loss(F.mse_loss)
    torch.testing.assert_close(GGNOperator(model, loss_fn, batch).to_dense(),
                               HessianOperator(model, loss_fn, batch).to_dense(), atol=1e-12, rtol=1e-10)


def _bn_model():
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2)).double()


@pytest.mark.parametrize("model_mode", ["train", "eval"])
def test_batchnorm_policy_is_the_documented_one(model_mode):
    model = _bn_model()
    batch = (torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64))
    loss_fn = supervised_loss(F.mse_loss)
    model.train(model_mode == "train")
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    H_batch = HessianOperator(model, loss_fn, batch, bn="batch").to_dense()
    H_running = HessianOperator(model, loss_fn, batch, bn="running").to_dense()
    # The model comes back untouched: same mode, same running statistics.
    assert model.training == (model_mode == "train") and model[1].training == (model_mode == "train")
    for k, v in buffers.items():
        torch.testing.assert_close(model.state_dict()[k], v)
    # "batch" is the train-mode Hessian and "running" the eval-mode one, whatever mode the model was in.
    torch.testing.assert_close(H_batch, dense_hessian(copy.deepcopy(model).train(), loss_fn, batch),
                               atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(H_running, dense_hessian(copy.deepcopy(model).eval(), loss_fn, batch),
                               atol=1e-9, rtol=1e-7)
    assert not torch.allclose(H_batch, H_running, atol=1e-6)


def test_dropout_policy_off_and_fixed():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 2)).double().train()
    batch = (torch.randn(12, 4, dtype=torch.float64), torch.randn(12, 2, dtype=torch.float64))
    loss_fn = supervised_loss(F.mse_loss)
    rng = torch.get_rng_state()
    H_off = HessianOperator(model, loss_fn, batch, dropout="off").to_dense()
    torch.testing.assert_close(H_off, dense_hessian(copy.deepcopy(model).eval(), loss_fn, batch), atol=1e-10, rtol=1e-8)
    fixed = HessianOperator(model, loss_fn, batch, dropout="fixed", seed=7, cache_graph=False)
    v = torch.randn(fixed.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(fixed.matvec(v), fixed.matvec(v))  # same mask every product
    H_fixed = fixed.to_dense()
    torch.testing.assert_close(H_fixed, H_fixed.T, atol=1e-10, rtol=1e-8)
    with torch.random.fork_rng():
        torch.manual_seed(7)  # the documented mask: seed + batch index 0
        H_ref = dense_hessian(copy.deepcopy(model).train(), loss_fn, batch)
    torch.testing.assert_close(H_fixed, H_ref, atol=1e-10, rtol=1e-8)
    assert not torch.allclose(H_fixed, H_off, atol=1e-6)
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's random stream is untouched
    assert model.training and model[2].training


def test_single_batch_detection():
    x, y = torch.zeros(5, 2), torch.zeros(5)
    assert as_batches((x, y))[2].num_batches == 1
    assert as_batches({"x": x, "y": y})[2].num_examples == 5
    assert as_batches([(x, y), (x, y)])[2].num_batches == 2
    assert as_batches(x)[2].num_examples == 5


def _vector_loss(model, batch):
    return model(batch[0]).sum(dim=1)


@pytest.mark.parametrize("kwargs, message", [
    ({"bn": "train"}, "bn must be one of"),
    ({"dropout": "on"}, "dropout must be one of"),
    ({"data": None}, "data must be a batch"),
    ({"data": []}, "no batches"),
    ({"data": 3}, "data must be a batch"),
    ({"max_batches": 0}, "max_batches must be a positive int"),
    ({"cache_graph": "yes"}, "cache_graph must be True, False or None"),
    ({"loss_fn": _vector_loss}, "scalar floating tensor"),
    ({"loss_fn": "mse"}, "loss_fn must be callable"),
    ({"params": [torch.zeros(3)]}, "requires_grad=True"),
    ({"model": "net"}, "model must be a torch.nn.Module"),
    ({"operator": "fisher"}, "operator must be one of"),
    ({"operator": "ggn", "loss_fn": lambda m, b: F.mse_loss(m(b[0]), b[1])}, "supervised_loss"),
])
def test_bad_inputs_raise_value_errors(mlp_problem, kwargs, message):
    model, loss_fn, batch = mlp_problem
    args = {"model": model, "loss_fn": loss_fn, "data": batch, "operator": "hessian"} | kwargs
    with pytest.raises(ValueError, match=message):
        op = make_operator(args.pop("model"), args.pop("loss_fn"), args.pop("data"), args.pop("operator"), **args)
        op.matvec(torch.zeros(op.dim, dtype=op.dtype))


def test_wrong_vector_shape_is_a_value_error(mlp_problem):
    op = HessianOperator(*mlp_problem)
    with pytest.raises(ValueError, match=r"flat tensor of shape \(111,\)"):
        op.matvec(torch.zeros(3, dtype=torch.float64))
