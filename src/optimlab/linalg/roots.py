"""Inverse p-th roots of stacks of symmetric positive (semi)definite matrices, and SOAP's eigenbasis refresh.

Shampoo (Gupta, Koren & Singer, arXiv:1802.09568) needs ``(A + εI)^{-1/4}`` of its left and right
statistics, ASGO (arXiv:2503.20762) ``(A + εI)^{-1/2}``; SOAP (Vyas et al., arXiv:2409.11321) needs the
eigenvectors of the statistics, refreshed cheaply from the previous basis. All functions take a batch
``(..., d, d)`` and do one batched call, never a Python loop over matrices.

* :func:`inv_root` - ``(A + εI)^{-1/p}`` by ``method="eigh"`` (``V diag((λ⁺ + ε)^{-1/p}) Vᵀ``, negative
  rounding eigenvalues clamped to 0) or ``method="newton"``: the coupled Newton iteration of Guo & Higham
  ("A Schur–Newton method for the matrix p-th root and its inverse", SIAM J. Matrix Anal. Appl. 2006) as
  used by Anil et al. ("Scalable Second Order Optimization for Deep Learning", arXiv:2002.09018)::

      M₀ = z (A + εI),  X₀ = z^{1/p} I,  z = (1 + p) / (2 ‖A + εI‖_F)
      T = ((p + 1) I − M) / p;   X ← X T;   M ← T^p M          (M → I, X → (A + εI)^{-1/p})

  matmuls only (GPU-friendly), stopped after ``max_iter`` steps or when ``max|M − I| < tol``. Its damping
  is at least ``u·‖A‖_F`` (u the unit roundoff of the work dtype): eigenvalues that rounding pushes below
  zero would make it diverge; a non-finite result falls back to ``eigh``. The
  spectrum of ``M₀`` lies in ``(0, (1+p)/2]``; an eigenvalue ``μ`` far below 1 grows by about
  ``(1 + 1/p)^p`` per step, so κ = 1e8 takes ~25 steps before the quadratic phase.
* :func:`eigenbasis` - eigenvectors in descending order of eigenvalue (SOAP's initial basis).
* :func:`refresh_eigenbasis` - one power-iteration step from the previous basis ``Q``: ``P = A Q``,
  columns sorted by the Rayleigh quotients ``diag(Qᵀ A Q)`` (descending), ``Q' = qr(P)``; also returns
  the permutation, which SOAP applies to its second moment (Vyas et al., Algorithm 4).

Scale: every root is computed on ``A·f`` with ``f = 2^-k`` (:func:`~optimlab.linalg.scaling.pow2_scale`)
and ``ε·f``, then multiplied by ``f^{1/p}``: statistics near the top of the float range (gradients of
1e19 squared) or far below 1 neither overflow nor underflow, and ``ε·f`` is floored at the smallest
normal number so a zero or rank-deficient ``A`` gives a finite root (``ε^{-1/p} I`` for ``A = 0``).
Roots run in float32 at least (``eigh`` has no half kernels); float64 stays float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .scaling import pow2_scale, scaled_eps

__all__ = ["inv_root", "inv_root_eigh", "inv_root_newton", "eigenbasis", "refresh_eigenbasis", "ROOT_METHODS",
           "root_dtype"]

ROOT_METHODS = ("eigh", "newton")


def root_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype roots are computed in: float64 stays float64, everything else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check(A: object, p: object, eps: object, where: str) -> Tensor:
    if not isinstance(A, Tensor):
        raise TypeError(f"{where}: A must be a torch.Tensor, got {type(A).__name__}")
    if A.ndim < 2 or A.shape[-1] != A.shape[-2] or not A.dtype.is_floating_point:
        raise ValueError(f"{where}: A must be a (batch of) square floating matrices, got shape {tuple(A.shape)} "
                         f"and dtype {A.dtype}")
    if not (isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and p > 0):
        raise ValueError(f"{where}: p must be a finite number > 0, got {p!r}")
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"{where}: eps must be a finite number >= 0, got {eps!r}")
    return A


def _scaled(A: Tensor, eps: float, dtype: torch.dtype | None, sym: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """(A·f in the work dtype, symmetrised if ``sym``; ε·f floored at tiny; f) with f = 2^-k per matrix."""
    wd = dtype or root_dtype(A.dtype)
    A = A.to(wd)
    f = pow2_scale(A, eps=eps)
    As = A * f
    if sym:  # exact symmetry for the Newton iteration (statistics are symmetric up to rounding)
        As = 0.5 * (As + As.mT)
    return As, scaled_eps(eps, f, wd, floor=True), f


def _unscale(X: Tensor, f: Tensor, p: float) -> Tensor:
    # (A + εI)^{-1/p} = f^{1/p} (fA + fεI)^{-1/p}; f^{1/p} in float64, then in X's dtype (finite: f is normal)
    return X * f.to(torch.float64).pow(1.0 / p).to(X.dtype)


def inv_root_eigh(A: Tensor, p: float, eps: float = 0.0, dtype: torch.dtype | None = None) -> Tensor:
    """``(A + εI)^{-1/p}`` of a batch of symmetric PSD matrices by ``eigh`` (see the module docstring)."""
    _check(A, p, eps, "inv_root_eigh")
    As, eps_f, f = _scaled(A, eps, dtype)
    lam, V = torch.linalg.eigh(As)
    lam = lam.clamp_min(0) + eps_f.view(*eps_f.shape[:-2], 1)
    X = (V * lam.pow(-1.0 / p).unsqueeze(-2)) @ V.mT
    return _unscale(X, f, p)


def inv_root_newton(A: Tensor, p: int, eps: float = 0.0, dtype: torch.dtype | None = None, max_iter: int = 100,
                    tol: float | None = None) -> Tensor:
    """``(A + εI)^{-1/p}`` by the coupled Newton iteration (matmuls only; integer ``p``).

    ``tol`` (default: 1e-12 in float64, 1e-6 otherwise) bounds ``max|M − I|`` at which it stops; the
    check runs every 4 steps. ``max_iter`` caps the steps.
    """
    _check(A, p, eps, "inv_root_newton")
    if not isinstance(p, int) or p < 1:
        raise ValueError(f"inv_root_newton: p must be an integer >= 1, got {p!r}")
    As, eps_f, f = _scaled(A, eps, dtype)
    wd = As.dtype
    tol = (1e-12 if wd == torch.float64 else 1e-6) if tol is None else tol
    d = As.shape[-1]
    eye = torch.eye(d, dtype=wd, device=As.device)
    # damping at least u·‖A‖_F: an eigenvalue that rounding pushes below zero would make the iteration diverge
    floor = torch.finfo(wd).eps * torch.linalg.matrix_norm(As, keepdim=True)
    M = As + torch.maximum(eps_f, floor) * eye
    z = (1.0 + p) / (2.0 * torch.linalg.matrix_norm(M, keepdim=True))
    M = M * z
    X = eye * z.pow(1.0 / p)
    for i in range(max_iter):
        T = ((p + 1) * eye - M) / p
        X = X @ T
        Tp = T
        for _ in range(p - 1):
            Tp = Tp @ T
        M = Tp @ M
        if (i + 1) % 4 == 0 and float((M - eye).abs().amax()) < tol:
            break
    X = 0.5 * (X + X.mT)
    if not bool(torch.isfinite(X).all()):  # a last resort (one host check): never hand back NaN
        return inv_root_eigh(A, p, eps, dtype)
    return _unscale(X, f, p)


def inv_root(A: Tensor, p: float, eps: float = 0.0, method: str = "eigh", dtype: torch.dtype | None = None) -> Tensor:
    """``(A + εI)^{-1/p}`` for a batch of symmetric PSD ``A`` by ``method`` ("eigh" or "newton")."""
    if method == "eigh":
        return inv_root_eigh(A, p, eps, dtype)
    if method == "newton":
        return inv_root_newton(A, int(p) if float(p).is_integer() else p, eps, dtype)
    raise ValueError(f"inv_root: method must be one of {ROOT_METHODS}, got {method!r}")


def eigenbasis(A: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Orthonormal eigenvectors of symmetric ``A`` as columns, eigenvalues descending (batched)."""
    # not symmetrised: eigh reads the lower triangle, and the basis of a repeated (e.g. zero) eigenvalue
    # is arbitrary, so the bases of A itself are what a literal implementation computes
    As, _, _ = _scaled(A, 0.0, dtype, sym=False)
    _, V = torch.linalg.eigh(As)
    return V.flip(-1)


def refresh_eigenbasis(A: Tensor, Q: Tensor, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """One QR power-iteration step from the basis ``Q``: ``(Q', order)`` (batched).

    ``P = A Q``; ``order`` sorts the estimated eigenvalues ``diag(Qᵀ A Q)`` descending; ``Q' = qr(P[:, order])``.
    A column of ``Q'`` continues column ``order[j]`` of ``Q``: quantities indexed by the old basis (SOAP's
    second moment) are permuted with ``order``.
    """
    As, _, _ = _scaled(A, 0.0, dtype, sym=False)
    Qw = Q.to(As.dtype)
    P = As @ Qw
    est = (Qw * P).sum(dim=-2)
    order = torch.argsort(est, dim=-1, descending=True)
    P = torch.gather(P, -1, order.unsqueeze(-2).expand_as(P))
    Qn, _ = torch.linalg.qr(P)
    return Qn, order
