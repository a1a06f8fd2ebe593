"""Projected optimizers: rotate the update into a low-rank basis, run any inner chain there, rotate back.

For a matrix update ``G`` (m × n; conv kernels flattened) let ``X = G`` when ``m >= n`` and ``X = Gᵀ``
otherwise (``M × N``, ``N = min(m, n)``), and ``Q`` (``N × r``) an orthonormal-column basis. Then::

    R = X Q                    projected update: (M × r), given to the inner chain as (m × r) or (r × n)
    U = inner(R)               Adam, Lion, Muon... with its state of the projected shape
    u = α · U Qᵀ               back in the full space (transposed back when m < n), α = proj_scale

The basis is refreshed at steps ``1, T + 1, 2T + 1, …`` (``T = update_proj_gap``; GaLore counts from 0)
and the inner state is *carried* across a refresh unchanged, as GaLore does (its coordinates then refer
to the new basis). ``proj_type`` picks the side the basis lives on, as GaLore's reference projector
(github.com/jiaweizzhao/GaLore, ``galore_projector.py``) does: ``"std"`` (the default, the paper's Table 1:
basis on the small side, ``N = min(m, n)``; inner state ``max(m, n) × r``) or ``"reverse_std"`` (basis on the
large side, ``X = Gᵀ`` when ``m >= n``: ``N = max(m, n)``, inner state ``min(m, n) × r``). The rank is
``r = rank_fraction · min(m, n)`` either way. State in numbers: ``(2 max + min)·r`` (std) against
``(max + 2 min)·r`` (reverse_std) for Adam; equal on a square matrix. Projectors:

* :class:`SVDProjector` - GaLore (Zhao et al., arXiv:2403.03507): ``Q`` = top-``r`` singular vectors of
  the gradient on its small side (exact SVD), or ``proj_iters`` warm-started power-iteration steps from
  the previous basis;
* :class:`DCTProjector` - Modoranu et al. (arXiv:2505.17967): ``Q = C[:, I]``, ``C`` the orthonormal
  DCT-II matrix, ``I`` the ``r`` columns with the largest ``‖X C_{:,j}‖``; only ``I`` is stored (as a 0/1
  mask of length ``N``, in the parameter's dtype so that a checkpoint round trip keeps it exact);
* :class:`OSDProjector` - Online Subspace Descent (Liang et al., arXiv:2408.12857): SVD at the first step,
  then one AdamW step per iteration on ``‖X̂ Q Qᵀ − X̂‖²_F`` (``X̂ = X/‖X‖_F``) *after* the basis was used.

Numerics: the projection runs on ``X·2^-k`` (exact, no overflow in ``X Q``); the projected update and
the update rotated back saturate at ±max/2 of the parameter's dtype instead of overflowing. Work dtype
float32 (float64 for float64 parameters); all state is kept in the parameter's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.lowrank import work_dtype
from ..linalg.projectors import (dct_matrix, dct_select, mask_indices, osd_basis_grad, power_basis,
                                 projected_rank, svd_basis)
from ..linalg.scaling import pow2_scale, saturate
from .orthogonalize import matrix_view

__all__ = ["Projector", "SVDProjector", "DCTProjector", "OSDProjector", "Projected", "oriented_shape",
           "RANK_FRACTION", "UPDATE_PROJ_GAP", "PROJ_ITERS", "PROJ_TYPE"]

RANK_FRACTION = HParam("float", 0.25, "rank r of the projection as a fraction of min(m, n) (unitless)",
                       low=0.0, high=1.0, low_open=True)
UPDATE_PROJ_GAP = HParam("int", 200, "T: steps between refreshes of the projection basis", low=1)
PROJ_TYPE = HParam("choice", "std", "side of the basis: 'std' (GaLore's default: basis min(m, n) × r, inner "
                                     "state max(m, n) × r) or 'reverse_std' (basis max(m, n) × r, inner state "
                                     "min(m, n) × r; GaLore's reference projector's other option)",
                   choices=("std", "reverse_std"))
PROJ_ITERS = HParam("int", 0, "power-iteration steps per basis refresh, warm-started from the previous "
                              "basis (0: exact SVD at every refresh)", low=0)


def oriented_shape(p: Tensor, proj_type: str = "std") -> tuple[int, int, bool]:
    """``(M, N, transposed)`` of a parameter's matrix view, ``X = Gᵀ`` when transposed; the basis is ``N × r``.
    ``"std"``: ``M >= N``, transposed when ``m < n``; ``"reverse_std"``: ``M <= N``, transposed when ``m >= n``."""
    if p.ndim < 2:
        raise ValueError(f"projected optimizers need matrix parameters (ndim >= 2), got shape {tuple(p.shape)}; "
                         f"route vectors to another role")
    m, n = matrix_view(p).shape
    tr = m >= n if proj_type == "reverse_std" else m < n
    return (n, m, True) if tr else (m, n, False)


def refresh_due(step: int, gap: int) -> bool:
    return (step - 1) % gap == 0


class Projector:
    """Where the basis comes from. ``init`` gives its state for one matrix (``N``, rank ``r``);
    ``basis`` returns the ``(B, N, r)`` basis to use this step (work dtype), refreshing where due."""

    hparams: dict[str, HParam] = {}
    rule = ""

    def init(self, N: int, r: int, dtype: torch.dtype, device: torch.device) -> dict[str, Tensor]:
        raise NotImplementedError

    def basis(self, Xs: Tensor, Gs: Tensor, transposed: bool, states: list[dict], steps: list[int],
              group: dict[str, Any], prefix: str) -> Tensor:
        """``Xs``: the scaled oriented matrices ``(B, M, N)`` (tall under ``proj_type="std"``); ``Gs`` the same in
        their own orientation."""
        raise NotImplementedError


def _write(states: list[dict], key: str, values: Tensor, rows: Sequence[int]) -> None:
    for i, v in zip(rows, values.unbind(0)):
        states[i][key].copy_(v)


class SVDProjector(Projector):
    """GaLore's basis: top-r singular vectors of the gradient (exact SVD, or warm-started power iteration)."""

    hparams = {"proj_iters": PROJ_ITERS}
    rule = "every T steps: Q ← top-r singular vectors of G on its small side (SVD, or power iteration from Q)"

    def init(self, N, r, dtype, device):
        return {"basis": torch.zeros(N, r, dtype=dtype, device=device)}

    def basis(self, Xs, Gs, transposed, states, steps, group, prefix):
        key = f"{prefix}basis"
        Q = torch.stack([s[key] for s in states]).to(Xs.dtype)
        due = [i for i, t in enumerate(steps) if refresh_due(t, group["update_proj_gap"])]
        if due:
            r = Q.shape[-1]
            iters = group["proj_iters"]
            warm = [i for i in due if steps[i] > 1] if iters > 0 else []
            cold = [i for i in due if i not in warm]
            for i in cold:  # one matrix at a time: the SVD's workspace is one matrix, not the bucket
                Q[i] = svd_basis(Gs[i:i + 1], r, transposed)[0]
            if warm:
                Q[warm] = power_basis(Xs[warm], Q[warm], iters)
            _write(states, key, Q[due], due)
            Q = torch.stack([s[key] for s in states]).to(Xs.dtype)  # exactly the stored basis
        return Q


