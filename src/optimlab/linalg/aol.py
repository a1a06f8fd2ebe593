"""AOL-preconditioned Newton–Schulz: Turbo-Muon's orthogonalisation.

T. Boissin, T. Massena, F. Mamalet, M. Serrurier, "Turbo-Muon: Accelerating Orthogonality-Based
Optimization with Pre-Conditioning", arXiv:2512.04632.  Instead of dividing by ``||G||_F`` the
input is rescaled with the diagonal of an *almost-orthogonal layer* (AOL; B. Prach and C. H.
Lampert, "Almost-Orthogonal Layers for Efficient General-Purpose Lipschitz Networks",
arXiv:2208.03160)::

    (wide orientation m <= n; a tall G is processed as G^T, i.e. the small Gram matrix is used)
    A   = X X^T                                   # the first NS step's Gram product, computed once
    s_i = (sum_j |A_ij|)^(-1/2)                   # floored: sum_j |A_ij| >= eps
    X   <- diag(s) X,   A <- diag(s) A diag(s)    # A is now the Gram matrix of the rescaled X
    first step with (a, b, c)_1 on the rescaled A (no second X X^T), then the remaining steps.

For a tall ``G`` this is Prach & Lampert's column scaling ``G D`` with
``D = diag(sum_j |G^T G|_ij)^(-1/2)``; it guarantees ``||X||_2 <= 1`` (so no Frobenius division)
and leaves ``X`` much closer to orthogonal than ``G / ||G||_F`` does (the small singular values
are lifted), which is why one of the usual five iterations can be dropped.

Schedule: the authors' code (github.com/thib-s/flash-newton-schulz, ``NS_ours``, and their
modded-nanogpt record README) uses the last ``iter`` entries of the 5-step "dion" list
(:data:`optimlab.linalg.schedules.DION`); with the paper's 4 iterations that is
:data:`~optimlab.linalg.schedules.TURBO` ("turbo").  The README says so explicitly: "the simplest
way to obtain such coefficients is to simply drop the first iteration of the usual newton schulz
coefficients".  The repository also contains scripts that tune coefficients for the AOL spectrum;
their output is not published, so we use the dropped-first-step list (documented choice).

Low-precision emulation, buffers, autograd and batching follow :func:`newton_schulz`.
"""

from __future__ import annotations

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
    _ns_iterate,
    _ns_iterate_functional,
    _rnd,
    _working_copy,
)
from .schedules import ns_coefficients

__all__ = ["aol_newton_schulz"]


def _aol_impl(G: Tensor, coeffs: list[tuple[float, float, float]], wd: torch.dtype, eps: float,
              emulate: bool) -> Tensor:
    if G.numel() == 0:
        return torch.zeros(G.shape, dtype=wd, device=G.device)
    track = torch.is_grad_enabled() and G.requires_grad
    X, tall, lowp, f = _working_copy(G, wd, emulate, eps, power=2)
    mm, addmm = _mm_ops(X)
    A = _rnd(mm(X, X.mT), lowp)
    X, A = _aol_scale(X, A, eps, lowp, f)
    if coeffs:
        # The first step reuses the rescaled Gram matrix: this is where AOL costs almost nothing.
        a, b, c = coeffs[0]
        B = _rnd(addmm(A, A, A, beta=b, alpha=c), lowp)
        X = _rnd(addmm(X, B, X, beta=a), lowp)
        rest = coeffs[1:]
        X = _ns_iterate_functional(X, rest, lowp) if track else _ns_iterate(X, rest, lowp)
    return _finish(X, G, wd, tall, emulate)


def aol_newton_schulz(
    G: Tensor,
    steps: int = 4,
    schedule: str | Sequence[tuple[float, float, float]] = "turbo",
    *,
    dtype: torch.dtype | None = torch.bfloat16,
    eps: float = 1e-7,
) -> Tensor:
    """Polar factor of ``G`` (..., m, n) by AOL rescaling + ``steps`` quintic Newton–Schulz steps.

    Defaults are Turbo-Muon's (arXiv:2512.04632): 4 steps of the "turbo" schedule, bfloat16.
    ``eps`` floors the AOL row sums (a zero row maps to zero).  ``steps = 0`` returns the AOL-rescaled
    input.  Returns a new tensor of ``G``'s shape in ``dtype`` (``G.dtype`` if None); ``G`` is not
    modified.  Leading dimensions are a batch; each matrix gets its own scaling.
    """
    where = "aol_newton_schulz"
    G = _check_matrix(G, where)
    wd = _check_dtype(dtype, G, where)
    eps = _check_eps(eps, where)
    coeffs = ns_coefficients(schedule, steps)
    return _aol_impl(G, coeffs, wd, eps, _emulate_lowp(wd, G.device))
