"""The regularized (smoothed) polar map ``M ↦ M (MᵀM + εI)^{-1/2}`` and its potential.

``M (MᵀM + εI)^{-1/2} = U diag(σ/√(σ² + ε)) Vᵀ`` for ``M = U diag(σ) Vᵀ``: Muon's polar factor ``U Vᵀ``
as ε → 0, the scaled matrix ``M/√ε`` as ε → ∞. It is the gradient of the smoothed nuclear norm
``K(M) = tr((MᵀM + εI)^{1/2})``, the kinetic energy of the Hamiltonian reading of Muon (see
:mod:`optimlab.diagnostics.hamiltonian`). Computed with one ``eigh`` of the Gram matrix of the smaller side
(``MᵀM`` for tall, ``MMᵀ`` for wide matrices), batched over the bucket, in float32 (float64 for float64).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..linalg.scaling import pow2_scale, scaled_eps
from ..core.transform import Bucket, Transform
from .orthogonalize import ORTHO_3D, set_matrices, stack_matrices

__all__ = ["RegularizedPolar", "regularized_polar", "smoothed_nuclear_norm"]


def _gram(M: Tensor) -> tuple[Tensor, bool]:
    tall = M.shape[-2] >= M.shape[-1]
    return (M.mT @ M if tall else M @ M.mT), tall


def _work_dtype(M: Tensor) -> torch.dtype:
    return torch.float64 if M.dtype == torch.float64 else torch.float32


def regularized_polar(M: Tensor, eps: float) -> Tensor:
    """``M (MᵀM + εI)^{-1/2}`` for a batch of matrices ``(..., m, n)``, ``ε > 0``; result in ``M``'s dtype."""
    X = M.to(_work_dtype(M))
    # the map is invariant under M -> fM, ε -> f²ε: scale by an exact power of two first, so that the
    # Gram matrix of a huge (1e30) or tiny update neither overflows nor underflows (linalg.scaling)
    f = pow2_scale(X, eps=eps, power=2)
    X = X * f
    e = scaled_eps(eps, f, X.dtype, power=2, floor=True).squeeze(-1)
    S, tall = _gram(X)
    lam, V = torch.linalg.eigh(S)
    # rounding can leave tiny negative eigenvalues of a PSD Gram matrix: they are zero
    R = (V * (lam.clamp_min(0) + e).rsqrt().unsqueeze(-2)) @ V.mT
    return (X @ R if tall else R @ X).to(M.dtype)


def smoothed_nuclear_norm(M: Tensor, eps: float) -> Tensor:
    """``tr((G + εI)^{1/2})`` with ``G`` the Gram matrix of the smaller side of each matrix of ``M``
    (``Σ_i √(σ_i² + ε)`` over the min(m, n) singular values); differentiable, its gradient is
    :func:`regularized_polar`. ``tr((MᵀM + εI)^{1/2})`` on the larger side adds the constant
    ``|m − n|·√ε``."""
    X = M.to(_work_dtype(M))
    S, _ = _gram(X)
    return (torch.linalg.eigvalsh(S).clamp_min(0) + eps).sqrt().sum(-1)


class RegularizedPolar(Transform):
    """``u ← u (uᵀu + εI)^{-1/2}`` per matrix, batched over the bucket (conv kernels flattened to (out, rest);
    3-D parameters too, unless ``ortho_3d="slices"``, as :class:`~optimlab.transforms.Orthogonalize`)."""

    name = "regularized_polar"
    same_shape = True
    rule = "u ← u·(uᵀu + εI)^{-1/2} = U diag(σ/√(σ² + ε)) Vᵀ"
    hparams = {"polar_eps": HParam("float", 1e-6, "ε of the smoothing (squared update units; singular values "
                                                  "σ ≪ √ε are damped to σ/√ε)", low=0.0, low_open=True),
               "ortho_3d": ORTHO_3D}

    def update(self, b: Bucket) -> None:
        X = stack_matrices(b.updates, b.group["ortho_3d"])
        set_matrices(b, regularized_polar(X, b.group["polar_eps"]), b.params[0].dtype)
