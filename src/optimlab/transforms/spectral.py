"""Spectral maps of matrix updates other than the polar factor: Kaon's random spectrum, AuON's cosh-RMS
scaling, and ROOT's outlier clipping with shape-specific Newton–Schulz coefficients.

Every transform here works on a bucket of same-shape matrices stacked into one batched tensor (conv
kernels flattened to ``(out, in·kh·kw)``), in float32 (float64 for float64 parameters) unless a
``ns_dtype`` says otherwise, and hands back updates in the parameters' dtype.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.lowrank import work_dtype
from ..linalg.orthogonalize import newton_schulz
from ..linalg.scaling import pow2_scale, saturate, scaled_eps
from ..linalg.schedules import JORDAN
from .orthogonalize import Orthogonalize, set_matrices, stack_matrices
from .subset import step_generator

__all__ = ["RandomSpectrum", "kaon_noise", "KAON_CHAOTIC", "CoshRMSNormalize", "OutlierClip",
           "ShapeOrthogonalize", "ROOT_COEFFICIENTS", "root_coefficients", "linear_quantile"]


def _stack(b: Bucket) -> tuple[Tensor, torch.dtype]:
    """The bucket's updates as one ``(k, rows, cols)`` tensor in the working dtype."""
    wd = work_dtype(b.params[0].dtype)
    return stack_matrices(b.updates, dtype=wd), wd


def _unstack(b: Bucket, out: Tensor) -> None:
    set_matrices(b, out, b.params[0].dtype)


class _FlattenedMap(Transform):
    """A matrix map that always flattens a parameter to ``(out, rest)``: it refuses ``ortho_3d="slices"``
    (declared by the shape scale of the same chain), which would scale slices it never saw."""

    def check(self, group: dict, owner: str) -> None:
        if group.get("ortho_3d", "flatten") != "flatten":
            raise ValueError(f"{owner}: ortho_3d={group['ortho_3d']!r} is not supported by {self.name!r}, "
                             f"which flattens every parameter to one (out, rest) matrix; use 'flatten'")


# ----------------------------------------------------------------------------- Kaon

#: Kaon's chaotic map ``X ← 4.1 (I − X Xᵀ)² X`` written as a Newton–Schulz quintic ``(a, b, c)``, and
#: the bound ``max_{[0, 1.175]} 4.1 σ (1 − σ²)² ≈ 1.175`` its output is divided by.
KAON_CHAOTIC = ((4.1, -8.2, 4.1), 1.175)


def kaon_noise(seed: int, step: int, index: int, k: int, low: float, high: float) -> Tensor:
    """The ``k`` singular values Kaon draws for matrix ``index`` of its group at ``step``: i.i.d.
    ``Uniform[low, high]`` in float64, a pure function of its arguments."""
    g = step_generator(seed, step, index)
    return low + (high - low) * torch.rand(k, generator=g, dtype=torch.float64)


