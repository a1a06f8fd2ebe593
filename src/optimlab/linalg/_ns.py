"""Shared internals of the Newton–Schulz-type kernels (plain, AOL-preconditioned, Gram).

Argument validation, the low-precision emulation switch, the working-buffer set-up and the
in-place / out-of-place quintic iteration.  Public entry points live in ``orthogonalize.py``,
``aol.py`` and ``gram.py``; the arithmetic conventions are described in ``orthogonalize.py``.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from .scaling import pow2_scale, scaled_eps

_LOWP = (torch.bfloat16, torch.float16)


def _cpu_flag(name: str) -> bool:
    fn = getattr(torch.cpu, name, None)
    try:
        return bool(fn()) if fn is not None else False
    except Exception:  # pragma: no cover - capability probe must never break import
        return False


# Decided once at import (no per-call probing, and a plain constant for torch.compile).
_CPU_NATIVE_LOWP = {
    torch.bfloat16: _cpu_flag("_is_avx512_bf16_supported") or _cpu_flag("_is_amx_tile_supported"),
    torch.float16: _cpu_flag("_is_amx_fp16_supported"),
}


def _emulate_lowp(dtype: torch.dtype, device: torch.device) -> bool:
    """True when low-precision GEMMs should run as float32 GEMMs + rounding (see orthogonalize.py)."""
    return device.type == "cpu" and dtype in _LOWP and not _CPU_NATIVE_LOWP[dtype]


# ----------------------------------------------------------------------------- validation


def _check_matrix(G: object, where: str) -> Tensor:
    if not isinstance(G, Tensor):
        raise TypeError(f"{where}: G must be a torch.Tensor, got {type(G).__name__}")
    if G.ndim < 2:
        raise ValueError(
            f"{where}: G must have ndim >= 2 (a matrix or a stack of matrices), got shape "
            f"{tuple(G.shape)} (ndim={G.ndim})"
        )
    return G


def _check_dtype(dtype: object, G: Tensor, where: str) -> torch.dtype:
    wd = G.dtype if dtype is None else dtype
    if not isinstance(wd, torch.dtype) or not wd.is_floating_point:
        what = "G.dtype (dtype=None)" if dtype is None else "dtype"
        raise ValueError(f"{where}: {what} must be a real floating dtype, got {wd!r}")
    return wd


def _check_eps(eps: object, where: str) -> float:
    if not (isinstance(eps, numbers.Real) and not isinstance(eps, bool)) or not (
        math.isfinite(eps) and eps > 0
    ):
        raise ValueError(f"{where}: eps must be a finite float > 0, got {eps!r}")
    return float(eps)


# ----------------------------------------------------------------------------- kernels


def _round_(t: Tensor, lowp: Tensor) -> None:
    """Round float32 ``t`` in place to the precision of ``lowp``'s dtype (``lowp`` is scratch)."""
    lowp.copy_(t)
    t.copy_(lowp)


def _rnd(t: Tensor, lowp: torch.dtype | None) -> Tensor:
    """Out-of-place rounding of ``t`` to ``lowp`` (identity when not emulating)."""
    return t.to(lowp).to(t.dtype) if lowp is not None else t


def _mm_ops(X: Tensor):
    """(mm, addmm) for a 2-D or 3-D (batched) operand."""
    return (torch.bmm, torch.baddbmm) if X.dim() == 3 else (torch.mm, torch.addmm)


def _working_copy(G: Tensor, wd: torch.dtype, emulate: bool, eps: float = 0.0,
                  power: int = 1) -> tuple[Tensor, bool, torch.dtype | None, Tensor]:
    """Our own wide-oriented working buffer for ``G`` (..., m, n): (X, tall, lowp, f).

    The one copy: a fresh buffer in the compute dtype holding ``G·f``, ``f = 2^-k`` per matrix with
    ``max|G·f|`` in [0.5, 1) (:func:`~optimlab.linalg.scaling.pow2_scale`): exact, so ordinary results
    are unchanged bit for bit, while the cast to ``wd`` and the norms / Gram matrices computed next can
    neither overflow nor underflow (1e20 in float32 squared is inf; 1e5 does not fit float16).  The
    caller scales its additive constant by ``f`` (``eps·f``, or ``eps·f²`` next to squares: ``power``),
    which bounds how far a tiny ``G`` is scaled up (see ``scaling.py``).  Never an
    alias of G - torch.optim.Muon's ``grad.bfloat16()`` returns G itself for bf16 input and its in-place
    ``div_`` then corrupts the caller's momentum buffer.  A tall input is returned as the ``.mT``
    view of a wide buffer, so the Gram matrix is the small one.  Leading dims are flattened to one.
    """
    m, n = G.shape[-2], G.shape[-1]
    lowp = wd if emulate else None
    cd = torch.float32 if emulate else wd  # dtype of the working buffers
    X = G if G.ndim == 2 else G.reshape(-1, m, n)
    # eps·f^power must fit the dtype the floor is applied in (wd: lowp's range is the narrower one)
    f = pow2_scale(X, eps=eps, power=power, eps_dtype=wd)
    X = X * f  # a fresh tensor in G's dtype, before any cast that could overflow
    if emulate:
        X = X.to(wd)  # round to the working precision first
    X = X.to(cd)
    tall = m > n
    if tall:
        X = X.mT
    return X, tall, lowp, f


