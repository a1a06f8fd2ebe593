"""``torch.compile(opt.step)`` works at the default settings (fused kernels are bypassed while compiling).

AdamW and the refusal under compile run by default (~37 s with a cold inductor cache on 2 shared cores);
the other families are slow tests."""

import pytest
import torch

import optimlab


def _run(name: str, compiled: bool, **hp) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    opt = optimlab.create(model, name, **hp)
    step = torch.compile(opt.step) if compiled else opt.step
    x = torch.randn(8, 8)
    for _ in range(20):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name,hp", [("adamw", {}),
                                     pytest.param("muon", {"ns_dtype": "float32"}, marks=pytest.mark.slow),
                                     pytest.param("lion", {}, marks=pytest.mark.slow),
                                     pytest.param("sgd", {}, marks=pytest.mark.slow)])
def test_compiled_20_steps_match_eager(name, hp):
    torch._dynamo.reset()
    for a, b in zip(_run(name, True, **hp), _run(name, False, **hp)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compiled_muon_at_defaults_stays_within_bf16_rounding():
    # Newton–Schulz in (emulated) bf16 rounds differently once inductor fuses the ops; 20 steps stay close
    torch._dynamo.reset()
    for a, b in zip(_run("muon", True), _run("muon", False)):
        assert bool(a.isfinite().all())
        torch.testing.assert_close(a, b, rtol=0.0, atol=1e-2)


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
