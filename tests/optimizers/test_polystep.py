"""PolyStep: parity with the literal transcription (fp64), exact restore, no .grad, and that it trains."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import optimlab
from optimlab.reference.polystep import polystep_step, simplex_vertices
from optimlab.transforms.polystep import coordinates, projection_block, rotation, vertices


def _model(dtype=torch.float64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 1)).to(dtype)


def _data(dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 5, generator=g, dtype=dtype)
    return x, torch.sin(x.sum(1, keepdim=True))


def test_simplex_vertices_match_reference_and_are_regular():
    for d in (2, 3, 8):
        ours = vertices("simplex", d)
        ref = torch.stack(simplex_vertices(d))
        assert torch.allclose(ours, ref, atol=1e-12)
        gram = ours @ ours.T
        assert torch.allclose(gram.diagonal(), torch.ones(d + 1, dtype=torch.float64))
        off = gram[~torch.eye(d + 1, dtype=torch.bool)]
        assert torch.allclose(off, torch.full_like(off, -1.0 / d), atol=1e-12)  # regular, centred


def test_rotation_is_special_orthogonal_and_seeded():
    r = rotation(3, 7, 1, 2, 8)
    assert torch.allclose(r.T @ r, torch.eye(8, dtype=torch.float64), atol=1e-12)
    assert torch.linalg.det(r) > 0
    assert torch.equal(r, rotation(3, 7, 1, 2, 8)) and not torch.equal(r, rotation(3, 8, 1, 2, 8))


@pytest.mark.parametrize("polytope", ["simplex", "orthoplex"])
def test_parity_with_reference_fp64(polytope):
    hp = dict(lr=0.3, probe=0.05, eps=0.02, rank=2, particle_dim=4, polytope=polytope, seed=5)
    model = _model()
    x_in, y = _data()
    ref_model = _model()
    params = list(ref_model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])

    def f(vec: torch.Tensor) -> float:
        i = 0
        with torch.no_grad():
            for p in params:
                p.copy_(vec[i:i + p.numel()].view_as(p))
                i += p.numel()
            return float(nn.functional.mse_loss(ref_model(x_in), y))

    opt = optimlab.create(model, "polystep", **hp)
    position = {id(p): k for k, p in enumerate(model.parameters())}
    order = [position[id(p)] for g in opt.param_groups for p in g["params"]]  # the engine's parameter index i
    d, n = hp["particle_dim"], flat.numel()
    starts = [sum(p.numel() for p in params[:k]) for k in range(len(params))]
    verts = list(vertices(polytope, d)) if polytope == "orthoplex" else simplex_vertices(d)
    for step in range(1, 4):
        blocks, rots = [], []
        for i, k in enumerate(order):
            p, off = params[k], starts[k]
            c, _ = coordinates(p.shape, hp["rank"])
            for b in range(math.ceil(c / d)):
                full = torch.zeros(n, d, dtype=torch.float64)
                full[off:off + p.numel()] = projection_block(p.shape, hp["rank"], hp["seed"], i, b, d)
                blocks.append(full)
                rots.append(rotation(hp["seed"], step, i, b, d))
        flat = polystep_step(f, flat, blocks, rots, verts, lr=hp["lr"], probe=hp["probe"], eps=hp["eps"])
        opt.step(lambda: nn.functional.mse_loss(model(x_in), y))
        ours = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        assert torch.allclose(ours, flat, rtol=0, atol=1e-12), (step, (ours - flat).abs().max())


def test_probes_restore_parameters_exactly_and_create_no_grad():
    model = _model(torch.float32)
    x_in, y = _data(torch.float32)
    before = [p.detach().clone() for p in model.parameters()]
    seen = []

    def closure():
        seen.append([p.detach().clone() for p in model.parameters()])
        return nn.functional.mse_loss(model(x_in), y)

    opt = optimlab.create(model, "polystep", lr=0.0)
    loss = opt.step(closure)
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # lr 0: x back bit-identically
    assert all(torch.equal(a, b) for a, b in zip(before, seen[0]))  # the returned loss is f(x)
    with torch.no_grad():
        assert float(loss) == float(nn.functional.mse_loss(model(x_in), y))
    blocks = sum(math.ceil(coordinates(p.shape, 4)[0] / 8) for p in model.parameters())
    assert len(seen) == 1 + 9 * blocks  # f(x) and one probe per (particle, simplex vertex)


def test_trains_a_staircase_network_where_the_gradient_is_zero():
    from optimlab.lab.tasks.nondiff import Staircase

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), Staircase(2), nn.Linear(8, 1))
    g = torch.Generator().manual_seed(2)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, :1] > 0).float()
    loss = lambda: nn.functional.mse_loss(model(x), y)  # noqa: E731
    start = float(loss())
    opt = optimlab.create(model, "polystep", lr=0.3, probe=0.3, eps=0.01)
    for _ in range(25):
        opt.step(loss)
    assert float(loss()) < 0.6 * start