class DCTProjector(Projector):
    """SVD-free basis: the r columns of the orthonormal DCT-II matrix that capture most of ``‖X C‖``."""

    rule = "every T steps: I ← top-r columns j of ‖(X C)_{:,j}‖ (C: orthonormal DCT-II); Q = C[:, I]"

    def init(self, N, r, dtype, device):
        mask = torch.zeros(N, dtype=dtype, device=device)
        mask[:r] = 1  # any r columns: replaced at the first step
        return {"columns": mask}

    def basis(self, Xs, Gs, transposed, states, steps, group, prefix):
        key = f"{prefix}columns"
        N = Xs.shape[-1]
        masks = torch.stack([s[key] for s in states])
        r = int(round(float(masks[0].sum())))
        due = [i for i, t in enumerate(steps) if refresh_due(t, group["update_proj_gap"])]
        if due:
            idx = torch.cat([dct_select(Xs[i:i + 1], r) for i in due])  # X C: one matrix at a time
            new = torch.zeros(len(due), N, dtype=masks.dtype, device=masks.device).scatter_(-1, idx, 1.0)
            _write(states, key, new, due)
            masks[due] = new
        idx = mask_indices(masks, r)
        C = dct_matrix(N, Xs.dtype, Xs.device)
        return C.mT[idx].mT  # (B, N, r): columns I of C, ascending


