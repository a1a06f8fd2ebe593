"""Low-rank kernels: orthonormal bases, warm-started power iteration and a randomized range finder.

All functions are batched over leading dimensions (``(..., m, n)``) and never branch on tensor values,
so a stack of same-shape matrices is processed by one batched QR / matmul.

* :func:`orthonormal_basis` - reduced QR ``Q`` factor of the columns of ``P``.
* :func:`column_normalize` - each column divided by its Euclidean norm (plus ``eps``).
* :func:`power_iteration_step` - one warm-started step ``P = orth(B Q)``, ``R = Bᵀ P`` (Dion's
  ``PowerIter1``, arXiv:2504.05295, Algorithm 1); ``P Rᵀ = P Pᵀ B`` is the rank-r approximation of ``B``
  on the subspace ``P`` spans.
* :func:`range_finder` - Halko, Martinsson & Tropp's randomized range finder with subspace iterations
  ("Finding structure with randomness", arXiv:0909.4061, Algorithms 4.1/4.4): an orthonormal basis of
  the top-``rank`` column space.
* :func:`subspace_distance` - ``sin`` of the largest principal angle between two subspaces.

QR runs in float32 at least (``torch.linalg.qr`` has no bfloat16/float16 kernels on CPU); float64 input
stays float64.  A zero matrix gives finite output: the QR of a zero block is a valid orthonormal
basis and column normalization divides by ``eps``, so no NaN appears.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .scaling import pow2_scale

__all__ = ["orthonormal_basis", "column_normalize", "power_iteration_step", "range_finder",
           "subspace_distance", "work_dtype"]


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype low-rank factorizations run in: float64 stays float64, everything else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check(A: object, where: str) -> Tensor:
    if not isinstance(A, Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor, got {type(A).__name__}")
    if A.ndim < 2 or not A.dtype.is_floating_point:
        raise ValueError(f"{where}: expected a real floating tensor with ndim >= 2, got shape "
                         f"{tuple(A.shape)} and dtype {A.dtype}")
    return A


def orthonormal_basis(P: Tensor) -> Tensor:
    """``Q`` of the reduced QR factorization ``P = Q R`` (``(..., m, r)`` with ``r <= m``), in ``P.dtype``."""
    P = _check(P, "orthonormal_basis")
    Q, _ = torch.linalg.qr(P.to(work_dtype(P.dtype)), mode="reduced")
    return Q.to(P.dtype)


def column_normalize(R: Tensor, eps: float | Tensor = 1e-8) -> Tensor:
    """``R / (‖R[:, j]‖₂ + eps)`` column by column (Dion's ``ColumnNormalize``); a zero column stays zero.

    ``eps`` may be a tensor broadcasting against the ``(..., 1, r)`` column norms (a rescaled ``eps``)."""
    R = _check(R, "column_normalize")
    return R / (torch.linalg.vector_norm(R, dim=-2, keepdim=True) + eps)


def power_iteration_step(B: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
    """One warm-started power-iteration step on ``B`` (``(..., m, n)``) from ``Q`` (``(..., n, r)``).

    Returns ``P = orth(B Q)`` (``(..., m, r)``, orthonormal columns) and ``R = Bᵀ P`` (``(..., n, r)``),
    so that ``P Rᵀ = P Pᵀ B`` is ``B`` projected on the span of ``P``. Repeating the step with
    ``Q ← R`` (any column scaling) is subspace iteration on ``B Bᵀ``: ``span(P)`` converges to the top-r
    left singular subspace at the rate ``σ_{r+1}/σ_r`` per step, and with distinct singular values the
    columns of ``P`` converge to the singular vectors themselves.
    """
    B, Q = _check(B, "power_iteration_step"), _check(Q, "power_iteration_step")
    if B.shape[-1] != Q.shape[-2]:
        raise ValueError(f"power_iteration_step: B is {tuple(B.shape)} but Q is {tuple(Q.shape)}; "
                         f"need Q.shape[-2] == B.shape[-1]")
    # span(B Q) = span(B·f Q): the exact power-of-two rescaling keeps the product from overflowing
    P = orthonormal_basis((B * pow2_scale(B)) @ Q)
    return P, B.mT @ P


def range_finder(A: Tensor, rank: int, *, iters: int = 2, oversample: int = 5,
                 generator: torch.Generator | None = None) -> Tensor:
    """An orthonormal basis ``(..., m, rank)`` of the dominant ``rank``-dimensional column space of ``A``.

    Randomized range finder: ``Y = A Ω`` with Gaussian ``Ω`` of ``rank + oversample`` columns, then
    ``iters`` subspace iterations ``Y ← A (Aᵀ orth(Y))`` re-orthonormalized at each half step; the
    first ``rank`` columns of the final ``orth(Y)``, rotated onto the top singular directions of
    ``Qᵀ A`` so that truncating the oversampled basis keeps the dominant part.
    """
    A = _check(A, "range_finder")
    m, n = A.shape[-2], A.shape[-1]
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(m, n):
        raise ValueError(f"range_finder: rank must be an int in [1, {min(m, n)}], got {rank!r}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ValueError(f"range_finder: iters must be an int >= 0, got {iters!r}")
    wd = work_dtype(A.dtype)
    X = A.to(wd)
    X = X * pow2_scale(X)  # every output is a basis (scale-free): exact rescaling, no overflow in X Ω
    k = min(rank + max(0, int(oversample)), min(m, n))
    omega = torch.randn((*A.shape[:-2], n, k), generator=generator, dtype=wd, device="cpu").to(A.device)
    Q = orthonormal_basis(X @ omega)
    for _ in range(iters):
        Z = orthonormal_basis(X.mT @ Q)
        Q = orthonormal_basis(X @ Z)
    # Rotate the k-dimensional basis onto the singular directions of the small matrix Qᵀ A so the
    # first `rank` columns are the dominant ones (Halko et al., Algorithm 5.1).
    U, _, _ = torch.linalg.svd(Q.mT @ X, full_matrices=False)
    return (Q @ U[..., :rank]).to(A.dtype)


def subspace_distance(Q1: Tensor, Q2: Tensor) -> Tensor:
    """``sin θ_max`` between ``span(Q1)`` and ``span(Q2)`` (both orthonormal, ``(..., m, r)``): 0 when
    equal, 1 when some direction of one is orthogonal to the other. Computed in float64 as
    ``‖(I − Q1 Q1ᵀ) Q2‖₂`` (accurate for tiny angles, unlike ``sqrt(1 − cos²)``)."""
    Q1, Q2 = _check(Q1, "subspace_distance"), _check(Q2, "subspace_distance")
    Q1, Q2 = Q1.to(torch.float64), Q2.to(torch.float64)
    return torch.linalg.matrix_norm(Q2 - Q1 @ (Q1.mT @ Q2), ord=2).clamp(max=1.0)
