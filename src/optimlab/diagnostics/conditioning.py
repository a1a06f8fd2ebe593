"""Conditioning diagnostics: per-layer weight condition numbers and the condition number of a curvature operator.

- ``layer_condition_numbers(model)``: κ(W_l) = σ_max/σ_min of every weight matrix (parameters with ≥ 2 dims,
  viewed as (shape[0], −1) like conv kernels), the quantity tracked by the Koopman-based generalization bound
  of "Koopman-based generalization bound: New aspect for full-rank weights" (bounds that grow with κ);
  ``WeightConditionTracker`` records them over training.
- ``operator_condition_number(op)``: κ of a symmetric positive semi-definite curvature operator (Gauss–Newton
  / Gram matrix, or a Hessian at a minimum) from its exact spectrum, with an explicit null-space rule: the
  smallest eigenvalue counted is the smallest one above ``rank_tol``·λ_max. For a model linear in its
  parameters this is κ of the Hermitian-square operator whose conditioning governs how fast gradient descent
  trains a physics-informed model (De Ryck, Bonnet, Mishra, de Bezenac, arXiv:2310.05801).
  ``model_condition_number(model, loss_fn, data, operator="ggn")`` builds the operator first.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .data import LossFn
from .geometry import condition_number
from .operators import CurvatureOperator, make_operator
from .spectrum import exact_spectrum_of

__all__ = ["layer_condition_numbers", "WeightConditionTracker", "OperatorConditioning",
           "operator_condition_number", "model_condition_number"]


def layer_condition_numbers(model: nn.Module, *, min_dim: int = 2) -> dict[str, float]:
    """{parameter name: σ_max/σ_min} for every parameter with at least ``min_dim`` dimensions (∞ if singular)."""
    if min_dim < 2:
        raise ValueError(f"layer_condition_numbers: min_dim must be >= 2, got {min_dim}")
    return {name: condition_number(p) for name, p in model.named_parameters() if p.dim() >= min_dim}


@dataclass
class WeightConditionTracker:
    """``record(step)`` appends the per-layer κ of ``model``'s weight matrices; ``history`` maps each layer
    name to its (step, κ) list."""

    model: nn.Module
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def record(self, step: int) -> dict[str, float]:
        values = layer_condition_numbers(self.model)
        for name, kappa in values.items():
            self.history.setdefault(name, []).append((int(step), kappa))
        return values


@dataclass
class OperatorConditioning:
    """condition (λ_max / smallest eigenvalue above the threshold), lambda_max, lambda_min (that eigenvalue),
    rank (eigenvalues above the threshold), dim, negative (eigenvalues below −threshold: not PSD if > 0),
    and all eigenvalues (ascending)."""

    condition: float
    lambda_max: float
    lambda_min: float
    rank: int
    dim: int
    negative: int
    eigenvalues: torch.Tensor


def operator_condition_number(op: CurvatureOperator, *, rank_tol: float = 1e-10,
                              max_dim: int = 5000) -> OperatorConditioning:
    """κ of ``op`` over its numerical range: eigenvalues ≤ rank_tol·λ_max are treated as the null space."""
    if not rank_tol >= 0:
        raise ValueError(f"operator_condition_number: rank_tol must be >= 0, got {rank_tol!r}")
    values = exact_spectrum_of(op, max_dim=max_dim).eigenvalues
    top = float(values[-1])
    if top <= 0:
        raise ValueError(f"operator_condition_number: the largest eigenvalue is {top:.3g} <= 0")
    thresh = rank_tol * top
    kept = values[values > thresh]
    low = float(kept[0])
    return OperatorConditioning(top / low, top, low, int(kept.numel()), int(values.numel()),
                                int((values < -thresh).sum()), values)


def model_condition_number(model: nn.Module, loss_fn: LossFn, data: Any, *, operator: str = "ggn",
                           rank_tol: float = 1e-10, max_dim: int = 5000, **operator_kwargs: Any) -> OperatorConditioning:
    """``operator_condition_number`` of the model's ``operator`` ("ggn" or "hessian") on ``data``."""
    return operator_condition_number(make_operator(model, loss_fn, data, operator, **operator_kwargs),
                                     rank_tol=rank_tol, max_dim=max_dim)
