"""PolyStep (Le, "Training Non-Differentiable Networks via Optimal Transport", arXiv:2605.01928): function
values at the vertices of small rotated polytopes, softmax weights over the cost matrix, barycentric step.

The search space: each parameter tensor of shape ``(m, n…)`` gets ``c = r(m + n')`` coordinates
(``n' = ∏ n…``, ``r = min(rank, m, n')``) that act on it through a fixed Gaussian projection
``P ∈ R^{mn'×c}`` with entries ``N(0, 1/c)`` (unit gain per coordinate; the paper's per-layer
"HybridSubspace"); a 1-D tensor is its own coordinates (no projection). The coordinates are cut into
*particles* of ``d = particle_dim`` consecutive coordinates (the last one zero-padded). One step, for every
particle ``b`` at once (all costs measured at the same point ``x``)::

    u_bj = R_b v_j                   v_j: the polytope's unit vertices (simplex: d+1, orthoplex: 2d),
                                     R_b ~ Haar on SO(d), fresh every step
    C_bj = f(x + P_b·(probe·u_bj))   one forward pass per (particle, vertex): the cost matrix
    W_bj = softmax_j(−(C_bj − min_j C_bj)/eps)      (the one-sided limit of entropic OT: row sums only)
    x   ← x + Σ_b P_b·(lr·Σ_j W_bj u_bj)            (barycentric projection onto the step vertices)

``P_b`` (the ``d`` columns of the projection that belong to particle ``b``) and ``R_b`` are regenerated from
``seed`` (and the step count, for ``R_b``): nothing is stored and a resumed run continues bit-identically.
A probe perturbs one tensor in place and copies its saved value back, so ``x`` is restored exactly.
Non-finite costs get weight 0 (a row with none finite does not move).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from .zeroth_order import _check_contiguous, _mix, refuse_nonfinite, trainable

__all__ = ["PolyStepUpdate", "vertices", "rotation", "projection_block", "coordinates", "POLYSTEP_HPARAMS"]

_ROT, _PROJ = 0x5EED_0001, 0x5EED_0002  # stream tags: rotations and projections never share a seed

POLYSTEP_HPARAMS = {
    "probe": HParam("float", 0.1, "probe radius: distance of a probe from its particle (coordinate units)",
                    low=0.0, low_open=True),
    "eps": HParam("float", 0.1, "softmax temperature ε over a row of the cost matrix (loss units)", low=0.0,
                  low_open=True),
    "rank": HParam("int", 4, "rank r of the per-tensor subspace (r(m + n') coordinates per matrix)", low=1,
                   high=4096),
    "particle_dim": HParam("int", 8, "coordinates per particle: the polytope's dimension d", low=2, high=64),
    "polytope": HParam("choice", "simplex", "vertex template: 'simplex' (d+1) or 'orthoplex' (2d)",
                       choices=("simplex", "orthoplex")),
    "seed": HParam("int", 0, "seed of the projections and rotations", low=0, high=2**31 - 1),
}


def vertices(kind: str, d: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Unit-norm vertices of the template, centred at 0: the regular simplex (``(d+1, d)``) or the orthoplex
    ``±e_i`` (``(2d, d)``)."""
    if kind == "orthoplex":
        eye = torch.eye(d, dtype=torch.float64)
        return torch.cat([eye, -eye]).to(dtype)
    # the d+1 standard basis vectors of R^{d+1}, centred, in an orthonormal basis of the hyperplane Σ = 0
    e = torch.eye(d + 1, dtype=torch.float64) - 1.0 / (d + 1)
    q, r = torch.linalg.qr(e[:, :d])  # Gram–Schmidt on the first d (signs fixed so diag(r) > 0)
    basis = q * torch.sign(torch.diagonal(r))  # (d+1, d), an orthonormal basis of {Σ = 0}
    v = e @ basis
    return (v / v.norm(dim=1, keepdim=True)).to(dtype)


def rotation(seed: int, step: int, i: int, b: int, d: int) -> Tensor:
    """Haar-distributed ``R ∈ SO(d)`` (float64) for particle ``b`` of parameter ``i`` at ``step``: QR of a
    Gaussian matrix with the signs of diag(R) moved into Q (Mezzadri), the first column flipped if det < 0."""
    g = torch.Generator().manual_seed(_mix(seed, step, i, b, _ROT))
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    s = torch.sign(torch.diagonal(r))
    q = q * torch.where(s == 0, torch.ones_like(s), s)
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def coordinates(shape: torch.Size | tuple[int, ...], rank: int) -> tuple[int, bool]:
    """(number of subspace coordinates, projected?) of a tensor of this shape."""
    if len(shape) >= 2:
        m, n = shape[0], math.prod(shape[1:])
        r = min(rank, m, n)
        return r * (m + n), True
    return math.prod(shape), False


