"""SOAP: Adam run in the eigenbasis of Shampoo's statistics, the basis refreshed every k steps.

Vyas, Morwani, Zhao, Kwun, Shapira, Brandfonbrener, Janson & Kakade, "SOAP: Improving and Stabilizing
Shampoo using Adam" (arXiv:2409.11321), Algorithms 3–4, as their reference code runs it::

    t = 1:  L = (1−β_s) G Gᵀ, R = (1−β_s) Gᵀ G;  Q_L, Q_R = eigenvectors (eigenvalues descending); no step
    t ≥ 2 (s = t − 1):
        G' = Q_Lᵀ G Q_R;  m ← β1 m + (1−β1) G;  v ← β2 v + (1−β2) G'²        (m in the original basis)
        u = Q_L [(Q_Lᵀ m Q_R) / (√v + ε)] Q_Rᵀ · √(1−β2^s) / (1−β1^s)
        L ← β_s L + (1−β_s) G Gᵀ,  R likewise
        every k-th s: Q ← qr(L Q) with columns sorted by diag(Qᵀ L Q) (one power step), v permuted to match

A side longer than ``max_precondition_dim`` keeps the identity basis (no statistics for it).

The first moment is stored in the eigenbasis, ``m' = Q_Lᵀ m Q_R`` (as HeavyBall stores it): between refreshes
``m' ← β1 m' + (1−β1) G'`` equals the rotated EMA, so a step costs one forward rotation (of ``G``) and one
back rotation instead of two forward ones; a refresh rotates ``m'`` to the original basis and into the new
one (four products every k steps instead of two every step). Same rule; rounding differs from the
reference's order (fp64 parity ≤ 1e-9 relative, the float32 cross-check with pytorch_optimizer unchanged).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.roots import eigenbasis, refresh_eigenbasis, root_dtype
from ..linalg.scaling import pow2_scale, saturate
from .blocks import scaled_grams
from .moments import BETAS
from .orthogonalize import matrix_view, set_matrices, stack_matrices
from .shampoo import PRECOND_FREQ

__all__ = ["SOAPPrecondition"]


_PLAIN = (2.0**-30, 2.0**30)  # max|G| range where the statistics need no rescaling (squares in [2^-60, 2^60]·n)


def _rotate(X: Tensor, QL: Tensor | None, QR: Tensor | None, back: bool = False) -> Tensor:
    """``Q_Lᵀ X Q_R`` (``back``: ``Q_L X Q_Rᵀ``), computed on ``X·2^-k`` and saturated (never inf)."""
    f = pow2_scale(X)
    Y = X * f
    if QL is not None:
        Y = (QL if back else QL.mT) @ Y
    if QR is not None:
        Y = Y @ (QR.mT if back else QR)
    return saturate(Y * (1 / f))  # exact: f is a power of two


class SOAPPrecondition(Transform):
    """SOAP's whole matrix direction (module docstring), batched over the bucket.

    State per parameter (in its dtype): ``exp_avg`` and ``exp_avg_sq`` (both in the eigenbasis), and per
    preconditioned side ``GG_L``/``Q_L`` (m × m), ``GG_R``/``Q_R`` (n × n). The eigenbases are state:
    a checkpoint resumes bit-identically. Eigen/QR work runs in float32 (float64 for float64 parameters).
    """

    name = "soap"
    same_shape = True
    rule = ("G' = Q_Lᵀ G Q_R;  m ← β1 m + (1−β1) G;  v ← β2 v + (1−β2) G'²;  "
            "u = Q_L[(Q_Lᵀ m Q_R)/(√v+ε)]Q_Rᵀ·√(1−β2^s)/(1−β1^s);  L, R ← EMA_βs of GGᵀ, GᵀG; "
            "every k steps Q ← qr(L Q) (no step at t = 1)")
    hparams = {
        "betas": BETAS,
        "shampoo_beta": HParam("float", 0.95, "β_s: EMA coefficient of the statistics L, R (unitless)", low=0.0,
                               high=1.0, high_open=True),
        "eps": HParam("float", 1e-8, "added to √v (gradient units, in the eigenbasis)", low=0.0),
        "precondition_frequency": PRECOND_FREQ,
        "max_precondition_dim": HParam("int", 10000, "sides longer than this keep the identity basis", low=1,
                                       high=2**31),
    }

    @staticmethod
    def _sides(shape: torch.Size, group: dict) -> tuple[bool, bool]:
        m, n = (shape[0], 1) if len(shape) < 2 else tuple(matrix_view(torch.empty(shape, device="meta")).shape)
        big = group["max_precondition_dim"]
        return len(shape) >= 2 and m <= big, len(shape) >= 2 and n <= big

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        z = {"exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
             "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        left, right = self._sides(p.shape, group)
        m, n = matrix_view(p).shape if p.ndim >= 2 else (0, 0)
        if left:
            z["GG_L"], z["Q_L"] = p.new_zeros((m, m)), p.new_zeros((m, m))
        if right:
            z["GG_R"], z["Q_R"] = p.new_zeros((n, n)), p.new_zeros((n, n))
        return z

    def _statistics(self, b: Bucket, idx: list[int], G: Tensor, left: bool, right: bool) -> None:
        beta = b.group["shampoo_beta"]
        dt = b.params[0].dtype
        if G.device.type == "cpu" and G.dtype == dt and _PLAIN[0] <= float(G.abs().amax()) <= _PLAIN[1]:
            # ordinary scale (host check: free on CPU): G Gᵀ cannot overflow, the power-of-two rescaling of
            # scaled_grams is exact and its saturation an identity, so the plain product is the same number
            # (unless some products are subnormal); skip its four passes over the m × m statistics
            SL = G @ G.mT if left else None
            SR = G.mT @ G if right else None
        else:
            SL, SR = scaled_grams(G, dt, left, right)
        for side, S in (("L", SL), ("R", SR)):
            if S is not None:
                GG = [b.states[i][f"{self.name}.GG_{side}"] for i in idx]
                torch._foreach_lerp_(GG, list(S.to(dt).unbind(0)), 1 - beta)

    def update(self, b: Bucket) -> None:
        g = b.group
        p0 = b.params[0]
        dt, wd = p0.dtype, root_dtype(p0.dtype)
        left, right = self._sides(p0.shape, g)
        beta1, beta2 = g["betas"]
        G = stack_matrices(b.updates, dtype=wd) if p0.ndim >= 2 else torch.stack(b.updates).to(wd).unsqueeze(-1)
        first = [i for i, t in enumerate(b.steps) if t == 1]
        rest = [i for i, t in enumerate(b.steps) if t > 1]
        everyone = len(rest) == len(b.steps)  # the usual case: no index copies
        out = None if everyone else torch.zeros_like(G)
        sts = b.states
        key = f"{self.name}."

        def stack(k: str, idx: list[int]) -> Tensor:
            return torch.stack([sts[i][key + k] for i in idx]).to(wd)

        def put(k: str, idx: list[int], X: Tensor) -> None:
            torch._foreach_copy_([sts[i][key + k] for i in idx], list(X.to(dt).unbind(0)))

        if first:  # initial statistics and eigenbases; no step (the reference code's first iteration)
            self._statistics(b, first, G[first], left, right)
            for side, on in (("L", left), ("R", right)):
                if on:
                    put(f"Q_{side}", first, eigenbasis(stack(f"GG_{side}", first)))
        if rest:
            Gr = G if everyone else G[rest]
            QL = stack("Q_L", rest) if left else None
            QR = stack("Q_R", rest) if right else None
            m = [sts[i][key + "exp_avg"] for i in rest]
            v = [sts[i][key + "exp_avg_sq"] for i in rest]
            shape = m[0].shape
            Gp = _rotate(Gr, QL, QR)
            # m is kept in the eigenbasis (HeavyBall's form): EMA(Q_Lᵀ G Q_R) = Q_Lᵀ EMA(G) Q_R while the basis
            # holds, so the step needs no rotation of m; a basis refresh rotates m into the new basis
            Gp = list(Gp.to(dt).reshape(len(rest), *shape).unbind(0))
            torch._foreach_lerp_(m, Gp, 1 - beta1)
            # Adam's form, not lerp: v may reach +inf (a square that overflows), and inf + w·(inf − inf) is NaN
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, Gp, Gp, 1 - beta2)
            M = torch.stack(m).to(wd).reshape(Gr.shape)
            V = torch.stack(v).to(wd).reshape(Gr.shape)
            N = M / (V.sqrt() + g["eps"])
            steps = torch.tensor([b.steps[i] - 1 for i in rest], dtype=torch.float64, device=M.device)
            size = ((1 - beta2**steps).sqrt() / (1 - beta1**steps)).to(wd).view(-1, 1, 1)
            step = _rotate(N, QL, QR, back=True) * size
            if everyone:
                out = step
            else:
                out[rest] = step
            self._statistics(b, rest, Gr, left, right)
            k = g["precondition_frequency"]
            due = [j for j, i in enumerate(rest) if (b.steps[i] - 1) % k == 0]  # positions in rest
            if due:
                di = [rest[j] for j in due]
                sel = (lambda X: X) if len(due) == len(rest) else (lambda X: X[due])
                M = _rotate(sel(M), sel(QL) if left else None, sel(QR) if right else None, back=True)  # original basis
                V = sel(V)
                new = {}
                for side, on, dim in (("L", left, -2), ("R", right, -1)):
                    if on:
                        Q, order = refresh_eigenbasis(stack(f"GG_{side}", di), sel(QL if side == "L" else QR))
                        new[side] = Q
                        put(f"Q_{side}", di, Q)
                        idx = order.unsqueeze(-1) if dim == -2 else order.unsqueeze(-2)
                        V = torch.gather(V, dim, idx.expand_as(V))
                put("exp_avg_sq", di, V.reshape(len(di), *shape))
                put("exp_avg", di, _rotate(M, new.get("L"), new.get("R")).reshape(len(di), *shape))
        set_matrices(b, out, dt) if p0.ndim >= 2 else b.set_updates(
            [x.reshape(p.shape).to(dt) for x, p in zip(out.unbind(0), b.params)], owned=True)