def _finish(X: Tensor, G: Tensor, wd: torch.dtype, tall: bool, emulate: bool) -> Tensor:
    """Back to ``G``'s orientation and shape, in the working dtype ``wd``."""
    if emulate:
        X = X.to(wd)  # exact: the buffer holds wd-representable values
    if tall:
        X = X.mT
    return X.reshape(G.shape)


def _normalise(X: Tensor, safety: float | None, eps: float, lowp: torch.dtype | None, inplace: bool,
               f: Tensor) -> Tensor:
    # Same op sequence as torch.optim.Muon: norm in the working dtype, clamp, divide. X holds G·f
    # (see _working_copy), so the floor eps becomes eps·f: X/max(‖X‖, eps·f) = G/max(‖G‖, eps) exactly.
    nrm = torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True)
    if lowp is not None:  # emulated low precision: do the (tiny) scalar ops natively in lowp
        nrm = nrm.to(lowp)
    eps_f = scaled_eps(eps, f, nrm.dtype, floor=True).view(nrm.shape)
    if safety is None:
        nrm = torch.maximum(nrm, eps_f)
    else:  # Polar Express, Algorithm 1: X / (1.01 ||X||_F + 1e-7)
        nrm = nrm * safety + eps_f
    if lowp is not None:
        nrm = nrm.to(X.dtype)
    if not inplace:
        X = X / nrm
        return X.to(lowp).to(X.dtype) if lowp is not None else X
    X.div_(nrm)
    if lowp is not None:
        _round_(X, torch.empty_like(X, dtype=lowp))  # empty_like keeps X's (maybe .mT) strides
    return X


def _ns_iterate(X: Tensor, coeffs: list[tuple[float, float, float]], lowp: torch.dtype | None) -> Tensor:
    """In-place iteration on our own wide working tensor ``X`` (2-D or 3-D, maybe a .mT view)."""
    mm, addmm = _mm_ops(X)
    gram_shape = (*X.shape[:-1], X.shape[-2])
    A = X.new_empty(gram_shape)
    B = X.new_empty(gram_shape)
    if lowp is not None:
        lo_g = torch.empty(gram_shape, dtype=lowp, device=X.device)
        lo_x = torch.empty(X.shape, dtype=lowp, device=X.device)
    free = None  # a contiguous X-shaped buffer not currently holding X
    for a, b, c in coeffs:
        mm(X, X.mT, out=A)
        if lowp is not None:
            _round_(A, lo_g)
        addmm(A, A, A, beta=b, alpha=c, out=B)
        if lowp is not None:
            _round_(B, lo_g)
        out = free if free is not None else X.new_empty(X.shape)
        addmm(X, B, X, beta=a, out=out)
        if lowp is not None:
            _round_(out, lo_x)
        free = X if X.is_contiguous() else None
        X = out
    return X


def _ns_iterate_functional(X: Tensor, coeffs, lowp: torch.dtype | None) -> Tensor:
    """Out-of-place twin of :func:`_ns_iterate` (used when autograd records through G)."""
    mm, addmm = _mm_ops(X)
    for a, b, c in coeffs:
        A = _rnd(mm(X, X.mT), lowp)
        B = _rnd(addmm(A, A, A, beta=b, alpha=c), lowp)
        X = _rnd(addmm(X, B, X, beta=a), lowp)
    return X


def _newton_schulz_impl(
    G: Tensor,
    coeffs: list[tuple[float, float, float]],
    safety: float | None,
    wd: torch.dtype,
    eps: float,
    emulate: bool,
) -> Tensor:
    if G.numel() == 0:
        return torch.zeros(G.shape, dtype=wd, device=G.device)
    track = torch.is_grad_enabled() and G.requires_grad
    X, tall, lowp, f = _working_copy(G, wd, emulate, eps)
    X = _normalise(X, safety, eps, lowp, inplace=not track, f=f)
    if track:
        X = _ns_iterate_functional(X, coeffs, lowp)
    else:
        X = _ns_iterate(X, coeffs, lowp)
    return _finish(X, G, wd, tall, emulate)


def _aol_scale(X: Tensor, A: Tensor, eps: float, lowp: torch.dtype | None, f: Tensor) -> tuple[Tensor, Tensor]:
    """AOL rescaling of wide ``X`` given its Gram matrix ``A = X Xᵀ`` (out of place).

    ``s_i = (Σ_j |A_ij|)^(-1/2)`` (floored at ``eps`` before the root so a zero row stays zero
    instead of dividing by zero); returns ``(diag(s) X, diag(s) A diag(s))`` - the second is the Gram
    matrix of the first, so the first Newton–Schulz step needs no new ``X Xᵀ`` product.
    Prach & Lampert (arXiv:2208.03160) prove ``||diag(s) X||_2 <= 1`` (Gershgorin on the scaled Gram).
    ``X`` holds ``G·f`` (see :func:`_working_copy`), so the floor on the row sums of ``A`` is ``eps·f²``,
    kept at least the smallest normal number (a zero row then gives ``0·finite``, never ``0·inf``).
    """
    rows = A.abs().sum(dim=-1)
    floor = scaled_eps(eps, f, rows.dtype, power=2, floor=True).view(*f.shape[:-2], 1)
    s = torch.rsqrt(torch.maximum(rows, floor))
    s = _rnd(s, lowp)
    X = _rnd(X * s.unsqueeze(-1), lowp)
    A = _rnd(A * s.unsqueeze(-1) * s.unsqueeze(-2), lowp)
    return X, A
