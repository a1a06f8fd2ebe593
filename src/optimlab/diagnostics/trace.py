"""Stochastic trace estimation: Hutchinson and Hutch++, each with a standard error.

- Hutchinson (Hutchinson, "A stochastic estimator of the trace of the influence matrix for
  Laplacian smoothing splines", 1989): tr(A) = E[zᵀAz] for z with E[zzᵀ] = I (Rademacher or
  Gaussian). With m probes, the estimate is the sample mean and its standard error is the sample
  standard deviation / √m; the error decays as 1/√m.
- Hutch++ (Meyer, Musco, Musco, Woodruff, "Hutch++: Optimal Stochastic Trace Estimation",
  arXiv:2010.09649): spend m/3 products on a sketch AS, orthonormalize it to Q, take tr(QᵀAQ)
  exactly (m/3 products), and run Hutchinson on the deflated (I−QQᵀ)A(I−QQᵀ) with the remaining
  m/3. Unbiased for any Q; for a spectrum dominated by a few large eigenvalues (typical Hessians)
  the error decays as 1/m. The standard error reported is that of the Hutchinson part, given Q.

Units: those of A (for a Hessian, loss per parameter²). Cost: ``num_hvps`` operator products.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .data import DataInfo, LossFn
from .lanczos import _generator
from .operators import CurvatureOperator, make_operator

DISTRIBUTIONS = ("rademacher", "gaussian")
METHODS = ("hutchpp", "hutchinson")


@dataclass
class TraceResult:
    """A trace estimate: ``value`` ± ``std_error`` (one standard error), from ``num_hvps`` products."""

    value: float
    std_error: float
    num_hvps: int
    seconds: float
    method: str
    samples: torch.Tensor
    data: DataInfo | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "std_error": self.std_error, "num_hvps": self.num_hvps,
                "seconds": self.seconds, "method": self.method,
                "num_batches": getattr(self.data, "num_batches", None),
                "num_examples": getattr(self.data, "num_examples", None)}


def _probes(n: int, dim: int, distribution: str, gen: torch.Generator, device: torch.device,
            dtype: torch.dtype) -> torch.Tensor:
    if distribution == "rademacher":
        return torch.randint(0, 2, (n, dim), generator=gen, device=device).to(dtype) * 2 - 1
    return torch.randn((n, dim), generator=gen, device=device, dtype=dtype)


def _check(distribution: str, num: int, minimum: int, name: str) -> None:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    if not isinstance(num, int) or num < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {num!r}")


def _mean_and_se(samples: torch.Tensor) -> tuple[float, float]:
    n = len(samples)
    mean = float(samples.mean())
    se = float(samples.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("inf")
    return mean, se


def hutchinson(op: CurvatureOperator, num_samples: int = 100, *, distribution: str = "rademacher",
               seed: int | None = 0, data: DataInfo | None = None) -> TraceResult:
    """tr(A) ≈ (1/m) Σ_i z_iᵀ A z_i over ``num_samples`` probes, with standard error std/√m."""
    _check(distribution, num_samples, 2, "num_samples")
    start_time, start_count = time.perf_counter(), op.num_matvecs
    gen = _generator(op.device, seed)
    Z = _probes(num_samples, op.dim, distribution, gen, op.device, op.dtype)
    samples = torch.stack([(z.to(torch.float64) @ op.matvec(z).to(torch.float64)) for z in Z])
    value, se = _mean_and_se(samples)
    return TraceResult(value, se, op.num_matvecs - start_count, time.perf_counter() - start_time,
                       "hutchinson", samples, data)


def hutchpp(op: CurvatureOperator, num_matvecs: int = 99, *, distribution: str = "rademacher",
            seed: int | None = 0, data: DataInfo | None = None) -> TraceResult:
    """Hutch++ with ``num_matvecs`` products: s = m//3 sketch, s exact, m − 2s Hutchinson probes.

    tr(A) ≈ tr(QᵀAQ) + (1/r) Σ_i g_iᵀ(I−QQᵀ)A(I−QQᵀ)g_i, Q = orth(A S), S and g random.
    """
    _check(distribution, num_matvecs, 4, "num_matvecs")
    start_time, start_count = time.perf_counter(), op.num_matvecs
    gen = _generator(op.device, seed)
    s = min(num_matvecs // 3, op.dim)
    r = num_matvecs - 2 * s
    S = _probes(s, op.dim, distribution, gen, op.device, op.dtype)
    AS = op.matmat(S).to(torch.float64)
    Q, _ = torch.linalg.qr(AS.T)  # (dim, s), orthonormal columns
    AQ = op.matmat(Q.T.to(op.dtype).contiguous()).to(torch.float64)
    exact_part = float(torch.einsum("id,di->", AQ, Q))
    G = _probes(r, op.dim, distribution, gen, op.device, torch.float64)
    P = G - (G @ Q) @ Q.T
    AP = op.matmat(P.to(op.dtype)).to(torch.float64)
    AP = AP - (AP @ Q) @ Q.T
    samples = (P * AP).sum(dim=1)
    mean, se = _mean_and_se(samples)
    return TraceResult(exact_part + mean, se, op.num_matvecs - start_count, time.perf_counter() - start_time,
                       "hutchpp", samples, data)


def hessian_trace(model: nn.Module, loss_fn: LossFn, data: Any, *, method: str = "hutchpp",
                  num_hvps: int = 99, distribution: str = "rademacher", seed: int | None = 0,
                  operator: str = "hessian", **operator_kwargs: Any) -> TraceResult:
    """Trace of the loss Hessian (or Gauss–Newton matrix) of ``model`` on ``data``.

    method: "hutchpp" (default; better for spectra with a few large eigenvalues) or "hutchinson".
    num_hvps: products to spend. Operator options (``params``, ``bn``, ``dropout``, ``max_batches``,
    ``cache_graph``) are those of ``HessianOperator``; ``result.data`` states the data used.
    Compare with 2/η for SGD stability (``sgd_trace_bound``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    op = make_operator(model, loss_fn, data, operator, **operator_kwargs)
    if method == "hutchinson":
        return hutchinson(op, num_hvps, distribution=distribution, seed=seed, data=op.data_info)
    return hutchpp(op, num_hvps, distribution=distribution, seed=seed, data=op.data_info)
