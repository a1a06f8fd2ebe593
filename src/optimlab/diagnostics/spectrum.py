"""The whole Hessian spectrum: exact (small models), stochastic Lanczos quadrature, sharpness dimension.

- ``exact_spectrum``: the dense Hessian from ``dim`` products and its eigen-decomposition (float64).
- ``slq`` / ``spectral_density``: stochastic Lanczos quadrature (Golub & Meurant, *Matrices, Moments
  and Quadrature*; Ubaru, Chen, Saad, "Fast Estimation of tr(f(A)) via Stochastic Lanczos
  Quadrature", SIAM J. Matrix Anal. Appl. 2017; applied to network Hessians by Ghorbani, Krishnan,
  Xiao, "An Investigation into Neural Net Optimization via Hessian Eigenvalue Density",
  arXiv:1901.10159). For a unit start vector v, m Lanczos steps give the Gauss quadrature
  vᵀf(A)v ≈ Σ_i τ_i² f(θ_i), with θ_i the Ritz values and τ_i the first components of T's
  eigenvectors; it is exact for polynomials of degree < 2m. With v = z/‖z‖, z Rademacher, the
  measure Σ_i τ_i² δ_{θ_i} is an unbiased-in-expectation estimate of the eigenvalue distribution
  (1/d) Σ_j δ_{λ_j}; runs are averaged. Cost: num_runs × num_iters products.
- ``sharpness_dimension``: a Lyapunov (Kaplan–Yorke) dimension of the one-step map of gradient
  descent, built from the partial determinants of its Jacobian I − ηH. This follows the structure
  described in "Generalization at the Edge of Stability" (Tuci, Korkmaz, Şimşekli, Birdal,
  arXiv:2604.19740); see the function for the exact formula used here.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .data import DataInfo, LossFn
from .lanczos import LanczosProcess, _generator
from .operators import CurvatureOperator, make_operator


@dataclass
class ExactSpectrum:
    """All eigenvalues (ascending, float64) of a dense curvature matrix, and optionally the matrix."""

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor | None
    matrix: torch.Tensor | None
    num_hvps: int
    seconds: float
    data: DataInfo | None = None

    @property
    def value(self) -> float:
        """The largest eigenvalue."""
        return float(self.eigenvalues[-1])

    def trace(self) -> float:
        return float(self.eigenvalues.sum())


def exact_spectrum(model: nn.Module, loss_fn: LossFn, data: Any, *, max_dim: int = 5000,
                   return_matrix: bool = False, return_eigenvectors: bool = False,
                   operator: str = "hessian", **operator_kwargs: Any) -> ExactSpectrum:
    """Dense Hessian (or Gauss–Newton matrix) of a small model and all its eigenvalues.

    Costs ``dim`` products (batched through one graph when possible) and O(dim³) for the
    eigen-decomposition; refuses ``dim > max_dim``. The matrix is symmetrized, ½(H + Hᵀ).
    """
    op = make_operator(model, loss_fn, data, operator, **operator_kwargs)
    return exact_spectrum_of(op, max_dim=max_dim, return_matrix=return_matrix,
                             return_eigenvectors=return_eigenvectors, data=op.data_info)


def exact_spectrum_of(op: CurvatureOperator, *, max_dim: int = 5000, return_matrix: bool = False,
                      return_eigenvectors: bool = False, data: DataInfo | None = None) -> ExactSpectrum:
    """``exact_spectrum`` for any operator."""
    if op.dim > max_dim:
        raise ValueError(f"exact spectrum needs dim <= max_dim={max_dim}, got dim={op.dim}; use slq or lanczos")
    start_time, start_count = time.perf_counter(), op.num_matvecs
    H = op.to_dense()
    H = 0.5 * (H + H.T)
    if return_eigenvectors:
        values, vectors = torch.linalg.eigh(H)
    else:
        values, vectors = torch.linalg.eigvalsh(H), None
    return ExactSpectrum(values, vectors, H if return_matrix else None, op.num_matvecs - start_count,
                         time.perf_counter() - start_time, data)


@dataclass
class SpectralDensity:
    """SLQ estimate of the eigenvalue distribution: per run, nodes θ and weights τ² summing to 1.

    nodes, weights: (num_runs, m) float64. ``dim`` is the operator dimension (to turn the
    normalized measure into counts or a trace).
    """

    nodes: torch.Tensor
    weights: torch.Tensor
    dim: int
    num_hvps: int
    seconds: float
    data: DataInfo | None = None

    def _flat(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.nodes)
        return self.nodes.reshape(-1), self.weights.reshape(-1) / n

    def density(self, grid: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        """Gaussian-smoothed density on ``grid`` (integrates to 1); sigma defaults to 1% of the range."""
        grid = torch.as_tensor(grid, dtype=torch.float64)
        nodes, w = self._flat()
        if sigma is None:
            sigma = 0.01 * float(nodes.max() - nodes.min()) or 1.0
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        z = (grid[:, None] - nodes[None, :]) / sigma
        return (torch.exp(-0.5 * z ** 2) * w).sum(dim=1) / (sigma * math.sqrt(2 * math.pi))

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """Estimated fraction of eigenvalues ≤ x."""
        x = torch.as_tensor(x, dtype=torch.float64)
        nodes, w = self._flat()
        return ((nodes[None, :] <= x.reshape(-1, 1)) * w).sum(dim=1).reshape(x.shape)

    def moment(self, p: int) -> float:
        """Estimated (1/d) tr(A^p)."""
        nodes, w = self._flat()
        return float((w * nodes ** p).sum())

    def trace(self) -> float:
        """Estimated tr(A) = d · mean eigenvalue (a Hutchinson estimate with normalized probes)."""
        return self.dim * self.moment(1)

    def trace_std_error(self) -> float:
        """Standard error of ``trace()`` from the spread of the per-run estimates (inf for one run)."""
        per_run = self.dim * (self.weights * self.nodes).sum(dim=1)
        n = len(per_run)
        return float(per_run.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("inf")

    def wasserstein_to(self, eigenvalues: torch.Tensor) -> float:
        """W1 distance to the uniform measure on ``eigenvalues`` (same unit as the eigenvalues)."""
        lam = torch.sort(torch.as_tensor(eigenvalues, dtype=torch.float64).flatten()).values
        nodes, w = self._flat()
        grid = torch.sort(torch.cat([lam, nodes])).values
        F_est = self.cdf(grid[:-1])
        F_true = torch.searchsorted(lam, grid[:-1], right=True).to(torch.float64) / len(lam)
        return float(((F_est - F_true).abs() * grid.diff()).sum())


def slq(op: CurvatureOperator, num_runs: int = 5, num_iters: int = 60, *, seed: int | None = 0,
        data: DataInfo | None = None) -> SpectralDensity:
    """Stochastic Lanczos quadrature: ``num_runs`` Lanczos runs of ``num_iters`` steps each.

    Each run starts from a normalized Rademacher vector, reorthogonalizes fully (so no ghost
    eigenvalues), and contributes the Gauss quadrature nodes/weights of its tridiagonal matrix.
    """
    if not isinstance(num_runs, int) or num_runs < 1:
        raise ValueError(f"num_runs must be a positive int, got {num_runs!r}")
    if not isinstance(num_iters, int) or num_iters < 1:
        raise ValueError(f"num_iters must be a positive int, got {num_iters!r}")
    start_time, start_count = time.perf_counter(), op.num_matvecs
    gen = _generator(op.device, seed)
    m = min(num_iters, op.dim)
    nodes = torch.zeros((num_runs, m), dtype=torch.float64)
    weights = torch.zeros((num_runs, m), dtype=torch.float64)
    for run in range(num_runs):
        z = torch.randint(0, 2, (op.dim,), generator=gen, device=op.device).to(op.dtype) * 2 - 1
        proc = LanczosProcess(op, z, m)
        while not proc.done and proc.steps < m:
            proc.step()
        theta, S = torch.linalg.eigh(proc.tridiagonal())
        # An early invariant subspace gives fewer nodes; pad with zero weight.
        nodes[run, : len(theta)] = theta
        nodes[run, len(theta):] = theta[-1]
        weights[run, : len(theta)] = S[0] ** 2
    return SpectralDensity(nodes, weights, op.dim, op.num_matvecs - start_count,
                           time.perf_counter() - start_time, data)


def spectral_density(model: nn.Module, loss_fn: LossFn, data: Any, *, num_runs: int = 5, num_iters: int = 60,
                     seed: int | None = 0, operator: str = "hessian", **operator_kwargs: Any) -> SpectralDensity:
    """Eigenvalue density of the loss Hessian of ``model`` on ``data`` by SLQ.

    Plot ``result.density(grid)``; ``result.data`` states the data used; cost num_runs × num_iters HVPs.
    """
    op = make_operator(model, loss_fn, data, operator, **operator_kwargs)
    return slq(op, num_runs, num_iters, seed=seed, data=op.data_info)


@dataclass
class SharpnessDimension:
    """Kaplan–Yorke dimension of the GD map, with the exponents it came from.

    value: the dimension, in [0, d]. exponents: log σ_i of the one-step Jacobian, descending.
    partial_sums: Σ_{i≤k} exponents (log partial determinants). index: the critical k.
    """

    value: float
    exponents: torch.Tensor
    partial_sums: torch.Tensor
    index: int


def sharpness_dimension(eigenvalues: torch.Tensor, lr: float) -> SharpnessDimension:
    """Sharpness dimension from the Hessian spectrum, for the gradient-descent map θ ↦ θ − η∇L.

    The one-step Jacobian is J = I − ηH with singular values σ_i = |1 − ηλ_i|. With the exponents
    μ_1 ≥ μ_2 ≥ … (μ_i = log σ_i, averaged over the rows when ``eigenvalues`` is a 2-D stack of
    spectra sampled along a trajectory) and the log partial determinants S_k = Σ_{i≤k} μ_i:

        k* = max{k : S_k ≥ 0}  (0 if μ_1 < 0),     SD = k* + S_{k*} / |μ_{k*+1}|   (SD = d if S_d ≥ 0).

    SD = 0 when every direction contracts (η λ_i ∈ (0, 2) for all i, i.e. below the edge of
    stability); it grows with the expanding directions ηλ_i > 2 and with how little the others
    contract. This is the Kaplan–Yorke form of the Lyapunov dimension applied to one step, which is
    how "Generalization at the Edge of Stability" (arXiv:2604.19740) describes its sharpness
    dimension (ordered log singular values of the update Jacobian, partial determinants, critical
    index); the paper's estimator over the random attractor may differ in details.
    """
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64)
    if lam.dim() not in (1, 2) or lam.numel() == 0:
        raise ValueError(f"eigenvalues must be a non-empty 1-D spectrum or 2-D stack, got shape {tuple(lam.shape)}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    sigma = (1.0 - lr * lam).abs().clamp_min(1e-300)
    mu = torch.sort(torch.log(sigma), dim=-1, descending=True).values
    if mu.dim() == 2:
        mu = mu.mean(dim=0)
    sums = torch.cumsum(mu, dim=0)
    d = len(mu)
    nonneg = torch.nonzero(sums >= 0).flatten()
    if len(nonneg) == 0:
        return SharpnessDimension(0.0, mu, sums, 0)
    k = int(nonneg.max()) + 1  # partial sums are concave in k, so this is the last nonnegative one
    if k == d:
        return SharpnessDimension(float(d), mu, sums, d)
    return SharpnessDimension(k + float(sums[k - 1]) / abs(float(mu[k])), mu, sums, k)
