"""Planted-direction tasks (closed-form population loss) and the non-differentiable blocks (no gradient,
but zeroth-order training works)."""

import pytest
import torch
from torch import nn

import optimlab
from optimlab.lab.tasks import get_task
from optimlab.lab.tasks.nondiff import HardRouting, Int8Linear, Staircase, nondiff_mlp


def test_single_index_population_loss_is_one_minus_overlap_cubed():
    inst = get_task("single_index", dim=8, batch_size=200_000).build(0)
    x, y = inst.batch(0)
    with torch.no_grad():
        sample = float(inst.loss(inst.model, (x, y)))
        m = float(inst.model() @ inst.star)
    assert abs(sample - (1 - m**3)) < 0.05
    assert abs(inst.evaluate()["overlap"] - m) < 1e-6


def test_tensor_pca_loss_at_the_spike_is_near_zero():
    inst = get_task("tensor_pca", dim=8, snr=1e4).build(1)
    with torch.no_grad():
        inst.model.theta.copy_(inst.star * 3)
        assert abs(float(inst.loss(inst.model, ()))) < 1e-2
    assert abs(inst.evaluate()["overlap"] - 1) < 1e-6


def test_blocks_have_no_gradient():
    torch.manual_seed(0)
    x = torch.randn(16, 6)
    lin, route, stair = Int8Linear(6, 5), HardRouting(6, 5, 3), Staircase(4)
    lin(x).sum().backward()
    assert lin.weight.grad is not None and torch.count_nonzero(lin.weight.grad) == 0
    route(x).square().sum().backward()
    assert route.router.weight.grad is None  # argmax: the router is not in the graph
    z = torch.randn(100, requires_grad=True)
    stair(z).sum().backward()
    assert torch.count_nonzero(z.grad) == 0
    assert len(torch.unique(stair(torch.linspace(-5, 5, 1000)))) == 9


@pytest.mark.slow
def test_zeroth_order_trains_a_nondifferentiable_classifier():
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    d = load_digits()
    x = torch.tensor(d.data[:256], dtype=torch.float32) / 16
    y = torch.tensor(d.target[:256])
    model = nondiff_mlp(64, 16, 10, levels=8, experts=2)
    closure = lambda: nn.functional.cross_entropy(model(x), y)  # noqa: E731
    with torch.no_grad():
        before = float(closure())
    opt = optimlab.create(model, "zo_sgd", lr=0.05, mu=0.02, q=4)
    for _ in range(150):
        opt.step(closure)
    with torch.no_grad():
        after = float(closure())
    assert after < 0.8 * before, (before, after)