def projection_block(shape: torch.Size | tuple[int, ...], rank: int, seed: int, i: int, b: int, d: int,
                     dtype: torch.dtype = torch.float64) -> Tensor:
    """Columns ``b·d … b·d + d − 1`` of parameter ``i``'s projection, as a ``(numel, d)`` matrix: Gaussian with
    variance ``1/c`` (``c`` its coordinate count), zero columns past ``c``; for a 1-D tensor the identity's."""
    c, projected = coordinates(shape, rank)
    numel = math.prod(shape)
    width = max(0, min(d, c - b * d))
    out = torch.zeros(numel, d, dtype=dtype)
    if width == 0:
        return out
    if projected:
        g = torch.Generator().manual_seed(_mix(seed, i, b, _PROJ))
        out[:, :width] = (torch.randn(width, numel, generator=g, dtype=torch.float64) / math.sqrt(c)).T.to(dtype)
    else:
        idx = torch.arange(b * d, b * d + width)
        out[idx, torch.arange(width)] = 1
    return out


def _groups(ctx: Any) -> dict[int, dict]:
    return {id(p): g for g in ctx.opt.param_groups for p in g["params"]}


def _costs(ctx: Any, step: int) -> dict[str, Any]:
    """All probes of one step: {id(param): the per-particle directions Σ_j W_bj u_bj, as a (numel,) update
    per unit lr}; sets ``ctx.loss`` to f(x)."""
    params = trainable(ctx)
    _check_contiguous(ctx.name, params)
    groups = _groups(ctx)
    f0 = ctx.value()
    ctx.loss = f0
    if not refuse_nonfinite(ctx, f0, (float(f0),), "x"):
        return {}
    out: dict[int, Tensor] = {}
    for i, p in enumerate(params):
        g = groups[id(p)]
        d, rank, seed = g["particle_dim"], g["rank"], g["seed"]
        c, _ = coordinates(p.shape, rank)
        verts = vertices(g["polytope"], d)
        work = p.dtype if p.dtype in (torch.float32, torch.float64) else torch.float32
        flat = p.detach().view(-1)
        saved = flat.clone()
        direction = torch.zeros(p.numel(), dtype=torch.float64)
        for b in range(math.ceil(c / d)):
            proj = projection_block(p.shape, rank, seed, i, b, d)
            u = verts @ rotation(seed, step, i, b, d).T  # (V, d): rows R v_j
            offsets = (proj @ u.T * g["probe"]).T.to(device=p.device, dtype=work)  # (V, numel), on p's device
            cost = torch.empty(u.shape[0], dtype=torch.float64)
            try:
                for j in range(u.shape[0]):
                    flat.copy_((saved.to(work) + offsets[j]).to(p.dtype))
                    cost[j] = float(ctx.value())
            finally:
                flat.copy_(saved)
            finite = torch.isfinite(cost)
            if not bool(finite.any()):
                continue
            cost = torch.where(finite, cost, torch.inf)
            w = torch.softmax(-(cost - cost[finite].min()) / g["eps"], dim=0)
            direction += proj @ (w @ u)
        out[id(p)] = direction
    return out


class PolyStepUpdate(Transform):
    """The whole PolyStep step: probes and weights in the pre-pass (needs ``{"value"}``), the barycentric
    move ``x ← x + lr·Σ_b P_b Σ_j W_bj u_bj`` in ``apply``. Stateless."""

    name = "polystep"
    rule = ("C_bj = f(x + P_b·probe·R_b v_j);  W = softmax_j(−(C − min_j C)/ε);  "
            "x ← x + lr·Σ_b P_b Σ_j W_bj R_b v_j")
    hparams = POLYSTEP_HPARAMS

    def prepare(self, b: Bucket) -> None:
        b.ctx.shared("polystep", lambda: _costs(b.ctx, b.steps[0]))

    def update(self, b: Bucket) -> None:
        b.ctx.shared("polystep", lambda: _costs(b.ctx, b.steps[0]))

    def apply(self, b: Bucket) -> None:
        moves, lr = b.ctx.shared("polystep", lambda: _costs(b.ctx, b.steps[0])), b.group["lr"]
        if lr == 0:
            return
        for p in b.params:
            m = moves.get(id(p))
            if m is not None:
                p.add_(m.view_as(p).to(device=p.device, dtype=p.dtype), alpha=lr)
