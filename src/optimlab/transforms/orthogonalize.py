"""Orthogonalization of matrix updates (Muon's core) and the shape-dependent scale that follows it."""

from __future__ import annotations

import math

import torch

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.orthogonalize import ns_coefficients, orthogonalize

__all__ = ["Orthogonalize", "ScaleByShape", "matrix_view"]


def matrix_view(t: torch.Tensor) -> torch.Tensor:
    """A parameter as a matrix: rows = output dimension, cols = everything else (conv kernels flattened)."""
    return t if t.ndim == 2 else t.reshape(t.shape[0], -1)


class Orthogonalize(Transform):
    """``u <- polar(u) ≈ U Vᵀ`` for ``u = U Σ Vᵀ``, batched over the bucket's same-shape matrices.

    Newton–Schulz with a per-step coefficient schedule ("jordan": Keller Jordan's quintic, as in
    torch.optim.Muon; "polar_express": Amsel et al., arXiv:2505.16932) in ``ns_dtype``, or the exact
    SVD polar factor (``ortho_backend="svd"``). Conv kernels are flattened to (out, in·kh·kw).
    """

    name = "orthogonalize"
    same_shape = True
    rule = "u ← NS_k(u / ‖u‖_F) ≈ U Vᵀ   (u = U Σ Vᵀ)"
    hparams = {
        "ns_steps": HParam("int", 5, "Newton–Schulz iterations", low=1, high=100),
        "ns_coefficients": HParam("any", "jordan",
                                  "schedule name ('jordan', 'polar_express') or (a, b, c) tuple(s)"),
        "ns_dtype": HParam("dtype", torch.bfloat16, "dtype of the iteration (bfloat16 or float32)"),
        "eps": HParam("float", 1e-7, "floor of the Frobenius norm used to normalise u", low=0.0, low_open=True),
        "ortho_backend": HParam("choice", "newton_schulz", "how the polar factor is computed",
                                choices=("newton_schulz", "svd")),
    }

    def check(self, group: dict, owner: str) -> None:
        try:
            ns_coefficients(group["ns_coefficients"], group["ns_steps"])
        except ValueError as e:
            raise ValueError(f"{owner}: {e}") from None

    def update(self, b: Bucket) -> None:
        g = b.group
        u = b.updates
        mats = [matrix_view(x) for x in u]
        stack = mats[0].unsqueeze(0) if len(mats) == 1 else torch.stack(mats)
        svd = g["ortho_backend"] == "svd"  # the exact oracle is not rounded to ns_dtype
        out = orthogonalize(stack, g["ortho_backend"], steps=g["ns_steps"], schedule=g["ns_coefficients"],
                            dtype=None if svd else g["ns_dtype"], eps=g["eps"])
        out = out.to(b.params[0].dtype)
        b.set_updates([o.view_as(p) for o, p in zip(out.unbind(0), b.params)], owned=True)


class ScaleByShape(Transform):
    """Scale each matrix update by a factor of its shape (rows × cols of the flattened matrix).

    ``original``: ``sqrt(max(1, rows/cols))`` (Keller Jordan's Muon); ``match_rms_adamw``:
    ``0.2·sqrt(max(rows, cols))`` so the update RMS matches AdamW's ("Muon is Scalable for LLM
    Training", Liu et al., arXiv:2502.16982); ``none``: 1. torch.optim.Muon uses the first two dims
    of a conv kernel; we use the flattened matrix the update was orthogonalised as.
    """

    name = "shape_scale"
    rule = "u ← s(rows, cols)·u"
    hparams = {"adjust_lr_fn": HParam("choice", "original", "shape factor of the step",
                                      choices=("original", "match_rms_adamw", "none"))}

    @staticmethod
    def factor(shape: torch.Size, mode: str) -> float:
        rows = shape[0]
        cols = math.prod(shape[1:])
        if mode == "original":
            return math.sqrt(max(1.0, rows / cols))
        if mode == "match_rms_adamw":
            return 0.2 * math.sqrt(max(rows, cols))
        return 1.0

    def update(self, b: Bucket) -> None:
        f = self.factor(b.params[0].shape, b.group["adjust_lr_fn"])
        b.scale_by([f] * len(b.params))
