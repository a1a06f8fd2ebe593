"""Orthogonalisation kernels for Muon-type optimizers.

* :func:`newton_schulz` - quintic Newton–Schulz iteration (the hot path), batched.
* :func:`polar_svd` - exact polar factor ``U V^T`` via SVD (the oracle).
* :func:`orthogonalize` - dispatch over the backends in :data:`METHODS`: this module's two, AOL
  preconditioning (``aol.py``, Turbo-Muon), Gram Newton–Schulz (``gram.py``) and QDWH (``qdwh.py``).
* :func:`orthogonality_error` - ``max_i |sigma_i(X) - 1|`` per matrix (diagnostics);
  :func:`polar_error` - ``||X - polar(G)||_2``.

Arithmetic of :func:`newton_schulz` (per matrix, wide orientation ``m <= n``; a tall input is
processed as its transpose, so the Gram matrix is the small ``m x m`` one)::

    X = cast(G, dtype) / max(||G||_F, eps)            # torch.optim.Muon's normalisation
    repeat for (a, b, c) in schedule:
        A = X X^T                                      # mm / bmm
        B = b A + c A A                                # one addmm / baddbmm (beta=b, alpha=c)
        X = a X + B X                                  # one addmm / baddbmm (beta=a)

The input is first multiplied by an exact power of two ``2^-k`` per matrix (max entry in [0.5, 1),
``eps`` scaled to match; see ``scaling.py``): the cast to ``dtype`` and ``||G||_F`` can then neither
overflow (1e20 in float32) nor underflow (1e-20), and ordinary results are unchanged bit for bit.

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

from collections.abc import Sequence

import torch
from torch import Tensor

from ._ns import (
    _check_dtype,
    _check_eps,
    _check_matrix,
    _emulate_lowp,
    _newton_schulz_impl,
)
from .aol import aol_newton_schulz
from .gram import gram_newton_schulz
from .qdwh import qdwh
from .scaling import pow2_scale
from .schedules import SCHEDULES, norm_safety, ns_coefficients

__all__ = [
    "SCHEDULES",
    "ns_coefficients",
    "newton_schulz",
    "polar_svd",
    "orthogonalize",
    "orthogonality_error",
    "polar_error",
    "METHODS",
    "PRECONDITIONERS",
]

METHODS: tuple[str, ...] = ("newton_schulz", "gram", "qdwh", "svd")
PRECONDITIONERS: tuple[str, ...] = ("frobenius", "aol")

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
    G64 = G.to(torch.float64)
    # the polar factor is scale-free: an exact power-of-two rescaling keeps the SVD in range (1e300 in
    # float64) without changing ordinary results
    U, S, Vh = torch.linalg.svd(G64 * pow2_scale(G64), full_matrices=False)
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
    precondition: str = "frobenius",
    restarts: Sequence[int] = (2,),
) -> Tensor:
    """Orthogonalise ``G`` (..., m, n) by ``method`` in :data:`METHODS`.

    * ``"newton_schulz"``: :func:`newton_schulz` (``precondition="frobenius"``) or
      :func:`~optimlab.linalg.aol.aol_newton_schulz` (``"aol"``, Turbo-Muon) with ``steps``,
      ``schedule``, ``dtype``, ``eps``;
    * ``"gram"``: :func:`~optimlab.linalg.gram.gram_newton_schulz` (same arguments plus ``restarts``);
    * ``"qdwh"``: :func:`~optimlab.linalg.qdwh.qdwh` (computed in float32/float64), cast to ``dtype``;
    * ``"svd"``: :func:`polar_svd`, cast to ``dtype``.

    ``dtype=None`` keeps ``G.dtype``.  Arguments a method does not use are ignored.  ndim > 2 means
    a batch of matrices over the last two dims.
    """
    where = "orthogonalize"
    G = _check_matrix(G, where)
    if precondition not in PRECONDITIONERS:
        raise ValueError(f"{where}: precondition must be one of {list(PRECONDITIONERS)}, got {precondition!r}")
    if method == "newton_schulz":
        if precondition == "aol":
            return aol_newton_schulz(G, steps, schedule, dtype=dtype, eps=eps)
        return newton_schulz(G, steps, schedule, dtype=dtype, eps=eps)
    if method == "gram":
        return gram_newton_schulz(G, steps, schedule, restarts=restarts, precondition=precondition,
                                  dtype=dtype, eps=eps)
    if method in ("svd", "qdwh"):
        wd = _check_dtype(dtype, G, where)
        return (polar_svd(G) if method == "svd" else qdwh(G)).to(wd)
    raise ValueError(f"{where}: unknown method {method!r}; choose from {list(METHODS)}")


def polar_error(X: Tensor, G: Tensor) -> Tensor:
    """``||X - polar(G)||_2`` per matrix: how far an approximation ``X`` is from ``G``'s exact polar factor.

    ``polar(G)`` by :func:`polar_svd` in float64 (null directions of a rank-deficient ``G`` map to 0);
    spectral norm via ``torch.linalg.matrix_norm(ord=2)``.  Returns float64 of shape ``G.shape[:-2]``.
    Unlike :func:`orthogonality_error` it also sees a wrong singular basis, not only wrong singular values.
    """
    X = _check_matrix(X, "polar_error")
    G = _check_matrix(G, "polar_error")
    if X.shape != G.shape:
        raise ValueError(f"polar_error: X and G must have the same shape, got {tuple(X.shape)} and {tuple(G.shape)}")
    if G.numel() == 0:
        return torch.zeros(G.shape[:-2], dtype=torch.float64, device=G.device)
    P = polar_svd(G.to(torch.float64))
    return torch.linalg.matrix_norm(X.to(torch.float64) - P, ord=2)


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
