"""Products that skip known zeros: triangular × dense (``trmm``) and symmetric Gram matrices (``syrk``).

torch has no batched ``trmm`` / ``syrk``; a full ``matmul`` spends half of its flops on the zero triangle of a
triangular factor, or on the mirrored half of a symmetric result. Both functions split the matrix in halves
recursively (down to ``cutoff`` rows, then one plain ``matmul``)::

    [U₁₁ U₁₂; 0 U₂₂] [X₁; X₂] = [U₁₁X₁ + U₁₂X₂; U₂₂X₂]          (upper; lower likewise)
    [A₁; A₂][A₁; A₂]ᵀ = [A₁A₁ᵀ  A₁A₂ᵀ; (A₁A₂ᵀ)ᵀ  A₂A₂ᵀ]

so an n × n triangular factor times an n × k matrix costs ≈ n²k (instead of 2n²k) flops and an n × k Gram
≈ n²k, at the price of smaller GEMMs. The products are the same as the dense ones up to rounding (terms are
summed in a different order; the zeros are exact). Used by PSGD Kron (triangular Q) and SOAP (statistics).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["tri_matmul", "triu_triu", "gram"]

CUTOFF = 256  # rows below which one plain matmul is faster than splitting (measured on CPU, float32)


def tri_matmul(T: Tensor, X: Tensor, upper: bool = True, cutoff: int | None = None) -> Tensor:
    """``T @ X`` for a batch of triangular ``T`` (``(..., n, n)``; upper or lower, the other triangle is not
    read) and ``X`` (``(..., n, k)``)."""
    cutoff = CUTOFF if cutoff is None else cutoff
    n = T.shape[-1]
    if n <= cutoff:
        return (T.triu() if upper else T.tril()) @ X
    h = n // 2
    X1, X2 = X[..., :h, :], X[..., h:, :]
    if upper:
        top = tri_matmul(T[..., :h, :h], X1, True, cutoff).add_(T[..., :h, h:] @ X2)
        bottom = tri_matmul(T[..., h:, h:], X2, True, cutoff)
    else:
        top = tri_matmul(T[..., :h, :h], X1, False, cutoff)
        bottom = tri_matmul(T[..., h:, h:], X2, False, cutoff).add_(T[..., h:, :h] @ X1)
    return torch.cat([top, bottom], dim=-2)


def triu_triu(U: Tensor, V: Tensor, cutoff: int | None = None) -> Tensor:
    """``U @ V`` for batches of upper-triangular ``U``, ``V`` (``(..., n, n)``; lower triangles not read): the
    upper-triangular product in ≈ n³/3 flops (:func:`tri_matmul`: n³, dense: 2n³)::

        [U₁₁ U₁₂; 0 U₂₂][V₁₁ V₁₂; 0 V₂₂] = [U₁₁V₁₁  U₁₁V₁₂ + U₁₂V₂₂; 0  U₂₂V₂₂]
    """
    cutoff = CUTOFF if cutoff is None else cutoff
    n = U.shape[-1]
    if n <= cutoff:
        return U.triu() @ V.triu()
    h = n // 2
    U11, U12, U22 = U[..., :h, :h], U[..., :h, h:], U[..., h:, h:]
    V11, V12, V22 = V[..., :h, :h], V[..., :h, h:], V[..., h:, h:]
    R12 = tri_matmul(U11, V12, True, cutoff).add_(tri_matmul(V22.mT, U12.mT, False, cutoff).mT)  # U₁₂V₂₂ = (V₂₂ᵀU₁₂ᵀ)ᵀ
    R22 = triu_triu(U22, V22, cutoff)
    top = torch.cat([triu_triu(U11, V11, cutoff), R12], dim=-1)
    bottom = torch.cat([R22.new_zeros(R22.shape[:-1] + (h,)), R22], dim=-1)
    return torch.cat([top, bottom], dim=-2)


def gram(A: Tensor, cutoff: int | None = None) -> Tensor:
    """``A Aᵀ`` for a batch ``(..., m, k)``, both triangles filled (exactly symmetric off the diagonal blocks)."""
    cutoff = CUTOFF if cutoff is None else cutoff
    m = A.shape[-2]
    if m <= cutoff:
        return A @ A.mT
    h = m // 2
    A1, A2 = A[..., :h, :], A[..., h:, :]
    S12 = A1 @ A2.mT
    return torch.cat([torch.cat([gram(A1, cutoff), S12], dim=-1),
                      torch.cat([S12.mT, gram(A2, cutoff)], dim=-1)], dim=-2)
