"""QDWH polar decomposition, and the Schatten-exponent spectral map built on it (Freon's engine).

**QDWH** - Y. Nakatsukasa, Z. Bai, F. Gygi, "Optimizing Halley's iteration for computing the
matrix polar decomposition", SIAM J. Matrix Anal. Appl. 31(5), 2010.  For tall ``A`` (m >= n),
``X_0 = A / alpha`` with ``alpha >= ||A||_2`` and ``ell_0 <= sigma_min(X_0)``, the dynamically
weighted Halley iteration

    X_{k+1} = X_k (a_k I + b_k X_kᵀX_k)(I + c_k X_kᵀX_k)^{-1}
    a_k = h(ell_k),  b_k = (a_k - 1)² / 4,  c_k = a_k + b_k - 1,
    h(l) = sqrt(1 + g) + ½ sqrt(8 - 4 g + 8 (2 - l²) / (l² sqrt(1 + g))),  g = (4 (1 - l²) / l⁴)^(1/3)
    ell_{k+1} = ell_k (a_k + b_k ell_k²) / (1 + c_k ell_k²)

maps every singular value in ``[ell_k, 1]`` into ``[ell_{k+1}, 1]`` (the weights are the optimal
rational ones for that interval) and converges to the polar factor ``U Vᵀ`` in at most 6 steps for
``kappa <= 1e16``.  Each step is computed in the inverse-free forms of the paper:

* QR-based (eq. 3.3 of NBG): ``[sqrt(c) X; I] = [Q1; Q2] R``,
  ``X <- (b/c) X + (a - b/c) / sqrt(c) · Q1 Q2ᵀ``;
* Cholesky-based, once ``c_k <= 100`` (the switch of Nakatsukasa & Higham, SIAM J. Sci. Comput.
  35(3), 2013, where ``I + c XᵀX`` is well conditioned): ``W = chol(I + c XᵀX)``,
  ``X <- (b/c) X + (a - b/c) X W^{-1} W^{-T}``.

Choices (documented): ``alpha = ||A||_F`` (an upper bound of ``||A||_2``, free); ``ell_0`` is a
fixed design bound, not a per-matrix condition estimate - ``1e-12`` in float64 and ``1e-6`` in
float32 - so the weights and the number of steps (5 and 4) are plain Python numbers, identical
for every matrix of a batch (no data-dependent branching).  Singular values of ``X_0`` below
``ell_0`` (relative condition beyond ``1/ell_0`` w.r.t. the Frobenius norm) are mapped by the same
odd rational functions: zero stays exactly zero (a zero or rank-deficient matrix gives no NaN),
while tiny non-zero values end somewhere in ``(0, 1)``.  bfloat16/float16 inputs are computed in
float32 (QR and Cholesky have no CPU half-precision kernels).

**Schatten map** (Freon) - :func:`schatten_direction` returns ``U diag((sigma / ||sigma||_q)^(q-1)) Vᵀ``,
computed from the polar decomposition ``A = U_p H``: ``H = sym(U_pᵀ A)`` (n x n, condition number
``kappa`` - not ``kappa²`` as ``AᵀA`` would have) is diagonalised with ``torch.linalg.eigh`` and
``U_p · V f(Lambda) Vᵀ`` is formed.  See ``optimizers/muon_backends.py`` for the paper.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from ._ns import _check_matrix
from .scaling import pow2_scale

__all__ = ["qdwh", "qdwh_coefficients", "schatten_direction", "QDWH_L0"]

#: Default lower bound ``ell_0`` on the singular values of ``A / ||A||_F``, per working dtype.
QDWH_L0 = {torch.float64: 1e-12, torch.float32: 1e-6}
_CHOLESKY_BELOW = 100.0  # Nakatsukasa & Higham (2013): Cholesky-based steps once c_k <= 100


def qdwh_coefficients(l0: float, tol: float) -> list[tuple[float, float, float]]:
    """The QDWH weights ``(a_k, b_k, c_k)`` for design bound ``ell_0 = l0``, until ``1 - ell_k <= tol``."""
    if not (isinstance(l0, numbers.Real) and 0 < l0 <= 1):
        raise ValueError(f"qdwh: l0 must be in (0, 1], got {l0!r}")
    out, ell = [], float(l0)
    while 1.0 - ell > tol and len(out) < 30:
        l2 = ell * ell
        g = (4.0 * (1.0 - l2) / (l2 * l2)) ** (1.0 / 3.0)
        sg = math.sqrt(1.0 + g)
        a = sg + 0.5 * math.sqrt(8.0 - 4.0 * g + 8.0 * (2.0 - l2) / (l2 * sg))
        b = (a - 1.0) ** 2 / 4.0
        c = a + b - 1.0
        ell = ell * (a + b * l2) / (1.0 + c * l2)
        out.append((a, b, c))
    return out


def _work_dtype(G: Tensor, where: str) -> torch.dtype:
    if not G.dtype.is_floating_point:
        raise ValueError(f"{where}: G.dtype must be a real floating dtype, got {G.dtype!r}")
    return torch.float64 if G.dtype == torch.float64 else torch.float32


def _qdwh_tall(A: Tensor, coeffs: list[tuple[float, float, float]]) -> Tensor:
    """Polar factor of the batch of tall matrices ``A`` (B, m, n), m >= n, in A's dtype."""
    n = A.shape[-1]
    # alpha = ||A||_F, taken after a division by max|A_ij| so that neither tiny nor huge entries
    # under/overflow the sum of squares; a zero matrix stays zero.
    X = A / A.abs().amax(dim=(-2, -1), keepdim=True).clamp(min=torch.finfo(A.dtype).tiny)
    X = X / torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True).clamp(min=1.0)
    eye = torch.eye(n, dtype=A.dtype, device=A.device).expand(A.shape[0], n, n)
    for a, b, c in coeffs:
        if c > _CHOLESKY_BELOW:
            Q, _ = torch.linalg.qr(torch.cat([math.sqrt(c) * X, eye], dim=-2))
            X = (b / c) * X + ((a - b / c) / math.sqrt(c)) * (Q[..., : A.shape[-2], :] @ Q[..., A.shape[-2]:, :].mT)
        else:
            L = torch.linalg.cholesky(torch.baddbmm(eye, X.mT, X, alpha=c))
            X = (b / c) * X + (a - b / c) * torch.cholesky_solve(X.mT, L).mT  # X (I + c XᵀX)^{-1}
    return X


