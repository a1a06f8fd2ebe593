"""Orthogonalization of matrix updates (Muon's core), Freon's Schatten map, and the shape scale that follows."""

from __future__ import annotations

import math

import torch

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.gram import check_restarts
from ..linalg.orthogonalize import METHODS, PRECONDITIONERS, ns_coefficients, orthogonalize
from ..linalg.qdwh import schatten_direction

__all__ = ["Orthogonalize", "SchattenMap", "ScaleByShape", "matrix_view", "stack_matrices", "set_matrices",
           "ORTHO_3D", "ORTHO_BLOCKS", "split_rows"]

#: How a 3-D parameter becomes matrices. Shared (the same spec object) by every transform that
#: needs to agree on it: the orthogonalization and the shape scale must see the same matrices.
ORTHO_3D = HParam("choice", "flatten",
                  "3-D params: 'flatten' to one (out, rest) matrix, or 'slices': each p[i] its own matrix "
                  "(per-head / per-expert stacks)", choices=("flatten", "slices"))


#: Row blocks: each matrix's rows split into this many equal blocks, each orthogonalized (and shape-scaled)
#: on its own. Role routing sets 3 for fused q/k/v weights (``nn.MultiheadAttention.in_proj_weight``) in a
#: param group of their own; 1 (the default) keeps every matrix whole.
ORTHO_BLOCKS = HParam("int", 1, "equal row blocks per matrix, each orthogonalized separately (fused q/k/v: 3; "
                                "set by role routing, 1 = whole matrix)", low=1, high=64)


