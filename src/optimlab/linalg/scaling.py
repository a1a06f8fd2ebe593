"""Exact power-of-two rescaling, so that scale-invariant maps never square a huge or tiny number.

``‖X‖_F`` of a float32 matrix with entries of 1e20 overflows (1e40 > 3.4e38) and with entries of 1e-20
underflows to 0, although the normalised matrix ``X / ‖X‖_F`` is perfectly representable. Every
scale-invariant computation (orthogonalization, polar and spectral maps, row / Frobenius norms) therefore
first multiplies its input by ``f = 2^-k``, with ``2^k`` the power of two just above ``max|X|``, and does
its arithmetic on ``X·f`` (largest entry in ``[0.5, 1)``). Multiplying by a power of two is exact, and
every later operation (products, sums, square roots, quotients) commutes exactly with it, so for
ordinary inputs the results are bit for bit those of the unscaled formula; an additive constant ``eps``
of the formula becomes ``eps·f`` (or ``eps·f²`` where it is added to squares). No host synchronisation:
``k`` stays a tensor.

Tiny inputs are scaled up only as far as ``eps·f^power`` stays representable: beyond that the constant
dominates the sum anyway (``x² + eps`` with ``x² ≪ eps``), the unscaled formula is accurate, and the
identity above must stay exact.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["pow2_scale", "scaled_eps", "saturate", "saturate_"]


def _exponent_range(dtype: torch.dtype) -> tuple[int, int]:
    # f = 2^-k must be a normal, finite number of ``dtype``: -k in [log2(tiny), floor(log2(max))].
    fi = torch.finfo(dtype)
    return -math.floor(math.log2(fi.max)), -round(math.log2(fi.tiny))


def pow2_scale(X: Tensor, dim: int | tuple[int, ...] = (-2, -1), eps: float = 0.0, power: int = 1,
               eps_dtype: torch.dtype | None = None) -> Tensor:
    """``f = 2^-k`` (in ``X.dtype``, reduced dims kept) with ``max|X| ∈ [2^(k-1), 2^k)`` over ``dim``.

    ``X·f`` then has its largest entry in ``[0.5, 1)``, except where ``k`` is clamped so that ``f``
    stays a normal number of the dtype (then in ``[2^-23, 4)``), or so that ``eps·f^power`` (the
    rescaled additive constant of the formula) stays below a quarter of the largest value of
    ``eps_dtype`` (the dtype the constant is used in; ``X.dtype`` if None); a zero slice gets ``f = 1``.
    ``X`` is read without autograd (``f`` is a constant).
    """
    amax = X.detach().abs().amax(dim=dim, keepdim=True)
    if amax.dtype in (torch.float16, torch.bfloat16):
        amax = amax.float()  # frexp of half types is not implemented everywhere; the exponent is the same
    k = torch.frexp(amax).exponent
    lo, hi = _exponent_range(X.dtype)
    if eps > 0:  # f <= 2^c with eps·2^(c·power) <= max/4
        top = math.log2(torch.finfo(eps_dtype or X.dtype).max) - 2 - math.log2(eps)
        lo = max(lo, -math.floor(top / power))
    return torch.ldexp(torch.ones_like(amax, dtype=X.dtype), -k.clamp(min(lo, hi), hi))


def scaled_eps(eps: float, f: Tensor, dtype: torch.dtype, power: int = 1, floor: bool = False) -> Tensor:
    """``eps·f^power`` as a tensor of ``dtype`` (exact for ordinary ``f``), clamped to the finite range.

    ``floor=True`` also keeps it at least the smallest normal number, for a constant that guards a
    division or ``rsqrt`` of a sum of squares (a zero row must map to zero, never ``0·inf``).
    """
    fi = torch.finfo(dtype)
    out = f.to(torch.float64).pow(power) * float(eps)
    return out.clamp(fi.tiny if floor else 0.0, fi.max).to(dtype)


def saturate(X: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``X`` clamped to ``±max/2``, ``max`` the largest finite value of ``dtype`` (``X.dtype`` if None).

    For a quantity whose exact value is not representable (a momentum sum of gradients near the top
    of the range): it keeps the sign and stays finite, instead of becoming ``inf`` and then NaN. Half
    the range, so that a difference of two saturated values (``m + w·(g − m)`` in an EMA) is finite too.
    Ordinary values pass unchanged.
    """
    m = 0.5 * torch.finfo(dtype or X.dtype).max
    return X.clamp(-m, m)


def saturate_(tensors: list[Tensor]) -> list[Tensor]:
    """:func:`saturate` in place over a list of same-dtype tensors (two foreach passes); returns them."""
    if tensors:
        m = 0.5 * torch.finfo(tensors[0].dtype).max
        torch._foreach_clamp_min_(tensors, -m)
        torch._foreach_clamp_max_(tensors, m)
    return tensors
