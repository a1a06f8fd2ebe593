"""GaLore, DCT column selection, Online Subspace Descent and AdamW-SNSM, one matrix at a time, literally.

Conventions shared by the four (those of the GaLore reference code, ``proj_type='std'``): for W (m × n)
with m >= n the projector is a right one, ``R = G Pᵀ`` with P (r × n); for m < n a left one, ``R = Pᵀ G`` with
P (m × r). The step counter t starts at 1 and the basis is refreshed when ``(t − 1) % T == 0`` (GaLore's
``iter % T == 0`` with iter counted from 0). ``galore_step(reverse=True)`` is the reference code's
``proj_type='reverse_std'``: the other side (a left projector P (m × r) when m >= n, a right one when m < n).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["galore_step", "dct_step", "osd_step", "snsm_step", "dct_ii"]


def _adam(state: dict, R: Tensor, t: int, betas: tuple[float, float], eps: float) -> Tensor:
    b1, b2 = betas
    m = state["m"] = b1 * state.get("m", torch.zeros_like(R)) + (1 - b1) * R
    v = state["v"] = b2 * state.get("v", torch.zeros_like(R)) + (1 - b2) * R * R
    return (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)


def _right(G: Tensor, reverse: bool = False) -> bool:
    return (G.shape[0] >= G.shape[1]) != reverse


def _project(G: Tensor, P: Tensor, reverse: bool = False) -> Tensor:
    return G @ P.T if _right(G, reverse) else P.T @ G


def _back(U: Tensor, P: Tensor, G: Tensor, reverse: bool = False) -> Tensor:
    return U @ P if _right(G, reverse) else P @ U


def _svd_projector(G: Tensor, r: int, reverse: bool = False) -> Tensor:
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    return Vh[:r, :] if _right(G, reverse) else U[:, :r]


def _step(W: Tensor, G: Tensor, state: dict, t: int, P: Tensor, lr: float, alpha: float, wd: float,
          betas: tuple[float, float], eps: float, reverse: bool = False) -> None:
    """Adam on the projection, back, AdamW's decoupled decay applied first (as torch.optim.AdamW)."""
    N = _adam(state, _project(G, P, reverse), t, betas, eps)
    W.mul_(1 - lr * wd).sub_(lr * alpha * _back(N, P, G, reverse))


def galore_step(W: Tensor, G: Tensor, state: dict, t: int, *, r: int, T: int, lr: float, alpha: float = 0.25,
                wd: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8, reverse: bool = False) -> None:
    """GaLore-AdamW (Zhao et al., arXiv:2403.03507, Algorithm 2): every T steps ``P ← SVD(G)`` truncated to r;
    ``R = P-projection of G``; ``N = Adam(R)`` (moments kept across refreshes); ``W ← W − η α P-back(N)``."""
    if (t - 1) % T == 0:
        state["P"] = _svd_projector(G, r, reverse)
    _step(W, G, state, t, state["P"], lr, alpha, wd, betas, eps, reverse)


def dct_ii(n: int, dtype=torch.float64) -> Tensor:
    """Orthonormal DCT-II, basis vectors as columns: ``C[j, k] = sqrt((1 if k == 0 else 2)/n) cos(π(2j+1)k/(2n))``."""
    C = torch.empty(n, n, dtype=torch.float64)
    for j in range(n):
        for k in range(n):
            C[j, k] = math.sqrt((1.0 if k == 0 else 2.0) / n) * math.cos(math.pi * (2 * j + 1) * k / (2 * n))
    return C.to(dtype)


def dct_step(W: Tensor, G: Tensor, state: dict, t: int, *, r: int, T: int, lr: float, alpha: float = 0.25,
             wd: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
    """DCT projector (Modoranu et al., arXiv:2505.17967): every T steps score the DCT-II columns by
    ``‖G C_{:,j}‖`` (on the small side of G), keep the top-r indices I (sorted ascending); ``P = C_Iᵀ``."""
    tall = G.shape[0] >= G.shape[1]
    X = G if tall else G.T
    C = dct_ii(X.shape[1], G.dtype)
    if (t - 1) % T == 0:
        scores = (X @ C).norm(dim=0)
        state["I"] = sorted(torch.topk(scores, r).indices.tolist())
    Ci = C[:, state["I"]]  # (N, r)
    _step(W, G, state, t, Ci.T if tall else Ci, lr, alpha, wd, betas, eps)


def osd_step(W: Tensor, G: Tensor, state: dict, t: int, *, r: int, lr: float, alpha: float = 0.25,
             wd: float = 0.0, proj_lr: float = 5e-3, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
    """Online Subspace Descent (Liang et al., arXiv:2408.12857; reference code's ``continuous`` projection):
    step 1: P from the SVD; then each step the loss ``‖Ĝ PᵀP − Ĝ‖²`` (right; ``‖P Pᵀ Ĝ − Ĝ‖²`` left),
    ``Ĝ = G/‖G‖``, is differentiated by autograd, G is projected with the current P, and after the
    projection back P takes a ``torch.optim.AdamW(lr=proj_lr)`` step."""
    tall = G.shape[0] >= G.shape[1]
    if t == 1:
        state["P"] = _svd_projector(G, r).clone()
        state["P_opt"] = torch.optim.AdamW([state["P"]], lr=proj_lr)
    P = state["P"]
    if t > 1:
        with torch.enable_grad():
            P.requires_grad_(True)
            P.grad = None
            Gh = G / torch.norm(G)
            loss = torch.norm(Gh @ P.T @ P - Gh) ** 2 if tall else torch.norm(P @ P.T @ Gh - Gh) ** 2
            loss.backward()
            P.requires_grad_(False)
    _step(W, G, state, t, P.detach().clone(), lr, alpha, wd, betas, eps)
    state["P_opt"].step()
    P.grad = None


def snsm_step(W: Tensor, G: Tensor, state: dict, t: int, *, r: int | None, T: int, lr: float, wd: float = 0.0,
              betas=(0.9, 0.999), eps: float = 1e-8) -> None:
    """AdamW-SNSM (Nguyen et al., arXiv:2411.07120; reference code ``GenericOptim`` with subset-norm
    heuristics and SVD subspace momentum; ``r=None``: AdamW-SN, full momentum).

    Subset norm: one subset per row of the larger dimension, ``v ← β2 v + (1−β2) Σ g²`` over the smaller one.
    Subspace momentum: ``m ← β1 m + (1−β1) R`` on the projection; numerator ``P-back(m) + (G − P-back(R))``;
    the momentum restarts at zero at every refresh after the first.
    ``W ← W − η sqrt(1−β2^t)/(1−β1^t) · num / (sqrt(v) + ε)``, then ``W ← W − η λ W``.
    """
    b1, b2 = betas
    dim = 1 if G.shape[0] >= G.shape[1] else 0  # reduce over the smaller dimension
    sq = (G**2).sum(dim=dim, keepdim=True)
    v = state["v"] = b2 * state.get("v", torch.zeros_like(sq)) + (1 - b2) * sq
    if r is None:
        m = state["m"] = b1 * state.get("m", torch.zeros_like(G)) + (1 - b1) * G
        num = m
    else:
        if (t - 1) % T == 0:
            state["P"] = _svd_projector(G, r)
            if t > 1:
                state["m"] = torch.zeros_like(state["m"])
        P = state["P"]
        R = _project(G, P)
        m = state["m"] = b1 * state.get("m", torch.zeros_like(R)) + (1 - b1) * R
        num = _back(m, P, G) + (G - _back(R, P, G))
    step = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
    W.sub_(step * num / (v.sqrt() + eps))
    W.sub_(lr * wd * W)
