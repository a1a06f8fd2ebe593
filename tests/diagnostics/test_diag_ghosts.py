"""JVP helpers, the ghosts-of-softmax safe radius, and the step controller that enforces it."""
import math

import pytest
import torch
from torch import nn

import optimlab
from optimlab.diagnostics.ghosts import binary_radius, radius_from_velocities, safe_radius
from optimlab.diagnostics.operators import model_jvp, output_jvp
from optimlab.optimizers.ghosts import safe_radius as safe_radius_recipe


def _net(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4)).to(dtype)


def test_jvp_by_double_backward_and_forward_mode_match_finite_differences():
    net = _net()
    x = torch.randn(5, 6, dtype=torch.float64)
    vs = [torch.randn_like(p) for p in net.parameters()]
    jv_rev, z = output_jvp(lambda: net(x), list(net.parameters()), vs)
    jv_fwd, z2 = model_jvp(net, x, vs)
    h = 1e-6
    with torch.no_grad():
        for p, v in zip(net.parameters(), vs):
            p.add_(v, alpha=h)
        zp = net(x)
        for p, v in zip(net.parameters(), vs):
            p.sub_(v, alpha=2 * h)
        zm = net(x)
    fd = (zp - zm) / (2 * h)
    assert torch.allclose(jv_rev, fd, rtol=1e-6, atol=1e-8)
    assert torch.allclose(jv_fwd, fd, rtol=1e-6, atol=1e-8)
    assert torch.equal(z, z2)


def test_radius_is_pi_over_largest_spread_and_binary_radius_is_larger():
    a = torch.tensor([[0.0, 1.0, -1.0], [0.5, 0.5, 0.0]])
    assert radius_from_velocities(a) == pytest.approx(math.pi / 2.0)
    assert radius_from_velocities(torch.zeros(2, 3)) == math.inf
    r = binary_radius(torch.tensor([3.0]), torch.tensor([[0.0, 2.0]]))
    assert float(r) == pytest.approx(math.sqrt(9 + math.pi ** 2) / 2)


def test_safe_radius_is_in_parameter_units():
    net = _net()
    x = torch.randn(7, 6, dtype=torch.float64)
    d = [torch.randn_like(p) for p in net.parameters()]
    out = safe_radius(net, x, d)
    out2 = safe_radius(net, x, [3 * v for v in d])
    assert out["rho"] == pytest.approx(out2["rho"], rel=1e-12)  # a unit direction: independent of scale
    raw = safe_radius(net, x, d, normalize=False)
    assert raw["rho"] * raw["norm"] == pytest.approx(out["rho"], rel=1e-12)
    # the Taylor series of a sample's log-sum-exp in τ diverges beyond ρ: the radius is where it says
    assert out["spread"].shape == (7,)


def _closure(net, opt, x, y):
    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        return loss
    closure.outputs = lambda: net(x)
    return closure


def test_controller_caps_the_step_at_c_radii_and_leaves_small_steps_alone():
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 4, (16,))
    for lr, capped in ((1e-4, False), (50.0, True)):
        net, ref = _net(), _net()
        opt = optimlab.create(net, safe_radius_recipe("sgd"), lr=lr, radius_c=0.5)
        before = [p.detach().clone() for p in net.parameters()]
        opt.step(_closure(net, opt, x, y))
        step = [p.detach() - b for p, b in zip(net.parameters(), before)]
        rho = safe_radius(ref, x, step)["rho"]  # the radius at the start point along the step taken
        tau = math.sqrt(sum(float(s.square().sum()) for s in step))
        st = opt.state[next(net.parameters())]
        scale, r = float(st["ghosts.scale"]), float(st["ghosts.r"])
        assert opt.closure_evals == 2  # the closure and one JVP
        if capped:
            assert scale < 1 and tau / rho == pytest.approx(0.5, rel=1e-4)
        else:
            assert scale == 1.0 and tau / rho == pytest.approx(r, rel=1e-4) and r < 0.5
            plain = _net()
            sgd = torch.optim.SGD(plain.parameters(), lr=lr)
            nn.functional.cross_entropy(plain(x), y).backward()
            sgd.step()
            for p, q in zip(net.parameters(), plain.parameters()):
                torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_controller_needs_outputs_on_the_closure():
    net = _net()
    opt = optimlab.create(net, safe_radius_recipe("adamw"), lr=1e-3)
    x, y = torch.randn(4, 6, dtype=torch.float64), torch.randint(0, 4, (4,))
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(TypeError, match=r"adamw\+safe_radius: needs Jacobian-vector products.*closure.outputs"):
        opt.step(lambda: nn.functional.cross_entropy(net(x), y))
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before)) and not opt.state
    with pytest.raises(ValueError, match="applies its own update"):
        safe_radius_recipe("sf_adamw")
