"""Regularized Muon's map and energy, and its limit ε → 0 (Muon with an exact polar factor)."""

import pytest
import torch

import optimlab
from optimlab.diagnostics.hamiltonian import hamiltonian_energy, kinetic_energy
from optimlab.transforms.regularized_polar import regularized_polar


@pytest.mark.parametrize("shape", [(30, 20), (20, 30)])
@pytest.mark.parametrize("eps", [1e-3, 1.0])
def test_map_is_the_gradient_of_the_smoothed_nuclear_norm(shape, eps):
    """∇_M tr((MᵀM + εI)^{1/2}) = M(MᵀM + εI)^{-1/2}, by autograd through the literal trace (eigvalsh of the
    n × n matrix MᵀM + εI, whichever side is smaller), on 20 random matrices in float64."""
    g = torch.Generator().manual_seed(0)
    M = torch.randn(20, *shape, generator=g, dtype=torch.float64, requires_grad=True)
    n = shape[1]
    trace = torch.linalg.eigvalsh(M.mT @ M + eps * torch.eye(n, dtype=torch.float64)).sqrt().sum()
    (grad,) = torch.autograd.grad(trace, M)
    ours = regularized_polar(M.detach(), eps)
    assert ((grad - ours).norm() / grad.norm()).item() < 1e-10
    # and the potential the energy monitor uses has the same gradient (it differs by a constant)
    M2 = M.detach().clone().requires_grad_(True)
    (grad2,) = torch.autograd.grad(kinetic_energy(M2, eps), M2)
    assert ((grad2 - ours).norm() / grad.norm()).item() < 1e-10


def test_small_eps_is_muon_with_an_exact_polar_factor():
    g = torch.Generator().manual_seed(1)
    shapes = [(6, 5), (5, 8), (4, 2, 3)]
    runs = []
    for name, hp in [("regularized_muon", {"polar_eps": 1e-24}), ("muon", {"ortho_backend": "svd"})]:
        g.manual_seed(1)
        ps = [torch.nn.Parameter(torch.randn(*s, generator=g, dtype=torch.float64)) for s in shapes]
        start = [p.detach().clone() for p in ps]
        opt = optimlab.create(ps, name, lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.01, **hp)
        for _ in range(10):
            for p in ps:
                p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64) + 0.3 * p.detach()
            opt.step()
        runs.append((ps, start))
    (ours, start), (muon, _) = runs
    err = max(((a - b).norm() / (b - s).norm()).item() for a, b, s in zip(ours, muon, start))
    assert err < 1e-8
    # a finite ε is not Muon
    assert not torch.allclose(regularized_polar(torch.eye(3, dtype=torch.float64) * 1e-2, 1e-4),
                              torch.eye(3, dtype=torch.float64), atol=0.1)


def _least_squares(steps=300, **hp):
    g = torch.Generator().manual_seed(0)
    A = torch.randn(64, 12, generator=g, dtype=torch.float64)
    B = A @ torch.randn(8, 12, generator=g, dtype=torch.float64).T
    W = torch.nn.Parameter(torch.zeros(8, 12, dtype=torch.float64))
    opt = optimlab.create([W], "regularized_muon", **hp)
    energies, losses = [], []
    for _ in range(steps):
        f = 0.5 * ((A @ W.T - B) ** 2).mean()
        energies.append(hamiltonian_energy(opt, f.detach()))
        losses.append(f.item())
        opt.zero_grad()
        f.backward()
        opt.step()
    return torch.tensor(energies), torch.tensor(losses)


def test_energy_never_increases_while_the_loss_does():
    """Matrix least squares, underdamped momentum (β = 0.95, lr 0.05): the loss rises at dozens of steps
    (overshoot), the energy f + (lr·s/(1−β))·K(M) falls at every step."""
    H, f = _least_squares(lr=0.05, momentum=0.95, polar_eps=1e-4, weight_decay=0.0)
    assert (f.diff() > 1e-4).sum() >= 10
    assert (H.diff() < 0).all(), f"largest energy increase {H.diff().max():.2e}"
    assert H[-1] < 0.05 * H[0]


def test_energy_monitor_refuses_what_it_is_not_derived_for():
    W = torch.nn.Parameter(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="nesterov=False and weight_decay=0"):
        hamiltonian_energy(optimlab.create([W], "regularized_muon"), 0.0)  # default weight_decay 0.01
    with pytest.raises(ValueError, match="nesterov=False and weight_decay=0"):
        hamiltonian_energy(optimlab.create([W], "regularized_muon", weight_decay=0.0, nesterov=True), 0.0)
    with pytest.raises(ValueError, match="no param group with the regularized polar map"):
        hamiltonian_energy(optimlab.create([W], "muon"), 0.0)
