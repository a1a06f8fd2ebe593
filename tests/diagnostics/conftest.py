"""Shared fixtures for the diagnostics tests: tiny float64 models with exact Hessians."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from optimlab.diagnostics import supervised_loss

from diag_helpers import dense_hessian



@pytest.fixture
def mlp_problem():
    """A tanh MLP (5 → 12 → 3, 111 parameters), 48 examples, MSE — float64, exact Hessian available."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    x = torch.randn(48, 5, dtype=torch.float64)
    y = torch.randn(48, 3, dtype=torch.float64)
    loss_fn = supervised_loss(F.mse_loss)
    return model, loss_fn, (x, y)


@pytest.fixture
def mlp_hessian(mlp_problem):
    model, loss_fn, batch = mlp_problem
    return dense_hessian(model, loss_fn, batch)