class RandomSpectrum(_FlattenedMap):
    """Kaon: keep the singular vectors of ``u``, replace its singular values by noise.

    ``kaon_noise="uniform"``: ``u = U Σ Vᵀ  →  U diag(ξ) Vᵀ`` with ``ξ_i ~ Uniform[kaon_low, kaon_high]``
    drawn by :func:`kaon_noise` from ``(kaon_seed, step, position of the matrix in its param group)``,
    unsorted (direction i gets ``ξ_i`` whatever its σ_i); directions with ``σ_i`` below the rank
    tolerance of :func:`optimlab.linalg.polar_svd` get 0, so a zero update stays zero. Exact SVD.
    ``kaon_noise="chaotic"``: the matmul-only form: ``X₀ = u/‖u‖_F``, ``kaon_steps`` iterations of
    ``X ← 4.1 (I − X Xᵀ)² X``, then ``X / 1.175`` — each singular value follows a chaotic scalar map,
    so the output spectrum is pseudo-random in ``[0, 1]`` while the singular vectors are ``u``'s.
    """

    name = "kaon"
    same_shape = True
    rule = "u = U Σ Vᵀ  →  U diag(ξ) Vᵀ,  ξ random"
    hparams = {
        "kaon_noise": HParam("choice", "uniform", "how the new singular values are made",
                             choices=("uniform", "chaotic")),
        "kaon_low": HParam("float", 0.0, "lower end of the uniform singular values (spectral units)", low=0.0),
        "kaon_high": HParam("float", 1.0, "upper end of the uniform singular values (spectral units)",
                            low=0.0, low_open=True),
        "kaon_seed": HParam("int", 0, "seed of the singular-value draws (combined with step and position)",
                            low=0),
        "kaon_steps": HParam("int", 5, "iterations of the chaotic map ('chaotic' only)", low=1, high=100),
    }

    def check(self, group: dict, owner: str) -> None:
        super().check(group, owner)
        if group["kaon_low"] > group["kaon_high"]:
            raise ValueError(f"{owner}: kaon_low must be <= kaon_high, got {group['kaon_low']!r} > "
                             f"{group['kaon_high']!r}")

    def update(self, b: Bucket) -> None:
        g = b.group
        X, wd = _stack(b)
        if g["kaon_noise"] == "chaotic":
            coeffs, bound = KAON_CHAOTIC
            out = newton_schulz(X, g["kaon_steps"], [coeffs], dtype=wd, eps=1e-7) / bound
        else:
            # singular vectors and the relative rank tolerance do not depend on the scale: an exact
            # power-of-two rescaling keeps the SVD away from over/underflow at no change for ordinary inputs
            U, S, Vh = torch.linalg.svd(X * pow2_scale(X), full_matrices=False)
            order = {id(p): i for i, p in enumerate(g["params"])}
            k = S.shape[-1]
            xi = torch.stack([kaon_noise(g["kaon_seed"], s, order[id(p)], k, g["kaon_low"], g["kaon_high"])
                              for p, s in zip(b.params, b.steps)]).to(device=X.device, dtype=wd)
            tol = S.amax(dim=-1, keepdim=True) * (max(X.shape[-2:]) * torch.finfo(wd).eps)
            xi = torch.where(S > tol, xi, torch.zeros_like(xi))
            out = (U * xi.unsqueeze(-2)) @ Vh
        _unstack(b, out)


# ----------------------------------------------------------------------------- AuON


class CoshRMSNormalize(_FlattenedMap):
    """AuON's map: ``G = u/(‖u‖_F + 1e-7)``, then ``u ← G / (sqrt(mean(cosh(G)²)) + 1e-8)``.

    Linear time (elementwise plus two reductions). ``‖G‖_F = 1`` bounds the spectral norm by 1, and the
    cosh-RMS denominator (≥ 1) shrinks matrices with heavy-tailed entries more (the paper's "spectral
    trust region"). The constants 1e-7 and 1e-8 are the published ones, not hyperparameters.
    """

    name = "auon"
    same_shape = True
    rule = "G = u/(‖u‖_F + 1e-7);  u ← G / (sqrt(mean(cosh(G)²)) + 1e-8)"

    def update(self, b: Bucket) -> None:
        X, _ = _stack(b)
        # X·f / (‖X·f‖ + 1e-7·f) = X / (‖X‖ + 1e-7) exactly, and ‖X·f‖ neither overflows nor underflows
        f = pow2_scale(X, eps=1e-7)
        X = X * f
        G = X / (torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True) + scaled_eps(1e-7, f, X.dtype, floor=True))
        rms = torch.cosh(G).square().mean(dim=(-2, -1), keepdim=True).sqrt()
        _unstack(b, G / (rms + 1e-8))


# ----------------------------------------------------------------------------- ROOT


