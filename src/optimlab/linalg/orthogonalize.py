"""Orthogonalisation kernels for Muon-type optimizers.

* :func:`newton_schulz` - quintic Newton–Schulz iteration (the hot path), batched.
* :func:`polar_svd` - exact polar factor ``U V^T`` via SVD (the oracle).
* :func:`orthogonalize` - dispatch between the two.
* :func:`orthogonality_error` - ``max_i |sigma_i(X) - 1|`` per matrix (diagnostics).

Arithmetic of :func:`newton_schulz` (per matrix, wide orientation ``m <= n``; a tall input is
processed as its transpose, so the Gram matrix is the small ``m x m`` one)::

    X = cast(G, dtype) / max(||G||_F, eps)            # torch.optim.Muon's normalisation
    repeat for (a, b, c) in schedule:
        A = X X^T                                      # mm / bmm
        B = b A + c A A                                # one addmm / baddbmm (beta=b, alpha=c)
        X = a X + B X                                  # one addmm / baddbmm (beta=a)

Every op rounds its result to the working dtype, exactly like torch's
``_zeropower_via_newtonschulz`` (for 2-D bfloat16 input and the "jordan" schedule the native
path reproduces it bit for bit; the tests check this).  The "polar_express" schedule
normalises by ``1.01 * ||G||_F + eps`` instead, as the published code (Algorithm 1 of
arXiv:2505.16932) does; the paper's prose (Sec. 4.4) writes ``||G||_F + 1e-2``, we follow the code.

**CPU low-precision GEMMs.**  On a CPU without bf16/fp16 matrix hardware (no AVX512-BF16 /
AMX) PyTorch's bfloat16 GEMM runs at ~1 GFLOP/s, 50-100x slower than its float32 GEMM.  There
the kernel keeps the iterate in float32 *buffers holding bf16-representable values*, runs each
product as a float32 GEMM and rounds the result back to bf16 right away.  That is the arithmetic
of a bf16 GEMM with float32 accumulation (what torch's own CPU bf16 ``addmm`` computes, and what
GPU tensor cores do), differing from torch's bf16 kernels only in the summation order inside a
dot product.  Measured here: a single GEMM differs from torch's in ~1e-4 of its entries by one
ulp; after 5 Jordan steps the outputs differ by at most 5 bf16 ulps (of the largest entry),
relative Frobenius difference <= 7e-3, and both are equally far (1-2 %) from the same iteration
run in float64 (see tests/linalg/test_orthogonalize.py).  On CUDA and on CPUs with native bf16
the operations run natively in the working dtype, and then the result for a 2-D input and the
"jordan" schedule is bit-identical to torch's.

The iteration allocates its buffers once and then works in place with ``out=`` ops (no
per-step allocation), unless autograd is recording through ``G``, in which case an
out-of-place (differentiable) variant of the same ops is used.  No Python branch depends on
tensor values, so the function traces cleanly under ``torch.compile``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from .schedules import SCHEDULES, norm_safety, ns_coefficients

__all__ = [
    "SCHEDULES",
    "ns_coefficients",
    "newton_schulz",
    "polar_svd",
    "orthogonalize",
    "orthogonality_error",
    "METHODS",
]

METHODS: tuple[str, ...] = ("newton_schulz", "svd")
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
    """True when low-precision GEMMs should run as float32 GEMMs + rounding (see module doc)."""
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


def _normalise(X: Tensor, safety: float | None, eps: float, lowp: torch.dtype | None, inplace: bool) -> Tensor:
    # Same op sequence as torch.optim.Muon: norm in the working dtype, clamp, divide.
    nrm = torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True)
    if lowp is not None:  # emulated low precision: do the (tiny) scalar ops natively in lowp
        nrm = nrm.to(lowp)
    if safety is None:
        nrm = nrm.clamp(min=eps)
    else:  # Polar Express, Algorithm 1: X / (1.01 ||X||_F + 1e-7)
        nrm = nrm * safety + eps
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
    if X.dim() == 3:
        mm, addmm = torch.bmm, torch.baddbmm
    else:
        mm, addmm = torch.mm, torch.addmm
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
    if X.dim() == 3:
        mm, addmm = torch.bmm, torch.baddbmm
    else:
        mm, addmm = torch.mm, torch.addmm

    def rnd(t: Tensor) -> Tensor:
        return t.to(lowp).to(t.dtype) if lowp is not None else t

    for a, b, c in coeffs:
        A = rnd(mm(X, X.mT))
        B = rnd(addmm(A, A, A, beta=b, alpha=c))
        X = rnd(addmm(X, B, X, beta=a))
    return X


def _newton_schulz_impl(
    G: Tensor,
    coeffs: list[tuple[float, float, float]],
    safety: float | None,
    wd: torch.dtype,
    eps: float,
    emulate: bool,
) -> Tensor:
    m, n = G.shape[-2], G.shape[-1]
    if G.numel() == 0:
        return torch.zeros(G.shape, dtype=wd, device=G.device)
    lowp = wd if emulate else None
    cd = torch.float32 if emulate else wd  # dtype of the working buffers
    X = G if G.ndim == 2 else G.reshape(-1, m, n)
    track = torch.is_grad_enabled() and G.requires_grad
    # The one copy: a fresh buffer in the compute dtype.  ``copy=True`` guarantees we never
    # alias G - torch.optim.Muon's ``grad.bfloat16()`` returns G itself for bf16 input and
    # its in-place ``div_`` then corrupts the caller's momentum buffer.
    if emulate:
        X = X.to(wd)  # round to the working precision first (a no-op alias if G is already wd)
    X = X.to(cd, copy=True)
    tall = m > n
    if tall:
        X = X.mT  # a view of our own buffer: work on the wide orientation, Gram is (n, n)
    X = _normalise(X, safety, eps, lowp, inplace=not track)
    if track:
        X = _ns_iterate_functional(X, coeffs, lowp)
    else:
        X = _ns_iterate(X, coeffs, lowp)
    if emulate:
        X = X.to(wd)  # exact: the buffer holds wd-representable values
    if tall:
        X = X.mT
    return X.reshape(G.shape)


# ----------------------------------------------------------------------------- public API


def newton_schulz(
    G: Tensor,
    steps: int = 5,
    schedule: str | Sequence[tuple[float, float, float]] = "jordan",
    *,
    dtype: torch.dtype | None = torch.bfloat16,
    eps: float = 1e-7,
) -> Tensor:
    """Approximate the polar factor of ``G`` (..., m, n) with quintic Newton–Schulz.

    Returns a new tensor (never ``G`` nor a view of it; ``G`` is not modified) of ``G``'s
    shape in the working dtype ``dtype`` (``G.dtype`` if ``None``).  For tall matrices the
    result is the transpose view of a fresh wide buffer (like torch's), i.e. it may be
    non-contiguous.  Leading dimensions are a batch (processed with bmm / baddbmm).

    ``schedule`` is a name in :data:`SCHEDULES` or a sequence of ``(a, b, c)`` triples, see
    :func:`ns_coefficients`.  Normalisation: ``X / max(||X||_F, eps)`` (torch.optim.Muon)
    for "jordan", "you" and user lists; ``X / (1.01 ||X||_F + eps)`` for "polar_express"
    (the paper's Algorithm 1).  Zero matrices map to zero.

    On CPUs without bf16/fp16 GEMM hardware, bf16/fp16 products run as float32 GEMMs whose
    results are rounded to the working dtype after every op (same arithmetic up to summation
    order, ~50x faster); see the module docstring.
    """
    where = "newton_schulz"
    G = _check_matrix(G, where)
    wd = _check_dtype(dtype, G, where)
    eps = _check_eps(eps, where)
    coeffs = ns_coefficients(schedule, steps)
    return _newton_schulz_impl(G, coeffs, norm_safety(schedule), wd, eps, _emulate_lowp(wd, G.device))


def polar_svd(G: Tensor) -> Tensor:
    """Exact polar factor ``U diag(s > tol) V^T`` of every matrix in ``G`` (..., m, n).

    Computed in float64 with ``torch.linalg.svd`` (reduced), returned in ``G.dtype``.
    Singular values ``s <= tol = max(m, n) * eps(G.dtype) * s_max`` (the rank tolerance of
    ``torch.linalg.matrix_rank``) are treated as zero, so the directions of a rank-deficient
    matrix's null space map to zero and a zero matrix maps to zero.
    """
    where = "polar_svd"
    G = _check_matrix(G, where)
    if not G.dtype.is_floating_point:
        raise ValueError(f"{where}: G.dtype must be a real floating dtype, got {G.dtype!r}")
    m, n = G.shape[-2], G.shape[-1]
    if G.numel() == 0:
        return torch.zeros(G.shape, dtype=G.dtype, device=G.device)
    U, S, Vh = torch.linalg.svd(G.to(torch.float64), full_matrices=False)
    tol = S.amax(dim=-1, keepdim=True) * (max(m, n) * torch.finfo(G.dtype).eps)
    keep = (S > tol).to(torch.float64)
    return ((U * keep.unsqueeze(-2)) @ Vh).to(G.dtype)


def orthogonalize(
    G: Tensor,
    method: str = "newton_schulz",
    *,
    steps: int = 5,
    schedule: str | Sequence[tuple[float, float, float]] = "jordan",
    dtype: torch.dtype | None = torch.bfloat16,
    eps: float = 1e-7,
) -> Tensor:
    """Orthogonalise ``G`` (..., m, n) by ``method`` in :data:`METHODS`.

    ``"newton_schulz"``: :func:`newton_schulz` with ``steps``, ``schedule``, ``dtype``, ``eps``.
    ``"svd"``: :func:`polar_svd`, cast to ``dtype`` (``G.dtype`` if ``None``); the NS-only
    arguments are ignored.  ndim > 2 means a batch of matrices over the last two dims.
    """
    where = "orthogonalize"
    G = _check_matrix(G, where)
    if method == "newton_schulz":
        return newton_schulz(G, steps, schedule, dtype=dtype, eps=eps)
    if method == "svd":
        wd = _check_dtype(dtype, G, where)
        return polar_svd(G).to(wd)
    raise ValueError(f"{where}: unknown method {method!r}; choose from {list(METHODS)}")


def orthogonality_error(X: Tensor) -> Tensor:
    """``max_i |sigma_i(X) - 1|`` over the ``min(m, n)`` singular values of each matrix.

    This is the spectral-norm distance ``||X - polar(X)||_2`` from a full-rank ``X`` to its
    polar factor (for a semi-orthogonal ``X`` it is 0; a zero singular value counts 1).
    Computed with ``torch.linalg.svdvals`` in float64; returns float64 of shape ``X.shape[:-2]``.
    """
    X = _check_matrix(X, "orthogonality_error")
    if X.shape[-1] == 0 or X.shape[-2] == 0:
        return torch.zeros(X.shape[:-2], dtype=torch.float64, device=X.device)
    s = torch.linalg.svdvals(X.to(torch.float64))
    return (s - 1.0).abs().amax(dim=-1)
