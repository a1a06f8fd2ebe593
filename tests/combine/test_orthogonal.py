"""Orthogonal-gradient projection (continual learning) against its reference; OGD directions; state."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from optimlab.combine import OrthogonalProjection, ogd_directions
from optimlab.reference.combine import orthogonal_projection_ref


def test_projection_matches_reference_and_is_orthogonal():
    g = torch.Generator().manual_seed(0)
    V = torch.randn(6, 20, generator=g, dtype=torch.float64)
    V[5] = V[0] + 2 * V[1]  # dependent: dropped
    proj = OrthogonalProjection()
    assert proj.add(V) == 5 and proj.size == 5
    d = torch.randn(20, generator=g, dtype=torch.float64)
    out = proj.project(d)
    np.testing.assert_allclose(out.numpy(), orthogonal_projection_ref([v.numpy() for v in V], d.numpy()), atol=1e-12)
    assert float((V @ out).abs().max()) < 1e-10
    # a vector already orthogonal is unchanged
    q = out / out.norm()
    torch.testing.assert_close(proj.project(q), q)


def test_project_grad_in_place_and_state_round_trip():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(5, 3), torch.randint(0, 2, (5,))
    proj = OrthogonalProjection()
    proj.add(ogd_directions(model, x, y))
    nn.functional.cross_entropy(model(x), y).backward()
    proj.project_grad_(model)
    flat = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double()
    assert float((proj.basis @ flat).abs().max()) < 1e-6
    other = OrthogonalProjection()
    other.load_state_dict(proj.state_dict())
    assert torch.equal(other.basis, proj.basis)
    bad = proj.state_dict()
    bad["basis"] = 2 * bad["basis"]
    with pytest.raises(ValueError, match="not orthonormal"):
        other.load_state_dict(bad)


def test_ogd_directions_are_true_class_logit_gradients():
    torch.manual_seed(1)
    model = nn.Linear(4, 3)
    x, y = torch.randn(2, 4), torch.tensor([2, 0])
    J = ogd_directions(model, x, y)
    for i in range(2):
        model.zero_grad()
        model(x[i:i + 1])[0, y[i]].backward()
        want = torch.cat([model.weight.grad.reshape(-1), model.bias.grad])
        torch.testing.assert_close(J[i], want)


def test_gpm_keeps_earlier_inputs_outputs_fixed_and_resumes():
    from optimlab.combine import GPMProjection

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    # task inputs in a 3-dimensional subspace of R^6
    X = torch.randn(40, 3) @ torch.randn(3, 6)
    gpm = GPMProjection(model, threshold=0.999)
    sizes = gpm.update(model, X)
    assert sizes["0"] == 3  # the input space's rank (threshold close to 1)
    before = model[0](X).detach()
    nn.functional.cross_entropy(model(torch.randn(8, 6)), torch.randint(0, 3, (8,))).backward()
    gpm.project_grad_()
    with torch.no_grad():
        model[0].weight.sub_(0.5 * model[0].weight.grad)
    torch.testing.assert_close(model[0](X) - model[0].bias, before - model[0].bias, atol=1e-5, rtol=1e-5)
    other = GPMProjection(model, threshold=0.999)
    other.load_state_dict(gpm.state_dict())
    assert all(torch.equal(other.bases[n], gpm.bases[n]) for n in gpm.bases)
    bad = gpm.state_dict()
    bad["bases"] = {"0": torch.ones(6, 2, dtype=torch.float64)}
    with pytest.raises(ValueError, match="not orthonormal"):
        other.load_state_dict(bad)
    with pytest.raises(ValueError, match="threshold"):
        GPMProjection(model, threshold=1.5)