# torch.optim.AdamW's defaults, which the OSD reference code uses for the projector's own optimizer
_OSD_BETAS, _OSD_EPS, _OSD_WD = (0.9, 0.999), 1e-8, 0.01


class OSDProjector(Projector):
    """Online Subspace Descent: the basis is learned by AdamW on the projection error, every step."""

    hparams = {"proj_lr": HParam("float", 5e-3, "lr of the basis's own AdamW (basis entries per step; the "
                                                "reference code uses 1/T)", low=0.0)}
    rule = ("Q ← top-r SVD at step 1; then each step, after using Q: Q ← AdamW(Q, ∇_Q‖X̂QQᵀ − X̂‖², proj_lr), "
            "X̂ = X/‖X‖")

    def init(self, N, r, dtype, device):
        z = {"basis": torch.zeros(N, r, dtype=dtype, device=device)}
        z["basis_exp_avg"] = torch.zeros_like(z["basis"])
        z["basis_exp_avg_sq"] = torch.zeros_like(z["basis"])
        return z

    def basis(self, Xs, Gs, transposed, states, steps, group, prefix):
        key = f"{prefix}basis"
        Q = torch.stack([s[key] for s in states]).to(Xs.dtype)
        r = Q.shape[-1]
        first = [i for i, t in enumerate(steps) if t == 1]
        if first:
            for i in first:
                Q[i] = svd_basis(Gs[i:i + 1], r, transposed)[0]
            _write(states, key, Q[first], first)
            Q = torch.stack([s[key] for s in states]).to(Xs.dtype)
        for i, t in enumerate(steps):
            if t > 1:  # one matrix at a time: the loss gradient's temporaries are one matrix, not the bucket
                self._learn(Xs[i], Q[i], states[i], t - 1, group["proj_lr"], prefix)
        return Q  # the basis before this step's update, as the reference code projects with it

    @staticmethod
    def _learn(Xs: Tensor, Q: Tensor, st: dict, t: int, lr: float, prefix: str) -> None:
        """One torch.optim.AdamW step (β = (0.9, 0.999), ε = 1e-8, λ = 0.01) on the basis, step count ``t``."""
        g = osd_basis_grad(Xs, Q)
        b1, b2 = _OSD_BETAS
        q, m, v = st[f"{prefix}basis"], st[f"{prefix}basis_exp_avg"], st[f"{prefix}basis_exp_avg_sq"]
        qw, mw, vw = q.to(g.dtype), m.to(g.dtype), v.to(g.dtype)
        qw.mul_(1 - lr * _OSD_WD)
        mw.lerp_(g, 1 - b1)
        vw.mul_(b2).addcmul_(g, g, value=1 - b2)
        den = (vw.sqrt() / math.sqrt(1 - b2**t)).add_(_OSD_EPS)
        qw.addcdiv_(mw, den, value=-lr / (1 - b1**t))
        q.copy_(qw), m.copy_(mw), v.copy_(vw)


