"""Symmetry-compatible updates (Lau & Su, "Symmetry-Compatible Principle for Optimizer Design: Embeddings,
LM Heads, SwiGLU MLPs, and MoE Routers", arXiv:2605.18106): each update is equivariant under the symmetry
group of the weight block it is used on.

* :class:`RowNormalize` — ``u_i ← u_i / (‖u_i‖ + ε)`` per unit (a row, or with ``axis="col"`` a column):
  equivariant under permutations of the units and orthogonal maps of the other side. Embeddings and LM
  heads (units = tokens), SwiGLU gate/up (units = intermediate neurons = rows) and down (= columns).
* :class:`CenterRows` — ``u ← u − 1·mean_rows(u)``: the projection that removes the shared-shift direction
  of a softmax router (adding one vector to every row leaves the routing unchanged). Followed by
  ``RowNormalize`` it is the *centered row-norm* router update, by ``OneSidedPolar("left")`` the
  *left-spectral* one.
* :class:`OneSidedPolar` — ``u ← ν^α · M (MᵀM + εI)^{-1/2}`` (``side="right"``; the *one-sided spectral*
  update of embeddings and heads) or ``ν^α · (MMᵀ + εI)^{-1/2} M`` (``"left"``), ``ν = ⟨M, polar(M)⟩`` (the
  nuclear norm; α = 1 is the polar-gradient scaling). ``RowNormalize`` then ``OneSidedPolar`` is the
  *hybrid* row-norm/spectral update, in the authors' default order (row-normalize first).

Matrices are the last two dims of a parameter, in the ``nn.Linear`` ``(out, in)`` layout; a 3-D tensor is a
stack of expert matrices. Definitions (ℓ2 row norms with ``+ε``, centering by the mean row, the order of
the hybrid, ν) follow the authors' public code (timlautk/equivariant_optimizers).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.scaling import pow2_scale, scaled_eps
from .orthogonalize import set_matrices, stack_matrices

__all__ = ["RowNormalize", "CenterRows", "OneSidedPolar", "one_sided_polar"]

EPS = HParam("float", 1e-8, "added to row norms and to the Gram matrix's eigenvalues (update units)", low=0.0)
ALPHA = HParam("float", 1.0, "power α of the nuclear-norm scale ν^α of the polar factor (0: the bare polar "
                             "factor; 1: the polar-gradient scaling)", low=0.0)
AXES = ("row", "col")


def _stack(b: Bucket, owner: str) -> Tensor:
    if b.params[0].ndim < 2:
        raise ValueError(f"{owner}: needs matrices (ndim >= 2), got a parameter of shape {tuple(b.params[0].shape)}; "
                         f"give 1-D parameters the 'vector' role")
    # 3-D stacks (experts) keep one matrix per slice; conv kernels become (out, in·kh·kw)
    return stack_matrices(b.updates, "slices")


class RowNormalize(Transform):
    """``u_i ← u_i / (‖u_i‖₂ + ε)`` for every unit ``i``: rows (``axis="row"``) or columns (``"col"``).

    Every unit of the update then has unit ℓ2 norm (the step moves each token / neuron by ``lr``).
    """

    name = "row_norm"
    same_shape = True
    hparams = {"eps": EPS}

    def __init__(self, axis: str = "row"):
        if axis not in AXES:
            raise ValueError(f"RowNormalize: axis must be one of {AXES}, got {axis!r}")
        self.axis = axis
        self.rule = "u_i ← u_i / (‖u_i‖ + ε) per " + ("row" if axis == "row" else "column")

    def update(self, b: Bucket) -> None:
        X = _stack(b, "row_norm")
        dim = -1 if self.axis == "row" else -2
        # per unit, X·f / (‖X·f‖ + eps·f) = X / (‖X‖ + eps) exactly, with no overflow in the squares
        f = pow2_scale(X, dim, eps=b.group["eps"])
        X = X * f
        norms = torch.linalg.vector_norm(X, dim=dim, keepdim=True)
        set_matrices(b, X / (norms + scaled_eps(b.group["eps"], f, X.dtype, floor=True)))


class CenterRows(Transform):
    """``u ← u − 1·(1ᵀu)/E``: subtract the mean row (E rows = experts), so that the update has no
    component along the router's shared-shift symmetry and a shift ``G + 1bᵀ`` of the input is ignored."""

    name = "center"
    same_shape = True
    rule = "u ← u − mean_rows(u)"

    def update(self, b: Bucket) -> None:
        X = _stack(b, "center")
        f = pow2_scale(X)  # the mean of X·f cannot overflow; dividing by f again is exact
        X = X * f
        set_matrices(b, (X - X.mean(dim=-2, keepdim=True)) / f)