def linear_quantile(x: Tensor, q: float) -> Tensor:
    """The ``q``-quantile of each row of ``x`` (``(..., N)``) with linear interpolation between order
    statistics (numpy's default; what ROOT's reference code computes), via two ``kthvalue`` calls so
    it has no size limit (``torch.quantile`` refuses more than 2²⁴ elements)."""
    n = x.shape[-1]
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    a = torch.kthvalue(x, lo + 1, dim=-1).values
    if hi == lo or pos == lo:
        return a
    return torch.lerp(a, torch.kthvalue(x, hi + 1, dim=-1).values, pos - lo)


class OutlierClip(_FlattenedMap):
    """ROOT's proximal outlier suppression: ``O = T_ε(u)`` (soft threshold), ``u ← u − O``.

    ``T_ε(x) = sign(x)·max(|x| − ε, 0)``, so ``u − T_ε(u) = clamp(u, −ε, ε)``: the entries beyond ε are
    the outliers removed. ``ε`` is the ``outlier_quantile``-quantile of ``|u|`` of each matrix plus 1e-9,
    as in ROOT's reference code (github.com/huawei-noah/noah-research, ROOT/examples/example_train.py).
    """

    name = "outlier_clip"
    same_shape = True
    rule = "ε = quantile_q(|u|) + 1e-9;  u ← u − T_ε(u) = clamp(u, −ε, ε)"
    hparams = {"outlier_quantile": HParam("float", 0.9, "quantile of |u| used as the threshold ε (unitless)",
                                          low=0.0, high=1.0, low_open=True)}

    def update(self, b: Bucket) -> None:
        # A heavy-ball momentum near the top of the range may have overflowed to ±inf (torch.optim.SGD's
        # arithmetic): clip it at ±max/2 so that the quantile, and the Newton–Schulz step after, stay finite.
        X = saturate(_stack(b)[0], b.params[0].dtype)
        eps = linear_quantile(X.abs().flatten(1), b.group["outlier_quantile"]) + 1e-9
        eps = eps.view(-1, 1, 1)
        _unstack(b, torch.minimum(torch.maximum(X, -eps), eps))


#: ROOT's shape-specific quintic coefficients, keyed by (min(m, n), max(m, n)); published for the four
#: shapes of the reference code's 1B-scale model. Other shapes use Keller Jordan's quintic, as that
#: code does.
ROOT_COEFFICIENTS: dict[tuple[int, int], tuple[float, float, float]] = {
    (2048, 2048): (3.4916, -4.8224, 2.1095),
    (2048, 3072): (3.4509, -4.5790, 1.9325),
    (2048, 8192): (2.9794, -3.6674, 1.6207),
    (2048, 16384): (3.1943, -3.8221, 1.5322),
}


def root_coefficients(rows: int, cols: int) -> tuple[float, float, float]:
    """ROOT's ``(a, b, c)`` for a ``rows × cols`` matrix (Jordan's quintic for unlisted shapes)."""
    return ROOT_COEFFICIENTS.get((min(rows, cols), max(rows, cols)), JORDAN)


class ShapeOrthogonalize(_FlattenedMap):
    """ROOT's AdaNewton: ``ns_steps`` quintic Newton–Schulz steps with coefficients chosen by the matrix
    shape (:data:`ROOT_COEFFICIENTS`), the same ``(a, b, c)`` at every step, in ``ns_dtype``."""

    name = "root_orthogonalize"
    same_shape = True
    rule = "u ← NS_k^{(a,b,c)(m,n)}(u / ‖u‖_F)"
    hparams = {
        "ns_steps": Orthogonalize.hparams["ns_steps"],
        "ns_dtype": HParam("dtype", torch.float32, "dtype of the iteration (ROOT's code: the gradient's)"),
        "eps": Orthogonalize.hparams["eps"],
    }

    def update(self, b: Bucket) -> None:
        g = b.group
        X, _ = _stack(b)
        coeffs = root_coefficients(X.shape[-2], X.shape[-1])
        _unstack(b, newton_schulz(X, g["ns_steps"], [coeffs], dtype=g["ns_dtype"], eps=g["eps"]))
