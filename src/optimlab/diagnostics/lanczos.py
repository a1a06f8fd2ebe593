"""Extreme eigenpairs of a symmetric operator: Lanczos with full reorthogonalization, power iteration.

Lanczos (Lanczos 1950; Golub & Van Loan, *Matrix Computations*, §10.1) builds an orthonormal basis
Q_m of the Krylov space span{v, Av, …, A^{m-1}v} with AQ_m = Q_m T_m + β_m q_{m+1} e_mᵀ, T_m
tridiagonal. The Ritz values (eigenvalues of T_m) approach the extreme eigenvalues of A; the
residual of Ritz pair (θ_i, y_i = Q_m s_i) is ‖A y_i − θ_i y_i‖ = |β_m · s_i[m]|, and for a symmetric
A some eigenvalue lies within that residual of θ_i (and within residual²/gap once it is isolated).
Each new vector is orthogonalized twice against the whole basis ("twice is enough", classical
Gram–Schmidt), which removes the spurious duplicate ("ghost") eigenvalues of plain Lanczos.

Cost: one operator product per iteration, plus O(m · dim) for the reorthogonalization.
The basis is kept in float64 when it fits in ``basis_bytes`` (1 GiB by default), else in the
operator's dtype.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .data import DataInfo
from .operators import CurvatureOperator

WHICH = ("LA", "LM", "SA")


@dataclass
class EigenResult:
    """Top eigenvalues of a curvature operator.

    eigenvalues: (k,) float64, ordered by ``which`` (largest first for "LA").
    eigenvectors: (k, dim) unit vectors in the operator's dtype, or None.
    residuals: (k,) ‖Av − λv‖ of each pair (same unit as the eigenvalues).
    num_hvps: operator products spent; seconds: wall time; data: which data was used.
    history: top Ritz value after each iteration (Lanczos) or step (power iteration).
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor | None
    residuals: torch.Tensor
    num_hvps: int
    seconds: float
    method: str
    converged: bool
    data: DataInfo | None = None
    history: list[float] = field(default_factory=list)

    @property
    def value(self) -> float:
        """The leading eigenvalue (the sharpness when the operator is a Hessian)."""
        return float(self.eigenvalues[0])

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "eigenvalues": self.eigenvalues.tolist(), "residuals": self.residuals.tolist(),
                "num_hvps": self.num_hvps, "seconds": self.seconds, "method": self.method,
                "converged": self.converged, "num_batches": getattr(self.data, "num_batches", None),
                "num_examples": getattr(self.data, "num_examples", None)}


def _generator(device: torch.device, seed: int | None) -> torch.Generator:
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    elif not isinstance(seed, int):
        raise ValueError(f"seed must be an int or None, got {seed!r}")
    else:
        gen.manual_seed(seed)
    return gen


def _basis_dtype(op: CurvatureOperator, steps: int, basis_bytes: int) -> torch.dtype:
    return torch.float64 if op.dim * (steps + 1) * 8 <= basis_bytes else op.dtype


def _order(theta: torch.Tensor, which: str) -> torch.Tensor:
    if which == "LA":
        return torch.argsort(theta, descending=True)
    if which == "SA":
        return torch.argsort(theta)
    return torch.argsort(theta.abs(), descending=True)


