"""``torch.compile(opt.step)`` works at the default settings (fused kernels are bypassed while compiling).

AdamW, the on-device refusal (no graph break) under compile run by default (~37 s with a cold inductor cache on 2 shared cores);
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


def test_compiled_step_refuses_nonfinite_on_device_leaving_everything_unchanged():
    # the check stays in the graph (device assertions naming the parameter, masked write-back): a RuntimeError
    # from the assertion, and parameters, state tensors, step counts and the state's keys exactly as before
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    opt = optimlab.create(model, "adamw")
    step = torch.compile(opt.step)
    x = torch.randn(5, 4)

    def grads(bad=None):
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        if bad is not None:
            bad.grad.view(-1)[1] = float("nan")

    grads(model[0].weight)  # the very first step: no state may be left behind
    with pytest.raises(RuntimeError, match=r"'0\.weight' \(shape \(3, 4\)\) has NaN or Inf; nothing was updated"):
        step()
    assert len(opt.state) == 0
    for _ in range(3):
        grads()
        step()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    st = {id(p): {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()} for p, s in opt.state.items()}
    grads(model[1].bias)  # not the first gradient of its group
    with pytest.raises(RuntimeError, match=r"'1\.bias'"):
        step()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for p, s in opt.state.items():
        for k, v in s.items():
            ref = st[id(p)][k]
            assert (torch.equal(v, ref) if torch.is_tensor(v) else v == ref), k
    grads()
    step()  # and it trains on
    assert all(bool(p.isfinite().all()) for p in model.parameters())
    assert all(s["step"] == 4 for s in opt.state.values())


def test_compiled_default_step_has_no_graph_break():
    torch._dynamo.reset()
    model = torch.nn.Linear(4, 3)
    opt = optimlab.create(model, "adamw")
    model(torch.randn(2, 4)).sum().backward()
    opt.step()  # state exists: the explained call is a steady-state step
    assert torch._dynamo.explain(opt.step)().graph_break_count == 0
