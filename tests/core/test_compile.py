"""``torch.compile(opt.step)`` works at the default settings (fused kernels are bypassed while compiling).

Compiling takes minutes on a loaded 2-core CPU, so these are slow tests."""

import pytest
import torch

import optimlab


def _run(name: str, compiled: bool) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    opt = optimlab.create(model, name)
    step = torch.compile(opt.step) if compiled else opt.step
    x = torch.randn(8, 8)
    for _ in range(20):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adamw", "muon", "lion", "sgd"])
def test_compiled_20_steps_match_eager(name):
    torch._dynamo.reset()
    for a, b in zip(_run(name, True), _run(name, False)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compiled_step_still_refuses_nonfinite():
    torch._dynamo.reset()
    model = torch.nn.Linear(4, 3)
    opt = optimlab.create(model, "adamw")
    step = torch.compile(opt.step)
    model(torch.randn(2, 4)).sum().backward()
    model.weight.grad[1, 1] = float("nan")
    w = model.weight.detach().clone()
    with pytest.raises(FloatingPointError, match="'weight'"):
        step()
    assert torch.equal(w, model.weight)
