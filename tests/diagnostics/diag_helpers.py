"""Helpers for the diagnostics tests (a uniquely named module, importable from the test files)."""
from __future__ import annotations

import torch
from torch import nn


def dense_hessian(model: nn.Module, loss_fn, batch) -> torch.Tensor:
    """Reference Hessian by torch.autograd.functional.hessian over a functional_call (independent path)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = tuple(p.detach().clone() for n, p in model.named_parameters() if p.requires_grad)

    def f(*ps):
        out = torch.func.functional_call(model, dict(zip(names, ps)), (batch[0],))
        return loss_fn.output_loss(out, batch)

    blocks = torch.autograd.functional.hessian(f, params)
    sizes = [p.numel() for p in params]
    return torch.cat([torch.cat([blocks[i][j].reshape(sizes[i], sizes[j]) for j in range(len(params))], 1)
                      for i in range(len(params))], 0)


def quadratic_matrix(eigenvalues: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A dense symmetric matrix with the given spectrum, in a random orthonormal basis."""
    gen = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return (Q * eigenvalues.to(torch.float64)) @ Q.T
