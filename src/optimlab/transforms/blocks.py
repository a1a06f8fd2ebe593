"""Matrix blocking for Kronecker-factored preconditioners, and the scaled products their statistics need.

A ``(m, n)`` matrix is cut into ``Br × Bc`` blocks of ``(br, bc)`` with ``br = min(m, block)``,
``Br = ceil(m / br)`` (the same for columns); the last row / column of blocks is zero-padded. Padding is
exact for Shampoo-type rules: a zero row of ``G`` adds nothing to ``G Gᵀ``, its preconditioner block is
``ε^{-1/p}`` on the padded coordinates, and the preconditioned update there is ``0`` (cut away on the way
back). Each block has its own left and right statistics (Anil et al., arXiv:2002.09018, §4 "blocking";
Shi et al., Distributed Shampoo, arXiv:2309.06497).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..linalg.scaling import pow2_scale, saturate

__all__ = ["block_layout", "to_blocks", "from_blocks", "scaled_grams"]


def block_layout(m: int, n: int, block: int) -> tuple[int, int, int, int]:
    """``(Br, Bc, br, bc)``: the number of row / column blocks and the block shape."""
    br, bc = min(m, block), min(n, block)
    return math.ceil(m / br), math.ceil(n / bc), br, bc


def to_blocks(X: Tensor, block: int) -> Tensor:
    """``(B, m, n)`` as ``(B·Br·Bc, br, bc)`` (a copy; zero-padded when ``block`` does not divide m or n)."""
    B, m, n = X.shape
    Br, Bc, br, bc = block_layout(m, n, block)
    if Br * br != m or Bc * bc != n:
        X = torch.nn.functional.pad(X, (0, Bc * bc - n, 0, Br * br - m))
    return X.reshape(B, Br, br, Bc, bc).permute(0, 1, 3, 2, 4).reshape(B * Br * Bc, br, bc)


def from_blocks(Y: Tensor, B: int, m: int, n: int, block: int) -> Tensor:
    """Inverse of :func:`to_blocks`: ``(B, m, n)``, padding cut away."""
    Br, Bc, br, bc = block_layout(m, n, block)
    X = Y.reshape(B, Br, Bc, br, bc).permute(0, 1, 3, 2, 4).reshape(B, Br * br, Bc * bc)
    return X[:, :m, :n]


def scaled_grams(G: Tensor, state_dtype: torch.dtype, left: bool = True, right: bool = True
                 ) -> tuple[Tensor | None, Tensor | None]:
    """``(G Gᵀ, Gᵀ G)`` of a batch, finite in ``state_dtype``: formed from ``G·f`` (``f = 2^-k``, no inf − inf
    inside the product), divided by ``f²`` and saturated at ±max/2 of ``state_dtype`` (a square that does
    not fit stays the largest finite value instead of inf, so its inverse root is tiny, never NaN)."""
    f = pow2_scale(G)
    Gs = G * f
    # times 1/f twice: f² may under- or overflow where f does not (0/0 would be NaN); 1/f of a normal power of
    # two is exact, and a product is several times cheaper than a broadcast division on CPU
    inv = 1 / f
    L = saturate((Gs @ Gs.mT) * inv * inv, state_dtype) if left else None
    R = saturate((Gs.mT @ Gs) * inv * inv, state_dtype) if right else None
    return L, R
