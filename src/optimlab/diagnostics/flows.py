"""Continuous-time flows of a loss, integrated with RK4: the gradient flow and the drift-corrected flow.

Gradient descent θ_{t+1} = θ_t − h∇L(θ_t) follows the negative gradient flow θ̇ = −∇L only up to O(h²)
per step (the discretisation drift). The modified flow of Barrett & Dherin, "Implicit Gradient
Regularization" (arXiv:2009.11162), θ̇ = −∇(L + (h/4)‖∇L‖²) = −(∇L + (h/2) H∇L), matches one GD step up to
O(h³); Rosca, "On discretisation drift and smoothness regularisation in neural network training"
(arXiv:2310.14036), studies it and its extensions. H∇L is a Hessian-vector product by double backward
(Pearlmutter 1994), as in ``optimlab.diagnostics.operators``.

Everything acts on flat parameter vectors: ``flat_loss(model, loss_fn, batch)`` turns a model and a batch
into f(θ) (the model's own parameters are not modified) and the starting vector θ₀.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.func import functional_call

__all__ = ["flat_loss", "gradient_flow", "modified_flow", "gd_step", "rk4"]

Field = Callable[[torch.Tensor], torch.Tensor]


class _Bound(nn.Module):
    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module, Any], torch.Tensor], batch: Any) -> None:
        super().__init__()
        self.model, self.loss_fn, self.batch = model, loss_fn, batch

    def forward(self) -> torch.Tensor:
        return self.loss_fn(self.model, self.batch)


def flat_loss(model: nn.Module, loss_fn: Callable[[nn.Module, Any], torch.Tensor], batch: Any
              ) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """(f, θ₀): f(θ) = loss_fn(model with parameters θ, batch) for a flat θ; θ₀ the current parameters
    (detached copy, in their dtype; f evaluates in θ's dtype, so build the model in the dtype you
    integrate in). Only parameters with ``requires_grad`` are in θ."""
    names = [k for k, p in model.named_parameters() if p.requires_grad]
    like = [p for _, p in model.named_parameters() if p.requires_grad]
    bound = _Bound(model, loss_fn, batch)

    def f(theta: torch.Tensor) -> torch.Tensor:
        parts = torch.split(theta, [p.numel() for p in like])
        pars = {f"model.{k}": v.view(p.shape) for k, v, p in zip(names, parts, like)}
        return functional_call(bound, pars, ())

    return f, torch.cat([p.detach().reshape(-1) for p in like]).clone()


def _grad(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, create_graph: bool = False
          ) -> tuple[torch.Tensor, torch.Tensor]:
    th = theta.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(f(th), th, create_graph=create_graph)
    return th, g


def gradient_flow(f: Callable[[torch.Tensor], torch.Tensor]) -> Field:
    """The field θ ↦ −∇f(θ)."""
    return lambda theta: -_grad(f, theta)[1].detach()


def modified_flow(f: Callable[[torch.Tensor], torch.Tensor], h: float) -> Field:
    """The field θ ↦ −(∇f + (h/2)·H∇f) = −∇(f + (h/4)‖∇f‖²), one HVP per evaluation."""
    def field(theta: torch.Tensor) -> torch.Tensor:
        th, g = _grad(f, theta, create_graph=True)
        (hg,) = torch.autograd.grad(g, th, grad_outputs=g.detach())
        return -(g.detach() + 0.5 * h * hg)
    return field


def gd_step(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, h: float) -> torch.Tensor:
    """One gradient-descent step θ − h∇f(θ)."""
    return theta - h * _grad(f, theta)[1].detach()


def rk4(field: Field, theta0: torch.Tensor, t: float, steps: int) -> torch.Tensor:
    """θ(t) of θ̇ = field(θ), θ(0) = θ₀, by ``steps`` classical Runge–Kutta-4 steps of size t/steps."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    dt = t / steps
    theta = theta0.detach().clone()
    for _ in range(steps):
        k1 = field(theta)
        k2 = field(theta + 0.5 * dt * k1)
        k3 = field(theta + 0.5 * dt * k2)
        k4 = field(theta + dt * k3)
        theta = theta + (dt / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    return theta