def _as_tall_batch(G: Tensor, wd: torch.dtype) -> tuple[Tensor, bool]:
    m, n = G.shape[-2], G.shape[-1]
    A = G.reshape(-1, m, n).to(wd, copy=True)
    return (A.mT, True) if m < n else (A, False)


def qdwh(G: Tensor, *, l0: float | None = None, dtype: torch.dtype | None = None,
         return_hermitian: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Polar factor ``U Vᵀ`` of every matrix of ``G`` (..., m, n) by QDWH (see the module doc).

    ``l0``: lower bound on the singular values of ``G / ||G||_F`` the weights are designed for
    (default :data:`QDWH_L0` of the working dtype: float64 for float64 input, else float32).
    Returns a new tensor of ``G``'s shape in ``dtype`` (``G.dtype`` if None).  With
    ``return_hermitian=True`` also returns ``H = sym(Uᵀ G_t)`` of shape (..., k, k), k = min(m, n),
    the Hermitian factor of the tall orientation ``G_t`` (``G`` or ``Gᵀ``), in the working dtype.
    """
    where = "qdwh"
    G = _check_matrix(G, where)
    wd = _work_dtype(G, where)
    out_dtype = G.dtype if dtype is None else dtype
    l0 = QDWH_L0[wd] if l0 is None else l0
    coeffs = qdwh_coefficients(l0, 10 * torch.finfo(wd).eps)
    m, n = G.shape[-2], G.shape[-1]
    k = min(m, n)
    if G.numel() == 0:
        U = torch.zeros(G.shape, dtype=out_dtype, device=G.device)
        return (U, torch.zeros(*G.shape[:-2], k, k, dtype=wd, device=G.device)) if return_hermitian else U
    A, wide = _as_tall_batch(G, wd)
    U = _qdwh_tall(A, coeffs)
    out = (U.mT if wide else U).reshape(G.shape).to(out_dtype)
    if not return_hermitian:
        return out
    H = U.mT @ A
    H = 0.5 * (H + H.mT)
    return out, H.reshape(*G.shape[:-2], k, k)


def schatten_direction(G: Tensor, q: float, *, backend: str = "qdwh", l0: float | None = None,
                       dtype: torch.dtype | None = None) -> Tensor:
    """``U diag(f(sigma)) Vᵀ`` with ``f(sigma) = (sigma / ||sigma||_q)^(q - 1)`` for ``G = U diag(sigma) Vᵀ``.

    ``||sigma||_q = (sum_i sigma_i^q)^(1/q)`` (a quasi-norm for q < 1).  q = 1 gives the polar factor
    (Muon), q = 2 gives ``G / ||G||_F`` (normalised SGD), q < 1 inverts the spectrum (small singular
    values get the largest weights).  Singular values ``<= max(m, n) · eps(working dtype) · sigma_max``
    count as zero and map to zero (for q < 1 they would blow up; a zero matrix maps to zero).
    ``backend``: ``"qdwh"`` (polar factor by QDWH, then ``eigh`` of its Hermitian factor) or
    ``"svd"`` (one ``torch.linalg.svd``; the exact oracle).  Computed in float64 for float64 input
    and float32 otherwise; returned in ``dtype`` (``G.dtype`` if None).  q must be > 0.
    """
    where = "schatten_direction"
    G = _check_matrix(G, where)
    if not (isinstance(q, numbers.Real) and not isinstance(q, bool) and math.isfinite(q) and q > 0):
        raise ValueError(f"{where}: q must be a finite number > 0, got {q!r}")
    if backend not in ("qdwh", "svd"):
        raise ValueError(f"{where}: backend must be 'qdwh' or 'svd', got {backend!r}")
    wd = _work_dtype(G, where)
    out_dtype = G.dtype if dtype is None else dtype
    m, n = G.shape[-2], G.shape[-1]
    if G.numel() == 0:
        return torch.zeros(G.shape, dtype=out_dtype, device=G.device)
    # The map is scale-free (σ/‖σ‖_q, a relative rank tolerance): work on G·2^-k, max|G·2^-k| ~ 1, so
    # that neither the SVD nor H = Uᵀ G (whose eigenvalues are the σ) can overflow; exact for ordinary G.
    G = G.to(wd)
    G = G * pow2_scale(G)
    if backend == "svd":
        U, lam, Vh = torch.linalg.svd(G.to(wd), full_matrices=False)
        V = Vh.mT
    else:
        U, H = qdwh(G, l0=l0, dtype=wd, return_hermitian=True)
        lam, V = torch.linalg.eigh(H)  # H = V diag(lam) Vᵀ, lam = singular values of G (ascending)
        lam = lam.clamp(min=0)  # round-off can make a zero singular value slightly negative
    tol = lam.amax(dim=-1, keepdim=True) * (max(m, n) * torch.finfo(wd).eps)
    keep = lam > tol
    safe = torch.where(keep, lam, torch.ones_like(lam))  # no 0 ** negative anywhere, even masked
    norm_q = (safe.pow(q) * keep).sum(dim=-1, keepdim=True).pow(1.0 / q)
    f = torch.where(keep, (safe / norm_q.clamp(min=torch.finfo(wd).tiny)).pow(q - 1.0), torch.zeros_like(lam))
    if backend == "svd":
        out = (U * f.unsqueeze(-2)) @ Vh
    elif m >= n:  # U: (m, n) polar factor; G = U V diag(lam) Vᵀ
        out = U @ ((V * f.unsqueeze(-2)) @ V.mT)
    else:  # wide: Gᵀ = Uᵀ H, so G = H U and the map acts on the left
        out = ((V * f.unsqueeze(-2)) @ V.mT) @ U
    return out.to(out_dtype)
