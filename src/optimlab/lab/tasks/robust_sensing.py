"""Robust low-rank matrix sensing: the ``matrix_sensing`` task with dense gross outliers and an ℓ1 loss.

y_i = ⟨A_i, M*⟩ + s_i, where a random ``outlier_fraction`` of the measurements carries s_i ~
N(0, (outlier_scale · ‖M*‖_F)²) (‖M*‖_F is the standard deviation of a clean measurement) and the others
s_i = 0 (plus the base task's Gaussian ``noise``). The ℓ1 loss (1/m) Σ_i |⟨A_i, U Uᵀ⟩ − y_i| is the setting
of Ma & Fattahi, "Global Convergence of Sub-gradient Method for Robust Matrix Recovery: Small
Initialization, Noisy Measurements, and Over-parameterization" (arXiv:2202.08788): the sub-gradient method
with small initialization and geometrically decaying steps recovers M* regardless of the outliers' size and
of over-parameterization; ``loss="l2"`` is the base task's least squares, which the outliers bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import check_choice, check_float, generator
from .matrix_sensing import MatrixSensing, MatrixSensingInstance

LOSSES = ("l1", "l2")


@dataclass(frozen=True, kw_only=True)
class RobustMatrixSensing(MatrixSensing):
    """The options of ``matrix_sensing`` plus outlier_fraction (0.3), outlier_scale (10.0) and loss ("l1" |
    "l2"). Metrics as ``matrix_sensing`` (train_loss is the chosen loss on all measurements, outliers
    included); ``outliers`` is the instance's boolean mask of corrupted measurements."""

    name = "robust_matrix_sensing"
    description = "low-rank matrix sensing with dense gross outliers and an l1 (or l2) loss"
    references = MatrixSensing.references + (
        "Ma, Fattahi, 'Global Convergence of Sub-gradient Method for Robust Matrix Recovery: Small "
        "Initialization, Noisy Measurements, and Over-parameterization', arXiv:2202.08788",
    )

    outlier_fraction: float = 0.3
    outlier_scale: float = 10.0
    loss: str = "l1"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float(self.name, "outlier_fraction", self.outlier_fraction, minimum=0.0, maximum=1.0)
        check_float(self.name, "outlier_scale", self.outlier_scale, minimum=0.0)
        check_choice(self.name, "loss", self.loss, LOSSES)

    def _targets(self) -> dict[str, float]:
        # AdamW at the defaults (lr 0.01, 2000 steps) reaches these on seeds 0 and 1 (measured)
        return {"eval_loss": 1e-3, "rel_error": 0.05}

    def _build(self, seed: int) -> "RobustSensingInstance":
        return RobustSensingInstance(self, seed)


class RobustSensingInstance(MatrixSensingInstance):
    _tensor_attrs = MatrixSensingInstance._tensor_attrs + ("outliers",)

    def __init__(self, task: RobustMatrixSensing, seed: int) -> None:
        super().__init__(task, seed)
        m = self.observations.numel()
        g = generator(seed, "outliers")
        mask = torch.zeros(m, dtype=torch.bool)
        mask[torch.randperm(m, generator=g)[:int(round(task.outlier_fraction * m))]] = True
        size = task.outlier_scale * float(self.target_matrix.norm())
        self.observations = self.observations + mask * (size * torch.randn(m, generator=g))
        self.outliers = mask

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        a, y = batch
        r = a @ model().reshape(-1) - y
        return r.abs().mean() if self.task.loss == "l1" else 0.5 * r.pow(2).mean()