def split_rows(X: torch.Tensor, k: int, where: str) -> torch.Tensor:
    """``(..., k·r, c)`` as ``(..., k, r, c)`` (a view): the row blocks of each matrix as a batch of their own."""
    if k == 1:
        return X
    if X.shape[-2] % k:
        raise ValueError(f"{where}: ortho_blocks={k} does not divide the {X.shape[-2]} rows of a matrix "
                         f"of shape {tuple(X.shape[-2:])}")
    return X.unflatten(-2, (k, X.shape[-2] // k))


def matrix_view(t: torch.Tensor) -> torch.Tensor:
    """A parameter as a matrix: rows = output dimension, cols = everything else (conv kernels flattened)."""
    return t if t.ndim == 2 else t.reshape(t.shape[0], -1)


def stack_matrices(updates: list[torch.Tensor], mode: str = "flatten",
                   dtype: torch.dtype | None = None) -> torch.Tensor:
    """A same-shape bucket's updates as one new batch of matrices ``(B, rows, cols)``, or
    ``(B, E, rows, cols)`` for 3-D parameters with ``mode="slices"`` (each ``p[i]`` its own matrix);
    anything else is flattened to ``(out, rest)`` (conv kernels). Always a copy, so it may be written
    in place; cast to ``dtype`` when given. :func:`set_matrices` is the way back."""
    mats = updates if mode == "slices" and updates[0].ndim == 3 else [matrix_view(x) for x in updates]
    X = torch.stack(mats)
    return X if dtype is None else X.to(dtype)


def set_matrices(b: Bucket, X: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    """Make the batch ``X`` (from :func:`stack_matrices`) the bucket's update, one view per parameter,
    cast to ``dtype`` when given."""
    X = X if dtype is None else X.to(dtype)
    b.set_updates([x.reshape(p.shape) for x, p in zip(X.unbind(0), b.params)], owned=True)


def _matrix_shape(shape: torch.Size, mode: str) -> tuple[int, int]:
    if mode == "slices" and len(shape) == 3:
        return shape[1], shape[2]
    return shape[0], math.prod(shape[1:])


class Orthogonalize(Transform):
    """``u <- polar(u) ≈ U Vᵀ`` for ``u = U Σ Vᵀ``, batched over the bucket's same-shape matrices.

    ``ortho_backend``:

    * ``"newton_schulz"`` (default): quintic Newton–Schulz with a per-step coefficient schedule
      ("jordan": Keller Jordan's quintic, as in torch.optim.Muon; "polar_express": Amsel et al.,
      arXiv:2505.16932; "you", "dion": Jiacheng You's lists; "turbo": Turbo-Muon's) in ``ns_dtype``;
    * ``"gram"``: the same iteration on the small Gram matrix (Zhang, Amsel, Chen & Dao, Gram
      Newton–Schulz, 2026) with restarts before the steps in ``gram_restarts``; square matrices run
      the plain iteration;
    * ``"qdwh"``: QDWH polar decomposition (Nakatsukasa, Bai & Gygi 2010), float32/float64;
    * ``"svd"``: the exact SVD polar factor (the oracle).

    ``ns_precondition``: ``"frobenius"`` (``u / ||u||_F``, torch.optim.Muon's) or ``"aol"``
    (Turbo-Muon's AOL diagonal rescaling, Boissin et al., arXiv:2512.04632), for the two NS backends.
    ``ns_dtype`` applies to the NS backends; qdwh and svd return the input dtype. Conv kernels are
    flattened to (out, in·kh·kw); 3-D parameters too unless ``ortho_3d="slices"``.

    ``ortho_blocks`` (default 1): split each matrix's rows into that many equal blocks and orthogonalize
    each block on its own (a batch of ``(rows/k, cols)`` matrices; :class:`ScaleByShape` of the same chain
    scales by the block's shape). Role routing sets ``ortho_blocks=3`` on a group of its own for fused
    q/k/v weights (``nn.MultiheadAttention.in_proj_weight``, ``(3E, E)``): the q, k and v ``(E, E)`` blocks
    get the updates three separate projections would get, as in the batched ``(3, E, E)`` q/k/v weight of
    modded-nanogpt's Muon. ``create(..., ortho_blocks=1)`` (or ``per_role={"matrix": {"ortho_blocks": 1}}``)
    opts out: every matrix whole. Other matrix transforms of the chain (normalizations, gates) still see
    the whole matrix.
    """

    name = "orthogonalize"
    same_shape = True
    rule = "u ← NS_k(u / ‖u‖_F) ≈ U Vᵀ   (u = U Σ Vᵀ)"
    hparams = {
        "ns_steps": HParam("int", 5, "Newton–Schulz iterations", low=1, high=100),
        "ns_coefficients": HParam("any", "jordan",
                                  "schedule name ('jordan', 'polar_express', 'you', 'dion', 'turbo') "
                                  "or (a, b, c) tuple(s)"),
        "ns_dtype": HParam("dtype", torch.bfloat16, "dtype of the iteration (bfloat16 or float32)"),
        "eps": HParam("float", 1e-7, "floor of the Frobenius norm (or AOL row sums) used to normalise u",
                      low=0.0, low_open=True),
        "ortho_backend": HParam("choice", "newton_schulz", "how the polar factor is computed",
                                choices=METHODS),
        "ns_precondition": HParam("choice", "frobenius",
                                  "scaling before Newton–Schulz: 'frobenius' (u/‖u‖_F) or 'aol' (Turbo-Muon)",
                                  choices=PRECONDITIONERS),
        "gram_restarts": HParam("any", (2,), "Gram NS: step indices before which X and XXᵀ are re-formed"),
        "ortho_3d": ORTHO_3D,
        "ortho_blocks": ORTHO_BLOCKS,
    }

    def check(self, group: dict, owner: str) -> None:
        try:
            ns_coefficients(group["ns_coefficients"], group["ns_steps"])
            check_restarts(group["gram_restarts"], "gram_restarts")
        except ValueError as e:
            raise ValueError(f"{owner}: {e}") from None

    def update(self, b: Bucket) -> None:
        g = b.group
        stack = stack_matrices(b.updates, g["ortho_3d"])
        blocks = split_rows(stack, g.get("ortho_blocks", 1), self.name)  # subclasses may not declare it
        exact = g["ortho_backend"] in ("svd", "qdwh")  # exact methods are not rounded to ns_dtype
        out = orthogonalize(blocks, g["ortho_backend"], steps=g["ns_steps"], schedule=g["ns_coefficients"],
                            dtype=None if exact else g["ns_dtype"], eps=g["eps"],
                            precondition=g["ns_precondition"], restarts=g["gram_restarts"])
        set_matrices(b, out.reshape(stack.shape), b.params[0].dtype)


class SchattenMap(Transform):
    """``u <- U diag((σ/‖σ‖_q)^(q−1)) Vᵀ`` for ``u = U diag(σ) Vᵀ``: Freon's Schatten-exponent update.

    ``schatten_q`` = 1 is Muon's polar factor, 2 the normalised gradient ``u / ‖u‖_F``, q < 1 the
    quasi-norm regime (inverted spectrum). Engine ``spectral_backend``: "qdwh" (QDWH polar + eigh of
    its Hermitian factor) or "svd" (exact). Computed in float32 (float64 for float64 params);
    singular values below the rank tolerance map to 0. Batched over the bucket; conv kernels flattened.
    """

    name = "schatten"
    same_shape = True
    rule = "u ← U diag((σ/‖σ‖_q)^(q−1)) Vᵀ   (u = U diag(σ) Vᵀ)"
    hparams = {
        "schatten_q": HParam("float", 1.0, "Schatten exponent q: 2 = SGD direction, 1 = Muon, < 1 quasi-norm",
                             low=0.0, high=2.0, low_open=True),
        "spectral_backend": HParam("choice", "qdwh", "engine of the spectral map", choices=("qdwh", "svd")),
        "ortho_3d": ORTHO_3D,
    }

    def update(self, b: Bucket) -> None:
        g = b.group
        stack = stack_matrices(b.updates, g["ortho_3d"])
        set_matrices(b, schatten_direction(stack, g["schatten_q"], backend=g["spectral_backend"],
                                           dtype=b.params[0].dtype))


class ScaleByShape(Transform):
    """Scale each matrix update by a factor of its shape (rows × cols of the flattened matrix).

    ``original``: ``sqrt(max(1, rows/cols))`` (Keller Jordan's Muon); ``match_rms_adamw``:
    ``0.2·sqrt(max(rows, cols))`` so the update RMS matches AdamW's ("Muon is Scalable for LLM
    Training", Liu et al., arXiv:2502.16982); ``none``: 1. torch.optim.Muon uses the first two dims
    of a conv kernel; we use the flattened matrix the update was orthogonalised as (one slice's
    shape with ``ortho_3d="slices"``, one row block's with ``ortho_blocks`` > 1 — read from the group,
    where :class:`Orthogonalize` declares it).
    """

    name = "shape_scale"
    rule = "u ← s(rows, cols)·u"
    hparams = {"adjust_lr_fn": HParam("choice", "original", "shape factor of the step",
                                      choices=("original", "match_rms_adamw", "none")),
               "ortho_3d": ORTHO_3D}

    @staticmethod
    def factor(shape: torch.Size, mode: str, ortho_3d: str = "flatten", blocks: int = 1) -> float:
        rows, cols = _matrix_shape(shape, ortho_3d)
        rows //= blocks
        if mode == "original":
            return math.sqrt(max(1.0, rows / cols))
        if mode == "match_rms_adamw":
            return 0.2 * math.sqrt(max(rows, cols))
        return 1.0

    def update(self, b: Bucket) -> None:
        # ortho_blocks is not declared here: a chain without Orthogonalize must not accept it (nothing
        # would split its matrices), so a group that lacks it has whole matrices
        f = self.factor(b.params[0].shape, b.group["adjust_lr_fn"], b.group["ortho_3d"],
                        b.group.get("ortho_blocks", 1))
        b.scale_by([f] * len(b.params))