class Projected(Transform):
    """``u ← α · inner(X Q) Qᵀ``: any inner chain run on the update projected onto a rank-r basis.

    ``inner`` transforms must only rewrite the update (no parameter writes: put weight decay after this
    transform). Their state keys are ``"<name>.<inner name>.<key>"`` and have the projected shape
    (``m × r`` or ``r × n``); the projector's are ``"<name>.basis"`` / ``"<name>.columns"`` / ....
    """

    same_shape = True

    def __init__(self, name: str, projector: Projector, inner: Sequence[Transform]):
        self.name = name
        self.projector = projector
        self.inner = tuple(inner)
        specs: dict[str, HParam] = {"rank_fraction": RANK_FRACTION, "update_proj_gap": UPDATE_PROJ_GAP,
                                    "proj_scale": HParam("float", 1.0, "α: scale of the update rotated back "
                                                                      "(unitless; GaLore uses 0.25)", low=0.0),
                                    "proj_type": PROJ_TYPE}
        specs.update(projector.hparams)
        for t in self.inner:
            specs.update(t.hparams)
        self.hparams = specs
        inner_rule = "; ".join(t.rule for t in self.inner if t.rule)
        self.rule = f"{projector.rule}; R = X Q; U = [{inner_rule}](R); u ← α·U Qᵀ"

    def _inner_shape(self, p: Tensor, r: int, proj_type: str) -> tuple[int, int]:
        M, _, tr = oriented_shape(p, proj_type)
        return (r, M) if tr else (M, r)

    def init(self, p: Tensor, group: dict) -> dict[str, Any]:
        M, N, _ = oriented_shape(p, group["proj_type"])
        r = projected_rank(min(M, N), group["rank_fraction"])
        state: dict[str, Any] = dict(self.projector.init(N, r, p.dtype, p.device))
        probe = torch.zeros(self._inner_shape(p, r, group["proj_type"]), dtype=p.dtype, device=p.device)
        for t in self.inner:
            for k, v in t.init(probe, group).items():
                state[f"{t.name}.{k}"] = v
            for k, v in getattr(t, "scalar_state", {}).items():
                state[f"{t.name}.{k}"] = v
        return state

    def update(self, b: Bucket) -> None:
        g, p0 = b.group, b.params[0]
        wd = work_dtype(p0.dtype)
        M, N, tr = oriented_shape(p0, g["proj_type"])
        # G is this step's own copy: scaled in place, then overwritten by the update rotated back, so the
        # step holds one bucket-sized temporary (plus one matrix during a refresh), like a gradient copy
        G = torch.stack([matrix_view(x).to(wd) for x in b.updates])
        f = pow2_scale(G)
        G.mul_(f)
        Xs = G.mT if tr else G
        pre = f"{self.name}."
        Q = self.projector.basis(Xs, G, tr, b.states, b.steps, g, pre)
        R = saturate((Xs @ Q) / f, p0.dtype)  # (B, M, r)
        Rn = R.mT if tr else R
        # the inner chain sees the projected update and its own state, as if it were the parameter
        subs = [{k[len(pre):]: v for k, v in st.items() if k.startswith(pre)} for st in b.states]
        probe = p0.new_zeros(()).expand(Rn.shape[1:])
        inner = Bucket([probe] * len(b.params), [x.to(p0.dtype) for x in Rn.unbind(0)], subs, b.steps, g)
        inner.ctx = b.ctx
        for t in self.inner:
            t.update(inner)
        for st, sub in zip(b.states, subs):
            for k, v in sub.items():
                if st[pre + k] is not v:
                    st[pre + k] = v
        U = torch.stack([x.to(wd) for x in inner.updates])
        U = U.mT if tr else U  # (B, M, r)
        fu = pow2_scale(U)
        U = U * fu
        # natural orientation: U Qᵀ (m ≥ n) or (U Qᵀ)ᵀ = Q Uᵀ, written into G
        if tr:
            torch.matmul(Q, U.mT, out=G)
        else:
            torch.matmul(U, Q.mT, out=G)
        G.div_(fu).mul_(g["proj_scale"])
        m = 0.5 * torch.finfo(p0.dtype).max
        G.clamp_(-m, m)
        b.set_updates([v.to(p0.dtype).reshape(p.shape) for v, p in zip(G.unbind(0), b.params)], owned=True)
