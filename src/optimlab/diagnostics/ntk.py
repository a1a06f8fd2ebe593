"""Empirical neural tangent kernel from per-sample Jacobians (torch.func), and its fluctuation over inits.

Θ(x, x') = Σ_μ λ_μ ∂f(x)/∂θ_μ · ∂f(x')/∂θ_μ (Jacot, Gabriel, Hongler, "Neural Tangent Kernel",
arXiv:1806.07572). The per-parameter weights λ_μ are the learning-rate tensor of Roberts, Yaida, Hanin,
"The Principles of Deep Learning Theory" (arXiv:2106.10165): ``scaling="fan_in"`` uses λ = 1/fan_in for
every weight matrix and 1 for biases (the normalization under which Θ has a width-independent limit);
``scaling=None`` is the plain sum.

The fluctuation of a kernel across initializations is measured by its relative variance
mean_ij Var[Θ_ij] / mean_ij E[Θ_ij]² (Day, Kahn, Roberts, arXiv:2310.07765, compare such normalized
second moments across depth; at leading order in 1/width they grow linearly with depth for critical
Gaussian inits).
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

__all__ = ["empirical_ntk", "relative_variance"]


def empirical_ntk(model: nn.Module, inputs: torch.Tensor, *, scaling: str | None = None,
                  weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """The empirical NTK of ``model`` on ``inputs`` (a batch along dim 0).

    Returns (n, n) when the model gives one number per sample, else (n, n, c, c) with c the flattened
    output size. ``scaling``: None or "fan_in" (λ = 1/fan_in for parameters of dim ≥ 2); ``weights``:
    explicit {parameter name: λ}, which overrides ``scaling`` for the names it lists. Parameters with
    ``requires_grad=False`` are left out.
    """
    if scaling not in (None, "fan_in"):
        raise ValueError(f"scaling must be None or 'fan_in', got {scaling!r}")
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    if not params:
        raise ValueError("empirical_ntk: the model has no trainable parameters")
    lam = {}
    for name, p in params.items():
        lam[name] = 1.0 / p[0].numel() if scaling == "fan_in" and p.dim() >= 2 else 1.0
    lam.update(weights or {})

    def one(pars, x):
        return functional_call(model, pars, (x.unsqueeze(0),)).reshape(-1)

    jac = vmap(jacrev(one), in_dims=(None, 0))(params, inputs)  # name -> (n, c, *shape)
    n = inputs.shape[0]
    kernel = None
    for name, j in jac.items():
        j = j.reshape(n, j.shape[1], -1)
        part = lam[name] * torch.einsum("iap,jbp->ijab", j, j)
        kernel = part if kernel is None else kernel + part
    assert kernel is not None
    return kernel[:, :, 0, 0] if kernel.shape[-1] == 1 else kernel


def relative_variance(kernels: torch.Tensor) -> float:
    """mean_ij Var[Θ_ij] / mean_ij E[Θ_ij]² over the first dim (one kernel per initialization)."""
    if kernels.dim() < 2 or kernels.shape[0] < 2:
        raise ValueError("relative_variance needs a stack of at least two kernels")
    k = kernels.to(torch.float64)
    return float(k.var(dim=0, unbiased=True).mean() / k.mean(dim=0).pow(2).mean())