def one_sided_polar(M: Tensor, side: str, eps: float, alpha: float) -> Tensor:
    """``ν^α · M (MᵀM + εI)^{-1/2}`` (right) or ``ν^α · (MMᵀ + εI)^{-1/2} M`` (left), batched over leading
    dims, with ``ν = ⟨M, polar⟩ = tr(C (C + εI)^{-1/2})`` (C the Gram matrix) floored at ε.

    The inverse square root is exact (``eigh``) in float64 for float64 input, else float32: the Gram
    matrix is the small side's (``n × n`` for right, ``m × m`` for left), as for a tall embedding.
    Numerics: computed on ``M·2^-k`` (max entry ~1, ε scaled to match: the same result, without overflow
    of the Gram matrix); eigenvalues within rounding of zero (``k·eps·λ_max``) are null directions and map
    to 0; ``ν^α`` saturates at half the largest value of ``M.dtype`` when the exact value does not fit."""
    work = torch.float64 if M.dtype == torch.float64 else torch.float32
    A = M.to(work)
    # The Gram matrix of A·f (f = 2^-k, max|A·f| ~ 1) cannot overflow; with eps·f² for eps the polar part
    # is unchanged bit for bit, and ν = ν_f / f.
    f = pow2_scale(A, eps=eps, power=2)
    A = A * f
    C = A.mT @ A if side == "right" else A @ A.mT
    lam, V = torch.linalg.eigh(C)
    eps_f = scaled_eps(eps, f, work, power=2, floor=True)[..., 0]  # (..., 1), against lam (..., k)
    # Eigenvalues within rounding of zero (k·eps·λ_max, matrix_rank's tolerance) are null directions: their
    # component of A is rounding noise, which (λ + ε)^{-1/2} would amplify once ε is small next to λ_max
    # (a large gradient, or the rank-one centered router of two experts); they map to 0, as with an SVD.
    tol = lam.amax(dim=-1, keepdim=True) * (lam.shape[-1] * torch.finfo(work).eps)
    inv = torch.where(lam > tol, (lam.clamp_min(0) + eps_f).rsqrt(), torch.zeros_like(lam))
    inv_sqrt = (V * inv.unsqueeze(-2)) @ V.mT
    P = A @ inv_sqrt if side == "right" else inv_sqrt @ A
    if alpha != 0:
        nu = torch.maximum((A * P).sum(dim=(-2, -1), keepdim=True), scaled_eps(eps, f, work)) / f
        # ν^α grows with the gradient; beyond the parameter dtype's range it saturates at its largest
        # finite value (halved: |P_ij| <= 1 up to rounding, so the step stays finite) instead of inf·0 = NaN.
        P = P * nu.pow(alpha).clamp_max(0.5 * torch.finfo(M.dtype).max)
    return P.to(M.dtype)


class OneSidedPolar(Transform):
    """One-sided spectral update (see :func:`one_sided_polar`); ``side`` is ``"right"`` (equivariant under
    any left orthogonal map, hence left permutations, and right orthogonal maps: embeddings, heads) or
    ``"left"`` (the router's left-spectral update, after :class:`CenterRows`)."""

    name = "one_sided_polar"
    same_shape = True
    hparams = {"eps": EPS, "alpha": ALPHA}

    def __init__(self, side: str = "right"):
        if side not in ("right", "left"):
            raise ValueError(f"OneSidedPolar: side must be 'right' or 'left', got {side!r}")
        self.side = side
        self.rule = ("u ← ν^α·u(uᵀu + εI)^{-1/2}" if side == "right" else "u ← ν^α·(uuᵀ + εI)^{-1/2}u") \
            + ",  ν = ⟨u, polar(u)⟩"

    def update(self, b: Bucket) -> None:
        X = _stack(b, "one_sided_polar")
        set_matrices(b, one_sided_polar(X, self.side, b.group["eps"], b.group["alpha"]))
