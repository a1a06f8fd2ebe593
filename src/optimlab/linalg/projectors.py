"""Kernels of the gradient projectors (GaLore, DCT column selection, Online Subspace Descent, SNSM).

Every function works on a batch of *tall* matrices ``X`` (``(B, M, N)`` with ``M >= N``: a gradient, or its
transpose when it is wide) and on a right basis ``Q`` (``(B, N, r)``): the projected gradient is ``X Q``
(``(B, M, r)``) and the way back is ``U Qᵀ``. The basis spans ``r`` of the ``N = min(m, n)`` directions, so
a projected optimizer keeps its state on ``max(m, n) × r`` numbers instead of ``m × n``.

* :func:`svd_basis` - top-``r`` right singular vectors of ``X`` (GaLore, Zhao et al., arXiv:2403.03507),
  computed on the gradient in its own orientation, as GaLore does, so that signs agree with it;
* :func:`power_basis` - the same subspace by ``iters`` warm-started subspace-iteration steps from the
  previous basis (Dion's power iteration, :func:`optimlab.linalg.lowrank.power_iteration_step`);
* :func:`dct_matrix`, :func:`dct_select` - the orthonormal DCT-II basis and the top-``r`` columns by
  ``‖X C_{:,j}‖`` (Modoranu et al., "SVD-Free Low-Rank Adaptive Gradient Optimization", arXiv:2505.17967):
  only the indices are kept, the matrix is a cached constant;
* :func:`osd_basis_grad` - the gradient of Online Subspace Descent's projector loss
  ``‖X̂ Q Qᵀ − X̂‖²_F`` with ``X̂ = X/‖X‖_F`` (Liang et al., arXiv:2408.12857).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .lowrank import power_iteration_step

__all__ = ["svd_basis", "power_basis", "dct_matrix", "dct_select", "mask_indices", "osd_basis_grad",
           "projected_rank"]

_DCT: dict[tuple, Tensor] = {}


def projected_rank(n: int, rank_fraction: float) -> int:
    """``r = ceil(rank_fraction · n)`` clipped to ``[1, n]`` (``n = min(m, n)`` of the matrix)."""
    return max(1, min(n, math.ceil(rank_fraction * n - 1e-9)))


def svd_basis(G: Tensor, r: int, transposed: bool) -> Tensor:
    """Top-``r`` singular vectors of the gradients ``G`` (``(B, m, n)`` in their own orientation) on the
    small side: right ones (``Vh[:r]ᵀ``) when ``m >= n``, left ones (``U[:, :r]``) when ``m < n``; ``(B, N, r)``."""
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    return U[..., :r] if transposed else Vh[..., :r, :].mT


def power_basis(X: Tensor, Q: Tensor, iters: int) -> Tensor:
    """``iters`` subspace-iteration steps on ``XᵀX`` from ``Q``: ``Q ← orth(Xᵀ X Q)`` (one warm-started
    power-iteration step on ``Xᵀ`` each); the span converges to the top-``r`` right singular subspace."""
    A = X @ Q
    for _ in range(iters):
        Q, A = power_iteration_step(X.mT, A)
    return Q


def dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The orthonormal DCT-II matrix with the basis vectors as *columns*: ``C[j, k] = s_k cos(π(2j+1)k/2n)``,
    ``s_0 = sqrt(1/n)``, ``s_k = sqrt(2/n)``; ``CᵀC = I``. Built in float64 once per (n, dtype, device)."""
    key = (n, dtype, str(device))
    C = _DCT.get(key)
    if C is None:
        j = torch.arange(n, dtype=torch.float64)[:, None]
        k = torch.arange(n, dtype=torch.float64)[None, :]
        C = torch.cos(math.pi * (2 * j + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
        C[:, 0] = math.sqrt(1.0 / n)
        C = C.to(dtype=dtype, device=device)
        _DCT[key] = C
    return C


def dct_select(X: Tensor, r: int) -> Tensor:
    """Indices ``(B, r)`` (unordered) of the ``r`` DCT columns with the largest scores ``‖X C_{:,j}‖₂``."""
    C = dct_matrix(X.shape[-1], X.dtype, X.device)
    scores = torch.linalg.vector_norm(X @ C, dim=-2)
    return torch.topk(scores, r, dim=-1, sorted=False).indices


def mask_indices(mask: Tensor, r: int) -> Tensor:
    """The positions of the ones of a ``(B, N)`` 0/1 mask with ``r`` ones per row, ascending: ``(B, r)``."""
    return torch.nonzero(mask > 0.5)[:, 1].reshape(mask.shape[0], r)


def osd_basis_grad(X: Tensor, Q: Tensor) -> Tensor:
    """``∇_Q ‖X̂ Q Qᵀ − X̂‖²_F = 2 (X̂ᵀ E Q + Eᵀ X̂ Q)`` with ``E = X̂ Q Qᵀ − X̂`` and ``X̂ = X / ‖X‖_F``
    (a zero matrix gives a zero gradient)."""
    nrm = torch.linalg.matrix_norm(X, keepdim=True)
    Xh = X / torch.where(nrm > 0, nrm, torch.ones_like(nrm))
    XQ = Xh @ Q
    E = XQ @ Q.mT - Xh
    return 2.0 * (Xh.mT @ (E @ Q) + E.mT @ XQ)