class LanczosProcess:
    """Step-by-step Lanczos with full reorthogonalization (used by ``lanczos`` and SLQ)."""

    def __init__(self, op: CurvatureOperator, v0: torch.Tensor, max_steps: int,
                 basis_bytes: int = 1 << 30) -> None:
        self.op = op
        self.dtype = _basis_dtype(op, max_steps, basis_bytes)
        q = v0.to(device=op.device, dtype=self.dtype).flatten()
        norm = float(q.norm())
        if q.numel() != op.dim or not norm > 0 or norm != norm:
            raise ValueError(f"v0 must be a nonzero flat vector of length {op.dim}")
        self.max_steps = max_steps
        # The basis grows by doubling, so an early stop does not pay for max_steps vectors.
        self.Q = torch.empty((min(max_steps + 1, 16), op.dim), dtype=self.dtype, device=op.device)
        self.Q[0] = q / norm
        self.alpha: list[float] = []
        self.beta: list[float] = []
        self.done = False  # an invariant subspace was found: T's eigenvalues are exact

    @property
    def steps(self) -> int:
        return len(self.alpha)

    def step(self) -> None:
        j = self.steps
        w = self.op.matvec(self.Q[j].to(self.op.dtype)).to(self.dtype)
        a = float(w @ self.Q[j])
        self.alpha.append(a)
        basis = self.Q[: j + 1]
        for _ in range(2):  # classical Gram–Schmidt, twice
            w -= basis.T @ (basis @ w)
        b = float(w.norm())
        self.beta.append(b)
        scale = max(abs(a), self.beta[-2] if j > 0 else 0.0, 1e-300)
        if b <= 1e-10 * scale or j + 1 >= self.op.dim:
            self.done = True  # invariant subspace: the Ritz values are eigenvalues
            return
        if j + 1 >= self.max_steps:
            return
        if j + 1 >= self.Q.shape[0]:
            grow = min(self.Q.shape[0], self.max_steps + 1 - self.Q.shape[0])
            self.Q = torch.cat([self.Q, self.Q.new_empty((grow, self.op.dim))])
        self.Q[j + 1] = w / b

    def tridiagonal(self) -> torch.Tensor:
        m = self.steps
        T = torch.diag(torch.tensor(self.alpha, dtype=torch.float64))
        if m > 1:
            off = torch.tensor(self.beta[: m - 1], dtype=torch.float64)
            T += torch.diag(off, 1) + torch.diag(off, -1)
        return T

    def ritz(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ritz values, the eigenvectors S of T, and the residual norms |β_m S[m-1, i]|."""
        theta, S = torch.linalg.eigh(self.tridiagonal())
        res = (self.beta[-1] * S[-1]).abs() if not self.done else torch.zeros_like(theta)
        return theta, S, res


def lanczos(op: CurvatureOperator, k: int = 1, *, which: str = "LA", tol: float = 1e-3,
            max_iters: int | None = None, v0: torch.Tensor | None = None, seed: int | None = 0,
            return_eigenvectors: bool = True, data: DataInfo | None = None) -> EigenResult:
    """Top-``k`` eigenpairs of a symmetric operator by Lanczos with full reorthogonalization.

    Stops when every wanted Ritz pair has residual ‖Ay − θy‖ ≤ ``tol`` · |θ| (so each Ritz value is
    within relative ``tol`` of an eigenvalue, and usually within tol² once converged), or after
    ``max_iters`` products (default min(dim, max(100, 4k))). The residual certifies *an*
    eigenvalue, not the largest: when λ_1 and λ_2 are within a few percent (common at the edge of
    stability), a loose tol such as 1e-2 can stop on λ_2 before λ_1 emerges from the Krylov space
    (seen in benchmarks/diagnostics_cost.py); the default 1e-3 did not in that benchmark.

    which: "LA" largest algebraic (sharpness), "SA" smallest algebraic, "LM" largest magnitude.
    v0: start vector (e.g. the previous top eigenvector, for warm starts); random normal otherwise.
    """
    if not isinstance(k, int) or k < 1 or k > op.dim:
        raise ValueError(f"k must be an int in [1, {op.dim}], got {k!r}")
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if max_iters is None:
        max_iters = min(op.dim, max(100, 4 * k))
    if not isinstance(max_iters, int) or max_iters < k:
        raise ValueError(f"max_iters must be an int >= k={k}, got {max_iters!r}")
    max_iters = min(max_iters, op.dim)
    start_time, start_count = time.perf_counter(), op.num_matvecs
    if v0 is None:
        v0 = torch.randn(op.dim, generator=_generator(op.device, seed), device=op.device, dtype=op.dtype)
    proc = LanczosProcess(op, v0, max_iters)
    history: list[float] = []
    converged = False
    while True:
        proc.step()
        theta, S, res = proc.ritz()
        idx = _order(theta, which)[:k]
        history.append(float(theta[idx[0]]))
        if proc.steps >= k:
            floor = 1e-12 * float(theta.abs().max())
            converged = bool((res[idx] <= tol * torch.clamp(theta[idx].abs(), min=floor)).all())
        if converged or proc.done or proc.steps >= max_iters:
            converged = converged or proc.done
            break
    vectors = None
    if return_eigenvectors:
        m = proc.steps
        vectors = (S[:, idx].T.to(proc.dtype) @ proc.Q[:m])
        vectors = (vectors / vectors.norm(dim=1, keepdim=True)).to(op.dtype)
    return EigenResult(theta[idx].clone(), vectors, res[idx].clone(), op.num_matvecs - start_count,
                       time.perf_counter() - start_time, "lanczos", converged, data, history)


def power_iteration(op: CurvatureOperator, k: int = 1, *, tol: float = 1e-4, max_iters: int = 100,
                    v0: torch.Tensor | None = None, seed: int | None = 0,
                    data: DataInfo | None = None) -> EigenResult:
    """Top-``k`` eigenpairs by largest magnitude, by power iteration with deflation.

    Each eigenpair iterates v ← Av/‖Av‖ (kept orthogonal to the pairs already found) until the
    Rayleigh quotient vᵀAv changes by less than ``tol`` relative, or ``max_iters`` products.
    Converges at rate |λ_{j+1}/λ_j| per product, so Lanczos is usually several times cheaper; it
    finds the eigenvalue of largest *magnitude* (a large negative one when it dominates).
    """
    if not isinstance(k, int) or k < 1 or k > op.dim:
        raise ValueError(f"k must be an int in [1, {op.dim}], got {k!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if not isinstance(max_iters, int) or max_iters < 1:
        raise ValueError(f"max_iters must be a positive int, got {max_iters!r}")
    start_time, start_count = time.perf_counter(), op.num_matvecs
    gen = _generator(op.device, seed)
    found: list[torch.Tensor] = []
    values, residuals, history = [], [], []
    converged_all = True
    for j in range(k):
        v = v0.to(device=op.device, dtype=op.dtype).clone() if (v0 is not None and j == 0) else \
            torch.randn(op.dim, generator=gen, device=op.device, dtype=op.dtype)
        lam, converged, nxt = float("nan"), False, v
        for _ in range(max_iters):
            v = nxt
            for u in found:
                v = v - (u @ v) * u
            v = v / v.norm()
            w = op.matvec(v)
            for u in found:
                w = w - (u @ w) * u
            new = float(v @ w)
            history.append(new)
            converged = lam == lam and abs(new - lam) <= tol * abs(new)
            lam, nxt = new, w
            if converged:
                break
        residuals.append(float((w - lam * v).norm()))
        values.append(lam)
        found.append(v)
        converged_all &= converged
    return EigenResult(torch.tensor(values, dtype=torch.float64), torch.stack(found),
                       torch.tensor(residuals, dtype=torch.float64), op.num_matvecs - start_count,
                       time.perf_counter() - start_time, "power", converged_all, data, history)
