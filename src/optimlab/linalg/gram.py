"""Gram Newton–Schulz: the same iteration, carried out on the small Gram matrix.

J. Zhang, N. Amsel, B. Chen, T. Dao, "Gram Newton-Schulz: A Fast, Hardware-Aware Newton-Schulz
Algorithm for Muon" (2026; blog https://dao-ailab.github.io/blog/2026/gram-newton-schulz/, algorithm
box in the README of github.com/Dao-AILab/gram-newton-schulz).  Every quintic step multiplies ``X``
on the left by a polynomial of ``R = X Xᵀ``; all those polynomials commute, so instead of updating
the wide ``X`` (n x m, n <= m) each step one accumulates ``Q`` and updates ``R`` (both n x n)::

    R = X Xᵀ,  Q = None
    for t, (a, b, c) in enumerate(schedule):
        if t in restarts (t > 0):  X <- Q X;  R <- X Xᵀ;  Q <- None      # restart
        Z  = b R + c R²
        Q  = Z + a I  if Q is None  else  Q Z + a Q                       # Q <- Q (a I + Z)
        if the next step needs R:  RZ = R Z + a R;  R = Z RZ + a RZ      # R <- P R P, P = a I + Z
    X <- Q X

In exact arithmetic this equals :func:`newton_schulz` with the same schedule.  Cost per step is
``8 n³`` instead of ``4 n² m + 2 n³``, plus ``2 n² m`` for each ``X Xᵀ`` and each ``Q X`` product,
so it wins when ``m / n`` is large (the 1:4 MLP matrices of a transformer).  ``R`` squares the
condition number and grows in error step by step; the published algorithm restarts (re-forms ``X``
and ``R``) "immediately after the 2nd iteration" by default (``restarts=(2,)`` here: before step
index 2), which the authors find stable for 5 steps; more steps may need more restarts.  Measured here:
in bfloat16 the restart is essential - without it the iteration diverges on decaying spectra
(``||X - UVᵀ||_2`` of 20 to 2.5e3 for sigma_i = 1/(1+i)); in float32 ``restarts=()`` matches plain NS
(and saves two ``n² m`` products); with Polar Express in bfloat16 even one restart is not enough
(max|sigma - 1| 0.19 vs 0.13; float16, the published kernels' dtype, is fine) - see tests/linalg/test_gram.py.

Square matrices gain nothing (``8 n³`` vs ``6 n³`` per step), so they run the plain iteration -
the same rule as the published code (Gram only when ``max(m, n) > min(m, n)``).  With
``precondition="aol"`` the first Gram matrix also gives Turbo-Muon's AOL scaling (see ``aol.py``):
``X <- diag(s) X``, ``R <- diag(s) R diag(s)``, no extra product.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from ._ns import (
    _aol_scale,
    _check_dtype,
    _check_eps,
    _check_matrix,
    _emulate_lowp,
    _finish,
    _mm_ops,
    _newton_schulz_impl,
    _normalise,
    _rnd,
    _working_copy,
)
from .aol import _aol_impl
from .schedules import norm_safety, ns_coefficients

__all__ = ["gram_newton_schulz", "check_restarts"]


def check_restarts(restarts: object, where: str) -> tuple[int, ...]:
    """Validate a restart list: a sequence of non-negative step indices (duplicates allowed)."""
    if isinstance(restarts, numbers.Integral) and not isinstance(restarts, bool):
        restarts = (restarts,)
    if isinstance(restarts, (str, bytes)) or not isinstance(restarts, Sequence) or not all(
        isinstance(r, numbers.Integral) and not isinstance(r, bool) and r >= 0 for r in restarts
    ):
        raise ValueError(f"{where}: restarts must be a sequence of step indices >= 0, got {restarts!r}")
    return tuple(sorted({int(r) for r in restarts}))


def _gram_iterate(X: Tensor, coeffs, restarts: tuple[int, ...], lowp: torch.dtype | None,
                  R: Tensor | None = None) -> Tensor:
    mm, addmm = _mm_ops(X)
    if R is None:
        R = _rnd(mm(X, X.mT), lowp)
    Q = None
    last = len(coeffs) - 1
    for t, (a, b, c) in enumerate(coeffs):
        if t in restarts and t > 0:
            X = _rnd(mm(Q, X), lowp)
            R = _rnd(mm(X, X.mT), lowp)
            Q = None
        Z = _rnd(addmm(R, R, R, beta=b, alpha=c), lowp)
        if Q is None:
            Q = Z.clone()
            Q.diagonal(dim1=-2, dim2=-1).add_(a)
            Q = _rnd(Q, lowp)
        else:
            Q = _rnd(addmm(Q, Q, Z, beta=a), lowp)
        if t < last and (t + 1) not in restarts:
            RZ = _rnd(addmm(R, R, Z, beta=a), lowp)
            R = _rnd(addmm(RZ, Z, RZ, beta=a), lowp)
    return X if Q is None else _rnd(mm(Q, X), lowp)


def gram_newton_schulz(
    G: Tensor,
    steps: int = 5,
    schedule: str | Sequence[tuple[float, float, float]] = "jordan",
    *,
    restarts: Sequence[int] = (2,),
    precondition: str = "frobenius",
    dtype: torch.dtype | None = torch.bfloat16,
    eps: float = 1e-7,
) -> Tensor:
    """Newton–Schulz on the Gram matrix (see the module doc); equals :func:`newton_schulz` in exact arithmetic.

    ``restarts``: step indices before which ``X`` and ``R`` are re-formed (default ``(2,)``, the
    published one).  ``precondition``: ``"frobenius"`` (``X / ||X||_F``, or Polar Express's
    ``1.01 ||X||_F + eps`` for that schedule, as in :func:`newton_schulz`) or ``"aol"`` (Turbo-Muon's
    rescaling).  Square matrices use the plain iteration.  Returns a new tensor of ``G``'s shape in
    ``dtype`` (``G.dtype`` if None).  Always out of place (differentiable when ``G`` requires grad).
    """
    where = "gram_newton_schulz"
    G = _check_matrix(G, where)
    wd = _check_dtype(dtype, G, where)
    eps = _check_eps(eps, where)
    coeffs = ns_coefficients(schedule, steps)
    restarts = check_restarts(restarts, where)
    if precondition not in ("frobenius", "aol"):
        raise ValueError(f"{where}: precondition must be 'frobenius' or 'aol', got {precondition!r}")
    emulate = _emulate_lowp(wd, G.device)
    m, n = G.shape[-2], G.shape[-1]
    if m == n:
        if precondition == "aol":
            return _aol_impl(G, coeffs, wd, eps, emulate)
        return _newton_schulz_impl(G, coeffs, norm_safety(schedule), wd, eps, emulate)
    if G.numel() == 0:
        return torch.zeros(G.shape, dtype=wd, device=G.device)
    X, tall, lowp, f = _working_copy(G, wd, emulate, eps, power=2 if precondition == "aol" else 1)
    R = None
    if precondition == "aol":
        mm, _ = _mm_ops(X)
        X, R = _aol_scale(X, _rnd(mm(X, X.mT), lowp), eps, lowp, f)
    else:
        X = _normalise(X, norm_safety(schedule), eps, lowp, inplace=False, f=f)
    X = _gram_iterate(X, coeffs, restarts, lowp, R)
    return _finish(X, G, wd, tall, emulate)
