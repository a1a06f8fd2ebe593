"""Matrix preconditioners built from gradients or the parameter: M-FAC's sliding-window empirical Fisher (dense,
per-parameter blocks) and ScaledGD(λ)'s factor Gram."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.scaling import saturate, saturate_
from ..linalg.woodbury import fisher_inverse_product, window_factor

__all__ = ["MFac", "ScaledFactor"]


class MFac(Transform):
    """M-FAC (Frantar, Kurtic, Alistarh, arXiv:2107.03356), dense estimator per parameter tensor (the paper's
    blockwise variant with one block per tensor): push g into the window of the last m gradients;
    ``d = F̂⁻¹g`` with ``F̂ = λI + (1/m)Σ gᵢgᵢᵀ`` (Woodbury, :mod:`optimlab.linalg.woodbury`);
    ``b ← μb + d``; ``u = b``. Before the window is full m counts the gradients so far.

    State is the window alone, in the parameter's dtype; its Gram matrix ``GGᵀ`` is recomputed in float64
    each step (O(d·m²); :func:`~optimlab.linalg.woodbury.ring_push` keeps it incrementally in O(d·m) for a
    caller that can hold a float64 state) and factorised once (O(m³)); the product is then O(d·m + m²)."""

    name = "mfac"
    rule = "window ← last m gradients;  d = (λI + GᵀG/m)⁻¹g  (Woodbury);  b ← μb + d;  u ← b"
    hparams = {
        "ngrads": HParam("int", 32, "m, gradients in the window (the paper uses 1024 on GPUs)", low=1),
        "damp": HParam("float", 1e-2, "λ, the dampening added to the empirical Fisher (gradient units²)",
                       low=0.0, low_open=True),
        "momentum": HParam("float", 0.0, "μ, heavy-ball coefficient on the preconditioned gradient", low=0.0,
                           high=1.0, high_open=True),
    }

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        m = group["ngrads"]
        return {"grads": torch.zeros((m, p.numel()), dtype=p.dtype, device=p.device),
                "momentum_buffer": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def update(self, b: Bucket) -> None:
        m, damp, mu = b.group["ngrads"], b.group["damp"], b.group["momentum"]
        out = []
        for g, st, t in zip(b.grads, b.states, b.steps):
            G = st["mfac.grads"]
            if G.shape[0] != m:
                raise ValueError(f"mfac: ngrads changed from {G.shape[0]} to {m} after the first step; the "
                                 f"window cannot be resized")
            G[(t - 1) % m].copy_(g.reshape(-1))
            G64 = G.to(torch.float64)
            d = fisher_inverse_product(G, window_factor(G64 @ G64.T, min(t, m), damp), g)
            buf = st["mfac.momentum_buffer"]
            buf.mul_(mu).add_(saturate(d, buf.dtype).to(buf.dtype))
            out.append(buf)
        saturate_(out)
        b.set_updates(out, owned=False)


class ScaledFactor(Transform):
    """ScaledGD(λ) (Xu, Shen, Chi, Ma, "The Power of Preconditioning in Overparameterized Low-Rank Matrix
    Sensing", arXiv:2302.01186) for a factor X of a symmetric factorisation M = XXᵀ:
    ``u = ∇f(X)·(XᵀX + λI)⁻¹`` (X of shape n × k: the k × k Gram of its columns). Tensors that are not
    matrices get ``u = g``. By an eigendecomposition in float64 with the Gram's eigenvalues clamped at 0, so
    the denominators are ≥ λ > 0 even when XᵀX is numerically singular."""

    name = "scaled_gd"
    rule = "u ← G·(XᵀX + λI)⁻¹  (X the n × k parameter)"
    hparams = {"damp": HParam("float", 0.1, "λ, added to the factor's Gram XᵀX (parameter units²)", low=0.0,
                              low_open=True)}

    def update(self, b: Bucket) -> None:
        lam = b.group["damp"]
        out = []
        for x, g in zip(b.params, b.grads):
            if x.ndim != 2:
                out.append(g)
                continue
            X = x.detach().to(torch.float64)
            w, V = torch.linalg.eigh(X.T @ X)  # G (XᵀX + λI)⁻¹ = G V diag(1/(w + λ)) Vᵀ, w clamped at 0
            u = ((g.to(torch.float64) @ V) / (w.clamp_min(0) + lam)) @ V.T
            out.append(saturate(u, g.dtype).to(g.dtype))
        b.set_updates(out, owned=True)
