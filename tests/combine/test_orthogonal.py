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
