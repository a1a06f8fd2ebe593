"""Tubal tensor sensing with an over-parameterized symmetric factorization X = U * Uᵀ (t-product).

Karnik, Veselovska, Iwen, Krahmer, "Implicit Regularization for Tubal Tensor Factorizations via Gradient
Descent" (ICML 2025, PMLR 267:29148–29204): gradient descent on U ∈ R^{n×R×k} from a small random init is
biased toward low tubal rank when the tensor is only observed through a few linear measurements.

The t-product (Kilmer & Martin 2011): A * B is the block-circulant product of A (n×m×k) and B (m×p×k); in
the Fourier domain along mode 3 it is one matrix product per frequency, Ĉ_j = Â_j B̂_j. The t-transpose Aᵀ
transposes every frontal slice and reverses slices 2..k, so (A * Aᵀ)^_j = Â_j Â_jᴴ is Hermitian PSD. The
tubal singular values are the singular values of the Fourier slices Â_j; the tubal rank is the largest
number of nonzero ones over j.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import Task, TaskInstance, check_float, check_int, generator

__all__ = ["TubalSensing", "t_product", "t_transpose", "tubal_singular_values"]


def t_product(a: Tensor, b: Tensor) -> Tensor:
    """A * B for A (n×m×k) and B (m×p×k): one matrix product per Fourier slice along mode 3."""
    if a.dim() != 3 or b.dim() != 3 or a.shape[1] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"t_product: shapes {tuple(a.shape)} and {tuple(b.shape)} do not chain")
    fa, fb = torch.fft.fft(a, dim=2), torch.fft.fft(b, dim=2)
    return torch.fft.ifft(torch.einsum("ijk,jlk->ilk", fa, fb), dim=2).real


def t_transpose(a: Tensor) -> Tensor:
    """Aᵀ: every frontal slice transposed, slices 2..k in reverse order."""
    at = a.transpose(0, 1)
    return torch.cat([at[:, :, :1], at[:, :, 1:].flip(2)], dim=2)


def tubal_singular_values(x: Tensor) -> Tensor:
    """(k, min(n, m)) singular values of the Fourier slices of X (descending in each row)."""
    fx = torch.fft.fft(x.detach().to(torch.float64), dim=2)
    return torch.linalg.svdvals(fx.permute(2, 0, 1))


class TubalFactor(nn.Module):
    """U (n×R×k); forward gives X = U * Uᵀ."""

    def __init__(self, n: int, width: int, k: int) -> None:
        super().__init__()
        self.U = nn.Parameter(torch.zeros(n, width, k))

    def forward(self) -> Tensor:
        return t_product(self.U, t_transpose(self.U))


@dataclass(frozen=True, kw_only=True)
class TubalSensing(Task):
    """Options: n (10), k (tubes, 5), rank (tubal rank of the truth, 2), width (R, columns of U, 10),
    measurements (m Gaussian measurements ⟨A_i, X⟩, 250; 0 means the tensor is observed in full),
    init_scale (α: U₀ entries N(0, α²/(n·k)), 1e-3; α = 1 gives an X₀ whose largest tubal singular
    value is O(1), the truth's scale).

    Truth: T = V * Vᵀ with V (n×rank×k) Gaussian, scaled so its largest tubal singular value is 1.
    Loss: (1/2m) Σ_i (⟨A_i, U * Uᵀ⟩ − ⟨A_i, T⟩)² with A_i entries N(0, 1) (full observation: ½‖X − T‖²).
    Metrics: train_loss, eval_loss (‖X − T‖_F / ‖T‖_F), extra_sv_ratio (largest tubal singular value
    beyond ``rank``, over the largest one).
    """

    name = "tubal_sensing"
    eval_cost = 1.0
    description = "tubal tensor sensing with X = U * Uᵀ (implicit low-tubal-rank bias)"
    references = ("Karnik, Veselovska, Iwen, Krahmer, 'Implicit Regularization for Tubal Tensor "
                  "Factorizations via Gradient Descent', ICML 2025",
                  "Kilmer, Martin, 'Factorization strategies for third-order tensors', LAA 2011")

    n: int = 10
    k: int = 5
    rank: int = 2
    width: int = 10
    measurements: int = 250
    init_scale: float = 1e-3

    def _targets(self) -> dict[str, float]:
        # reached by AdamW at the task's settings within the default budget (seeds 0 / 1: 0.0030 / 0.0083)
        return {"eval_loss": 0.02}

    def __post_init__(self) -> None:
        name = self.name
        check_int(name, "n", self.n, minimum=1)
        check_int(name, "k", self.k, minimum=1)
        check_int(name, "rank", self.rank, minimum=1, maximum=self.n)
        check_int(name, "width", self.width, minimum=1)
        check_int(name, "measurements", self.measurements, minimum=0)
        check_float(name, "init_scale", self.init_scale, minimum=0.0, strict_min=True)

    def _metrics(self):
        return ("train_loss", "eval_loss", "extra_sv_ratio")

    def _default_steps(self) -> int:
        return 3000

    def _default_batch_size(self):
        return None

    def _adamw(self):
        return {"lr": 1e-2, "weight_decay": 0.0}

    def _build(self, seed: int) -> "TubalInstance":
        return TubalInstance(self, seed)


class TubalInstance(TaskInstance):
    _tensor_attrs = ("truth", "A", "y")
    full_batch = True

    def __init__(self, task: TubalSensing, seed: int) -> None:
        n, k = task.n, task.k
        g = generator(seed, "truth")
        v = torch.randn(n, task.rank, k, generator=g)
        truth = t_product(v, t_transpose(v))
        self.truth = truth / tubal_singular_values(truth).max().to(truth.dtype)
        if task.measurements:
            self.A = torch.randn(task.measurements, n * n * k, generator=generator(seed, "measure"))
            self.y = self.A @ self.truth.reshape(-1)
        else:
            self.A = self.y = None
        model = TubalFactor(n, task.width, k)
        with torch.no_grad():
            model.U.normal_(0.0, task.init_scale / math.sqrt(n * k), generator=generator(seed, "init"))
        super().__init__(task, seed, model, role_hints={"head": None, "roles": {"U": "matrix"}})

    def _make_batch(self, step: int) -> tuple:
        return (self.truth,) if self.A is None else (self.A, self.y)

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        x = model()
        if len(batch) == 1:
            return 0.5 * (x - batch[0]).pow(2).sum()
        a, y = batch
        return 0.5 * (a @ x.reshape(-1) - y).pow(2).mean()

    def _evaluate(self, model: nn.Module) -> dict:
        x = model()
        sv = tubal_singular_values(x)
        rank = self.task.rank
        extra = float(sv[:, rank:].max()) if sv.shape[1] > rank else 0.0
        train = self.loss(model, self.batch(0))
        return {"train_loss": train, "eval_loss": (x - self.truth).norm() / self.truth.norm(),
                "extra_sv_ratio": extra / max(float(sv.max()), 1e-300)}
