"""Planted-direction problems with information exponent k* = 3: the single-index model and tensor PCA.

Both train a direction θ (the model normalises it: only θ̂ = θ/‖θ‖ matters) toward a planted unit vector
θ*, and both start from a uniformly random direction, where the signal is ⟨θ̂, θ*⟩³ ≈ d^{−3/2}: the
settings in which sample-complexity claims compare online SGD (n ≳ d^{k*−1}) with smoothed or averaged
dynamics (n ≳ d^{k*/2}) — Ben Arous, Gheissari, Jagannath, "Online stochastic gradient descent on non-convex
losses from high-dimensional inference" (JMLR 2021); the Langevin-averaging seed paper (H7).

* ``single_index``: x ~ N(0, I_d), y = He₃(⟨θ*, x⟩) (He₃(z) = z³ − 3z); correlation loss
  1 − y·He₃(⟨θ̂, x⟩)/6 averaged over the batch, whose population value is 1 − ⟨θ̂, θ*⟩³.
* ``tensor_pca``: T = λ·θ*⊗θ*⊗θ* + W (W with i.i.d. N(0, 1) entries, fixed per seed); loss
  1 − ⟨T, θ̂⊗θ̂⊗θ̂⟩/λ (full batch); noise-free value 1 − ⟨θ̂, θ*⟩³.

Metrics: eval_loss (the population / noise-free loss 1 − m³), overlap m = ⟨θ̂, θ*⟩ (primary, maximised).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import Task, TaskInstance, check_float, check_int, generator


def he3(z: Tensor) -> Tensor:
    return z**3 - 3 * z


class Direction(nn.Module):
    """One parameter ``theta`` (d,); ``forward()`` returns the unit direction θ/‖θ‖."""

    def __init__(self, theta: Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta)

    def forward(self) -> Tensor:
        return self.theta / self.theta.norm()


def _unit(gen: torch.Generator, d: int) -> Tensor:
    v = torch.randn(d, generator=gen)
    return v / v.norm()


class _Planted(TaskInstance):
    _tensor_attrs = ("star",)

    def _evaluate(self, model: nn.Module) -> dict:
        m = model() @ self.star
        return {"eval_loss": 1 - m**3, "overlap": m}


class _OverlapTask(Task):
    """What the planted-signal tasks share: overlap with the planted direction, maximised, target 0.9."""

    def _targets(self) -> dict[str, float]:
        return {"overlap": 0.9}

    def _metrics(self):
        return ("eval_loss", "overlap")

    def _primary_metric(self) -> str:
        return "overlap"

    def _maximize(self) -> bool:
        return True

    def _adamw(self):
        return {"lr": 0.05, "weight_decay": 0.0}


@dataclass(frozen=True, kw_only=True)
class SingleIndex(_OverlapTask):
    """Options: dim (16), batch_size (fresh Gaussian samples per step, 256). Metrics: eval_loss
    (population loss 1 − m³), overlap m = ⟨θ̂, θ*⟩ (primary, maximised; target 0.9)."""

    name = "single_index"
    eval_cost = 0.2
    description = "single-index model y = He3(<theta*, x>) (information exponent 3), correlation loss"
    references = ("Ben Arous, Gheissari, Jagannath, 'Online stochastic gradient descent on non-convex losses from "
                  "high-dimensional inference', JMLR 2021 (arXiv:2003.10409)",)

    dim: int = 16
    batch_size: int = 256

    def __post_init__(self) -> None:
        check_int(self.name, "dim", self.dim, minimum=2)
        check_int(self.name, "batch_size", self.batch_size, minimum=1)

    def _default_steps(self) -> int:
        return 500

    def _build(self, seed: int) -> "SingleIndexInstance":
        return SingleIndexInstance(self, seed)


class SingleIndexInstance(_Planted):
    def __init__(self, task: SingleIndex, seed: int) -> None:
        self.star = _unit(generator(seed, "star"), task.dim)
        super().__init__(task, seed, Direction(_unit(generator(seed, "init"), task.dim)), role_hints={"head": None})

    def _make_batch(self, step: int) -> tuple:
        x = torch.randn(self.task.batch_size, self.task.dim, generator=self.batch_generator(step))
        return x, he3(x @ self.star.cpu())

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        x, y = batch
        return 1 - (y * he3(x @ model())).mean() / 6


@dataclass(frozen=True, kw_only=True)
class TensorPCA(_OverlapTask):
    """Options: dim (16), snr λ (64.0, in units of the noise entries' std). Full batch. Metrics: eval_loss
    (noise-free 1 − m³), overlap m = ⟨θ̂, θ*⟩ (primary, maximised; target 0.9)."""

    name = "tensor_pca"
    eval_cost = 0.2
    description = "order-3 spiked tensor PCA: T = snr * v(x)v(x)v + W, loss 1 - <T, u(x)u(x)u>/snr"
    references = ("Richard & Montanari, 'A statistical model for tensor PCA', NeurIPS 2014 (arXiv:1411.1076)",
                  "Ben Arous, Gheissari, Jagannath, 'Algorithmic thresholds for tensor PCA', Annals of Probability "
                  "2020 (arXiv:1808.00921)")

    dim: int = 16
    snr: float = 64.0

    def __post_init__(self) -> None:
        check_int(self.name, "dim", self.dim, minimum=2)
        check_float(self.name, "snr", self.snr, minimum=0.0, strict_min=True)

    def _default_steps(self) -> int:
        return 300

    def _build(self, seed: int) -> "TensorPCAInstance":
        return TensorPCAInstance(self, seed)


class TensorPCAInstance(_Planted):
    _tensor_attrs = ("star", "tensor")
    full_batch = True

    def __init__(self, task: TensorPCA, seed: int) -> None:
        d = task.dim
        self.star = _unit(generator(seed, "star"), d)
        noise = torch.randn(d, d, d, generator=generator(seed, "noise"))
        self.tensor = task.snr * torch.einsum("i,j,k->ijk", self.star, self.star, self.star) + noise
        super().__init__(task, seed, Direction(_unit(generator(seed, "init"), d)), role_hints={"head": None})

    def _make_batch(self, step: int) -> tuple:
        return ()

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        u = model()
        return 1 - torch.einsum("ijk,i,j,k->", self.tensor, u, u, u) / self.task.snr
