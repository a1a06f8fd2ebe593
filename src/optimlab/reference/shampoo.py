"""Shampoo, practical (grafted, blocked) Shampoo, SOAP and ASGO / DASGO, one matrix at a time, in float64.

Slow, literal transcriptions used as test oracles: every block, root and basis is computed on its own
with a dense ``eigh`` / ``qr``; nothing is batched, scaled or cached across calls except what the method
itself keeps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _root(A: Tensor, p: float, eps: float) -> Tensor:
    lam, V = torch.linalg.eigh(A)
    return V @ torch.diag((lam.clamp_min(0) + eps) ** (-1.0 / p)) @ V.T


def shampoo_literal_step(W: Tensor, G: Tensor, state: dict, *, lr: float, eps: float) -> None:
    """Gupta, Koren & Singer (arXiv:1802.09568), Algorithm 1 for a matrix::

        L_0 = εI, R_0 = εI;   L_t = L_{t−1} + G Gᵀ;   R_t = R_{t−1} + Gᵀ G
        W_{t+1} = W_t − η L_t^{-1/4} G R_t^{-1/4}
    """
    m, n = G.shape
    if "L" not in state:
        state["L"] = eps * torch.eye(m, dtype=G.dtype)
        state["R"] = eps * torch.eye(n, dtype=G.dtype)
    state["L"] = state["L"] + G @ G.T
    state["R"] = state["R"] + G.T @ G
    W.sub_(lr * _root(state["L"], 4, 0.0) @ G @ _root(state["R"], 4, 0.0))


def shampoo_step(W: Tensor, G: Tensor, state: dict, *, t: int, lr: float, beta1: float, beta2: float, eps: float,
                 graft_eps: float, k: int, block: int, grafting: str, weight_decay: float) -> None:
    """Practical Shampoo as :class:`~optimlab.transforms.shampoo.ShampooPrecondition` documents it: per block
    ``(i, j)`` of at most ``block`` × ``block`` (zero-padded), ``L_ij``, ``R_ij`` (EMA β2, or sums at β2 = 1),
    inverse 4th roots refreshed when ``(t − 1) mod k = 0``, ``D_ij = P_L m̂_ij P_R``; with Adam grafting
    ``u = D ‖A‖/‖D‖`` over the whole matrix; ``W ← (1 − η λ) W − η u``."""
    m, n = G.shape
    br, bc = min(m, block), min(n, block)
    Br, Bc = math.ceil(m / br), math.ceil(n / bc)
    pad = lambda X: torch.nn.functional.pad(X, (0, Bc * bc - n, 0, Br * br - m))  # noqa: E731
    if "m" not in state:
        state.update(m=torch.zeros_like(G), v=torch.zeros_like(G), L={}, R={}, PL={}, PR={})
    state["m"] = beta1 * state["m"] + (1 - beta1) * G
    c1 = 1.0 if beta1 in (0.0, 1.0) else 1 - beta1**t
    c2 = 1.0 if beta2 in (0.0, 1.0) else 1 - beta2**t
    mh = state["m"] / c1
    Gp, Mp = pad(G), pad(mh)
    D = torch.zeros_like(Gp)
    for i in range(Br):
        for j in range(Bc):
            Gb = Gp[i * br:(i + 1) * br, j * bc:(j + 1) * bc]
            SL, SR = Gb @ Gb.T, Gb.T @ Gb
            L = state["L"].get((i, j), torch.zeros_like(SL))
            R = state["R"].get((i, j), torch.zeros_like(SR))
            L, R = (L + SL, R + SR) if beta2 == 1.0 else (beta2 * L + (1 - beta2) * SL, beta2 * R + (1 - beta2) * SR)
            state["L"][(i, j)], state["R"][(i, j)] = L, R
            if (t - 1) % k == 0:
                state["PL"][(i, j)], state["PR"][(i, j)] = _root(L, 4, eps), _root(R, 4, eps)
            D[i * br:(i + 1) * br, j * bc:(j + 1) * bc] = (
                state["PL"][(i, j)] @ Mp[i * br:(i + 1) * br, j * bc:(j + 1) * bc] @ state["PR"][(i, j)])
    D = D[:m, :n]
    if grafting == "adam":
        state["v"] = state["v"] + G * G if beta2 == 1.0 else beta2 * state["v"] + (1 - beta2) * G * G
        A = mh / ((state["v"] / c2).sqrt() + graft_eps)
        D = D * (A.norm() / D.norm()) if D.norm() > 0 else D
    W.mul_(1 - lr * weight_decay).sub_(lr * D)


def soap_step(W: Tensor, G: Tensor, state: dict, *, t: int, lr: float, beta1: float, beta2: float,
              shampoo_beta: float, eps: float, k: int, weight_decay: float) -> None:
    """SOAP (Vyas et al., arXiv:2409.11321; Algorithms 3–4 as their reference code runs them), decay in
    AdamW's order (before the step, also at ``t = 1``) as optimlab's recipe applies it."""
    W.mul_(1 - lr * weight_decay)
    if t == 1:
        state["L"] = (1 - shampoo_beta) * (G @ G.T)
        state["R"] = (1 - shampoo_beta) * (G.T @ G)
        state["QL"] = torch.linalg.eigh(state["L"])[1].flip(-1)
        state["QR"] = torch.linalg.eigh(state["R"])[1].flip(-1)
        state["m"], state["v"] = torch.zeros_like(G), torch.zeros_like(G)
        return
    s = t - 1
    QL, QR = state["QL"], state["QR"]
    Gp = QL.T @ G @ QR
    state["m"] = state["m"] + (1 - beta1) * (G - state["m"])
    state["v"] = beta2 * state["v"] + (1 - beta2) * Gp * Gp
    N = (QL.T @ state["m"] @ QR) / (state["v"].sqrt() + eps)
    W.sub_(lr * math.sqrt(1 - beta2**s) / (1 - beta1**s) * (QL @ N @ QR.T))
    state["L"] = state["L"] + (1 - shampoo_beta) * (G @ G.T - state["L"])
    state["R"] = state["R"] + (1 - shampoo_beta) * (G.T @ G - state["R"])
    if s % k == 0:
        for side, dim in (("L", 0), ("R", 1)):
            Q = state["Q" + side]
            P = state[side] @ Q
            order = torch.argsort((Q * P).sum(0), descending=True)
            state["v"] = state["v"].index_select(dim, order)
            state["Q" + side] = torch.linalg.qr(P[:, order])[0]


def asgo_step(W: Tensor, G: Tensor, state: dict, *, t: int, lr: float, beta1: float, beta2: float, eps: float,
              k: int, diagonal: bool, weight_decay: float) -> None:
    """ASGO / DASGO (An et al., arXiv:2503.20762) on the smaller side ``S`` of ``G`` (``G Gᵀ`` when
    m ≤ n, else ``Gᵀ G``): ``V ← β2 V + (1−β2) S`` (β2 = 1: sums; DASGO keeps only ``diag(S)``),
    ``M ← β1 M + (1−β1) G``, every k steps ``P = (V + εI)^{-1/2}``, ``W ← (1 − ηλ) W − η P M``
    (``M P`` on the right side)."""
    left = G.shape[0] <= G.shape[1]
    S = G @ G.T if left else G.T @ G
    if diagonal:
        S = torch.diag(torch.diagonal(S))
    if "V" not in state:
        state.update(V=torch.zeros_like(S), M=torch.zeros_like(G))
    state["V"] = state["V"] + S if beta2 == 1.0 else beta2 * state["V"] + (1 - beta2) * S
    state["M"] = beta1 * state["M"] + (1 - beta1) * G
    if (t - 1) % k == 0:
        state["P"] = _root(state["V"], 2, eps)
    U = state["P"] @ state["M"] if left else state["M"] @ state["P"]
    W.mul_(1 - lr * weight_decay).sub_(lr * U)
