"""Shampoo's Kronecker-factored preconditioner, with Adam grafting and blocking of large dimensions.

Shampoo (Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor Optimization",
arXiv:1802.09568, Algorithm 1) for a matrix gradient ``G`` (m × n)::

    L ← L + G Gᵀ,  R ← R + Gᵀ G                     (β2 = 1; an EMA β2·L + (1−β2)·G Gᵀ for β2 < 1)
    W ← W − η (L + εI)^{-1/4} G (R + εI)^{-1/4}

with the inverse roots recomputed every ``precondition_frequency`` steps (and cached in between), and
what practical Shampoo adds (Anil et al., arXiv:2002.09018; Shi et al., Distributed Shampoo,
arXiv:2309.06497): a first moment ``m ← β1 m + (1−β1) G`` (bias-corrected) that is preconditioned instead
of ``G``; *grafting*: the preconditioned direction ``D`` rescaled per layer to the norm of Adam's direction
``A = m̂ / (√v̂ + eps)`` (``v ← β2 v + (1−β2) G²``), ``u = D ‖A‖_F / ‖D‖_F``; *blocking*: each
``block_size`` × ``block_size`` block of the matrix gets its own statistics (see :mod:`.blocks`).
Parameters of fewer than 2 dims fall back to the Adam (grafting) direction.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.roots import ROOT_METHODS, inv_root, root_dtype
from ..linalg.scaling import pow2_scale, saturate
from .blocks import block_layout, from_blocks, scaled_grams, to_blocks
from .orthogonalize import matrix_view, set_matrices, stack_matrices

__all__ = ["ShampooPrecondition", "PRECOND_BETAS", "MATRIX_EPS", "PRECOND_FREQ", "ROOT_METHOD",
           "ema_or_sum_", "bias_corrections"]

PRECOND_BETAS = HParam("betas", (0.9, 0.999), "(β1, β2): first-moment EMA, and EMA of the statistics and of "
                                              "the grafting second moment (β2 = 1: plain sums, as in the paper)",
                       low=0.0, high=1.0)
MATRIX_EPS = HParam("float", 1e-12, "ε: damping added to the statistics before the inverse root "
                                    "(gradient² units)", low=0.0, low_open=True)
PRECOND_FREQ = HParam("int", 10, "k: steps between recomputations of the inverse roots (steps)", low=1,
                      high=2**31)
ROOT_METHOD = HParam("choice", "eigh", "inverse-root kernel: 'eigh' or 'newton' (coupled Newton, matmuls only)",
                     choices=ROOT_METHODS)


def ema_or_sum_(acc: list[Tensor], new: list[Tensor], beta: float) -> None:
    """``acc ← β acc + (1−β) new`` (``acc ← acc + new`` when ``β = 1``), saturated at ±max/2."""
    if beta == 1.0:
        torch._foreach_add_(acc, new)
    else:
        torch._foreach_mul_(acc, beta)
        torch._foreach_add_(acc, new, alpha=1 - beta)
    m = 0.5 * torch.finfo(acc[0].dtype).max
    torch._foreach_clamp_max_(acc, m)  # statistics are PSD: only the diagonal can reach the top
    torch._foreach_clamp_min_(acc, -m)


def bias_corrections(beta: float, steps: list[int]) -> list[float]:
    """``1 / (1 − β^t)`` per parameter, 1 for ``β`` = 0 or 1 (no EMA, or a plain sum)."""
    if beta in (0.0, 1.0):
        return [1.0] * len(steps)
    return [1.0 / (1 - beta**t) for t in steps]


class ShampooPrecondition(Transform):
    """``u ← graft((L + εI)^{-1/4} m̂ (R + εI)^{-1/4})`` per block, batched over the bucket (module docstring).

    State per matrix parameter (in its dtype; ``N`` = number of blocks): ``L``, ``L_root`` (N, br, br),
    ``R``, ``R_root`` (N, bc, bc), ``exp_avg`` and, with Adam grafting, ``exp_avg_sq`` (parameter shape).
    Cached roots are state, so a checkpoint resumes bit-identically. Roots run in float32 (float64 for
    float64 parameters). Numerics: statistics are formed from ``G·2^-k`` and saturate at ±max/2; roots are
    computed on power-of-two-scaled statistics with ``ε`` floored at the smallest normal number (a zero
    gradient gives ``ε^{-1/4} I``, never NaN); the preconditioned direction is formed from ``m̂·2^-k``.
    """

    name = "shampoo"
    same_shape = True
    rule = ("L ← β2 L + (1−β2) GGᵀ, R ← β2 R + (1−β2) GᵀG (β2 = 1: sums); every k steps P_L = (L+εI)^{-1/4}, "
            "P_R = (R+εI)^{-1/4};  D = P_L m̂ P_R;  u ← D·‖m̂/(√v̂+eps)‖/‖D‖ (Adam grafting)")
    hparams = {
        "betas": PRECOND_BETAS,
        "matrix_eps": MATRIX_EPS,
        "eps": HParam("float", 1e-8, "added to √v̂ in the Adam grafting direction (gradient units)", low=0.0),
        "precondition_frequency": PRECOND_FREQ,
        "block_size": HParam("int", 1024, "largest preconditioned dimension: bigger matrices are cut into "
                                          "blocks of this size, each with its own statistics", low=1, high=2**20),
        "grafting": HParam("choice", "adam", "norm the preconditioned direction takes: 'adam' (per-layer norm of "
                                             "Adam's direction) or 'none' (the paper's raw step)",
                           choices=("adam", "none")),
        "root_method": ROOT_METHOD,
    }

    def check(self, group: dict, owner: str) -> None:
        if group["betas"][0] == 1.0:
            raise ValueError(f"{owner}: betas[0] must be in [0, 1), got {group['betas'][0]!r}")

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        z = {"exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format)}
        if p.ndim < 2 or group["grafting"] == "adam":
            z["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if p.ndim >= 2:
            m, n = matrix_view(p).shape
            Br, Bc, br, bc = block_layout(m, n, group["block_size"])
            z["L"] = p.new_zeros((Br * Bc, br, br))
            z["R"] = p.new_zeros((Br * Bc, bc, bc))
            z["L_root"] = p.new_zeros((Br * Bc, br, br))
            z["R_root"] = p.new_zeros((Br * Bc, bc, bc))
        return z

    def _statistics(self, b: Bucket) -> list[Tensor]:
        """The gradients the statistics (L, R and the grafting v) are formed from: the update's here; the
        cross-fitted variant (:mod:`optimlab.cross_fit`) gives another part of the batch's."""
        return b.updates

    def _adam_direction(self, b: Bucket, m_hat: list[Tensor]) -> list[Tensor]:
        beta2 = b.group["betas"][1]
        g = self._statistics(b)
        v = b.state(self, "exp_avg_sq")
        # Adam's own arithmetic (v may reach +inf, then that entry of A is 0, as in torch)
        if beta2 == 1.0:
            torch._foreach_addcmul_(v, g, g)
        else:
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, g, g, 1 - beta2)
        den = torch._foreach_sqrt(v)
        torch._foreach_mul_(den, [c**0.5 for c in bias_corrections(beta2, b.steps)])
        torch._foreach_add_(den, b.group["eps"])
        return torch._foreach_div(m_hat, den)

    def update(self, b: Bucket) -> None:
        g = b.group
        beta1, beta2 = g["betas"]
        m = b.state(self, "exp_avg")
        torch._foreach_lerp_(m, b.updates, 1 - beta1)
        m_hat = torch._foreach_mul(m, bias_corrections(beta1, b.steps))
        p0 = b.params[0]
        if p0.ndim < 2:  # 1-D fallback: Adam's direction
            b.set_updates(self._adam_direction(b, m_hat), owned=True)
            return
        wd = root_dtype(p0.dtype)
        B = len(b.params)
        G = stack_matrices(self._statistics(b), dtype=wd)
        rows, cols = G.shape[-2:]
        block = g["block_size"]
        Gb = to_blocks(G, block)
        SL, SR = scaled_grams(Gb, p0.dtype)
        N = Gb.shape[0] // B
        Ls, Rs = b.state(self, "L"), b.state(self, "R")
        ema_or_sum_(Ls, list(SL.to(p0.dtype).reshape(B, N, *SL.shape[-2:]).unbind(0)), beta2)
        ema_or_sum_(Rs, list(SR.to(p0.dtype).reshape(B, N, *SR.shape[-2:]).unbind(0)), beta2)
        Lr, Rr = b.state(self, "L_root"), b.state(self, "R_root")
        k = g["precondition_frequency"]
        due = [i for i, t in enumerate(b.steps) if (t - 1) % k == 0]
        if due:
            for stats, roots in ((Ls, Lr), (Rs, Rr)):
                A = torch.stack([stats[i] for i in due]).to(wd)
                X = inv_root(A.reshape(-1, *A.shape[-2:]), 4, g["matrix_eps"], g["root_method"]).reshape(A.shape)
                torch._foreach_copy_([roots[i] for i in due], list(X.to(p0.dtype).unbind(0)))
        M = stack_matrices(m_hat, dtype=wd)
        f = pow2_scale(M)
        Mb = to_blocks(M * f, block)
        PL = torch.stack(Lr).to(wd).reshape(-1, *Lr[0].shape[-2:])
        PR = torch.stack(Rr).to(wd).reshape(-1, *Rr[0].shape[-2:])
        D = from_blocks(PL @ Mb @ PR, B, rows, cols, block)  # the direction for m̂·f
        if g["grafting"] == "adam":
            A = stack_matrices(self._adam_direction(b, m_hat), dtype=wd)
            dn = torch.linalg.matrix_norm(D, keepdim=True)
            an = torch.linalg.matrix_norm(A, keepdim=True)
            D = D * (an / dn.clamp_min(torch.finfo(wd).tiny))  # a zero direction stays zero
        else:
            D = saturate(D * (1 / f), p0.dtype)  # exact: f is a power of two
        set_matrices(b, D, p0.dtype)
