"""PSGD Kron: a Kronecker-factored preconditioner ``P = (Q_Lᵀ Q_L) ⊗ (Q_Rᵀ Q_R)`` fitted on a Lie group.

Li, "Preconditioned Stochastic Gradient Descent" (arXiv:1512.04202) and "Curvature-Informed SGD via General
Purpose Lie-Group Preconditioners" (arXiv:2402.04553); the Kron form as in Li's psgd_torch. ``Q_L``, ``Q_R``
are upper-triangular (a side longer than ``max_size_triangular``: diagonal). ``P`` is fitted to minimise
``E[hᵀ P h + vᵀ P⁻¹ v]`` over pairs ``(v, h)``: ``h = H v`` for random ``v`` (the HVP variant, ``P → |H|⁻¹``)
or ``h = m̂`` the gradient momentum with ``v ~ N(0, I)`` (whitening, ``P → E[m̂ m̂ᵀ]^{-1/2}``). One step on
the group, per side (for the left; the right likewise with transposes)::

    A = Q_L h Q_Rᵀ;   B = Q_L^{-T} v Q_R^{-1}
    T₁ = A Aᵀ,  T₂ = B Bᵀ;   Q_L ← Q_L − μ · triu(T₁ − T₂) Q_L / ‖T₁ + T₂‖₂⁻      (diagonal: ⊙, max-norm)

with ``‖·‖₂⁻`` a lower bound of the spectral norm (one power step from the largest column), ``μ`` the
preconditioner lr. The fit runs with probability ``p_t = clip(p_max·exp(−λ (t − t₀)), p_min, p_max)``
(1 for ``t ≤ t₀``), decided once per step by a counter-based draw (resumes bit-identically). The step::

    m ← β m + (1−β) g;   u = Q_Lᵀ Q_L m̂ Q_Rᵀ Q_R;   u ← u · min(1, c / RMS(u))
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.roots import root_dtype
from ..linalg.scaling import pow2_scale, saturate
from ..linalg.triangular import tri_matmul, triu_triu
from .orthogonalize import matrix_view, set_matrices, stack_matrices
from .subset import step_generator

__all__ = ["PSGDKron", "update_probability", "norm_lower_bound", "pack_factors", "unpack_factors",
           "packed_size"]

_COIN = 2**31  # the index of the update coin in step_generator (parameters use their position)


def update_probability(t: int, p_max: float, p_min: float, decay: float, flat: int) -> float:
    """``clip(p_max · exp(−decay · max(0, t − flat)), p_min, p_max)``."""
    return min(p_max, max(p_min, p_max * math.exp(-decay * max(0, t - flat))))


def _bmv(T: Tensor, x: Tensor) -> Tensor:
    """``T x`` for a batch ``(..., d, d)`` and ``(..., d)``, one ``mv`` per matrix (a batched matmul with one
    column is many times slower than the loop on CPU)."""
    Tf, xf = T.reshape(-1, *T.shape[-2:]), x.reshape(-1, x.shape[-1])
    return torch.stack([torch.mv(a, b) for a, b in zip(Tf.unbind(0), xf.unbind(0))]).reshape(x.shape)


def norm_lower_bound(T: Tensor, bounded: bool = False) -> Tensor:
    """A lower bound of ``‖T‖₂`` for a batch of symmetric ``T`` (``(..., 1, 1)``): ``‖T x‖ / ‖x‖`` for ``x`` one
    power step from the row (= column) of largest norm, computed on ``T / max|T|`` (no overflow).
    ``bounded=True``: the caller guarantees entries whose squared row sums are finite and normal (the fit's
    ``T₁ + T₂`` of scaled ``A``, ``B``), and the normalisation pass is skipped (the same bound up to rounding).
    Rows, not columns: contiguous reductions (a column reduction is ~100× slower on CPU)."""
    tiny = torch.finfo(T.dtype).tiny
    if bounded:
        Tn, amax = T, None
        row = torch.linalg.vector_norm(T, dim=-1).argmax(dim=-1)
    else:
        amax = T.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(tiny)
        Tn = T / amax
        row = (Tn * Tn).sum(dim=-1).argmax(dim=-1)
    x = torch.gather(Tn, -2, row.view(*row.shape, 1, 1).expand(*Tn.shape[:-2], 1, Tn.shape[-1])).squeeze(-2)
    y = _bmv(Tn, x)  # = Tᵀ x
    y = y / torch.linalg.vector_norm(y, dim=-1, keepdim=True).clamp_min(tiny)
    nrm = torch.linalg.vector_norm(_bmv(Tn, y), dim=-1).view(*T.shape[:-2], 1, 1)
    return nrm if amax is None else nrm * amax


_TRI: dict[tuple[int, str], tuple[Tensor, Tensor]] = {}


def _tri_maps(d: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(pack, unpack) indices of a d × d upper triangle stored row-major in ``d(d+1)/2`` entries: ``pack`` picks
    the stored entries from the flattened matrix, ``unpack`` maps every matrix entry to its stored position
    (the strict lower triangle to the extra zero at position ``d(d+1)/2``). A few sizes are cached."""
    key = (d, str(device))
    if key not in _TRI:
        if len(_TRI) >= 8:
            _TRI.pop(next(iter(_TRI)))
        r, c = torch.triu_indices(d, d, device=device)
        pack = r * d + c
        n = pack.numel()
        unpack = torch.full((d * d,), n, dtype=torch.long, device=device)
        unpack[pack] = torch.arange(n, device=device)
        _TRI[key] = (pack, unpack)
    return _TRI[key]


def packed_size(d: int) -> int:
    """Entries of a stored d × d triangular factor (its upper triangle)."""
    return d * (d + 1) // 2


def unpack_factors(Qs: list[Tensor], d: int, dtype: torch.dtype) -> Tensor:
    """Stored factors of side ``d`` as a batch in ``dtype``: ``(B, d, d)`` upper-triangular matrices from packed
    triangles, ``(B, d)`` for diagonal factors (stored as their diagonal, ``d`` entries)."""
    P = torch.stack(Qs).to(dtype)
    if P.shape[-1] == d:  # diagonal (d = 1: the two forms coincide)
        return P
    _, unpack = _tri_maps(d, P.device)
    return torch.nn.functional.pad(P, (0, 1)).index_select(-1, unpack).view(P.shape[0], d, d)


def pack_factors(Q: Tensor, out: list[Tensor]) -> None:
    """Write the batch ``Q`` (from :func:`unpack_factors`, already in the state dtype) into the stored ``out``."""
    if Q.ndim == 3:
        pack, _ = _tri_maps(Q.shape[-1], Q.device)
        Q = Q.reshape(Q.shape[0], -1).index_select(-1, pack)
    torch._foreach_copy_(out, list(Q.unbind(0)))


def _apply(Q: Tensor, X: Tensor, side: str, transpose: bool = False) -> Tensor:
    """``Q X`` (left) or ``X Qᵀ`` (right); ``transpose``: ``Qᵀ X`` / ``X Q``. Diagonal ``Q`` are vectors."""
    if Q.ndim == X.ndim - 1:  # diagonal factor
        return X * (Q.unsqueeze(-1) if side == "L" else Q.unsqueeze(-2))
    # Q is upper-triangular: tri_matmul skips its zero triangle (half the flops of a dense product)
    if side == "L":  # Q X, or Qᵀ X with Qᵀ lower-triangular
        return tri_matmul(Q.mT, X, upper=False) if transpose else tri_matmul(Q, X)
    # X Qᵀ = (Q Xᵀ)ᵀ;  X Q = (Qᵀ Xᵀ)ᵀ
    return (tri_matmul(Q.mT, X.mT, upper=False) if transpose else tri_matmul(Q, X.mT)).mT


def _solve(Q: Tensor, X: Tensor, side: str) -> Tensor:
    """``Q^{-T} X`` (left) or ``X Q^{-1}`` (right) for upper-triangular (or diagonal) ``Q``."""
    if Q.ndim == X.ndim - 1:
        return X / (Q.unsqueeze(-1) if side == "L" else Q.unsqueeze(-2))
    if side == "L":  # Q^{-T} X = (Xᵀ Q^{-1})ᵀ: the right-side solve on Q itself (no transposed-factor copy)
        return torch.linalg.solve_triangular(Q, X.mT, upper=True, left=False).mT
    return torch.linalg.solve_triangular(Q, X, upper=True, left=False)


class PSGDKron(Transform):
    """PSGD Kron's matrix direction (module docstring), batched over the bucket; ``hvp=True``: the HVP variant.

    State per parameter (its dtype): ``exp_avg`` (parameter shape), ``Q_L`` (the upper triangle of the m × m
    factor, row-major, ``m(m+1)/2`` entries — HeavyBall's layout, half the bytes of the square; its diagonal
    ``(m,)`` when ``m > max_size_triangular`` or ``m = 1``) and ``Q_R`` likewise; :func:`unpack_factors`
    gives the matrices. The fit runs in float32 (float64 for float64
    parameters). Numerics: ``T₁`` and ``T₂`` are formed from ``h·f`` and ``v·f`` (``f = 2^-k`` of ``h``) and
    saturate, so the normalised group step is finite for any gradient scale; the preconditioned direction is
    formed from ``m̂·2^-k`` and saturates. The HVP variant costs one Hessian-vector product (double backward)
    per bucket on the steps that fit ``Q``.
    """

    same_shape = True
    hparams = {
        "momentum": HParam("float", 0.9, "β: EMA of the gradient that is preconditioned (unitless)", low=0.0,
                           high=1.0, high_open=True),
        "precond_lr": HParam("float", 0.1, "μ: step of the Lie-group fit of Q (unitless)", low=0.0, low_open=True,
                             high=1.0),
        "precond_init_scale": HParam("float", 1.0, "Q_L = Q_R = sqrt(s)·I initially (P = s² I)", low=0.0,
                                     low_open=True),
        "max_size_triangular": HParam("int", 8192, "sides longer than this get a diagonal Q", low=1, high=2**31),
        "update_prob_max": HParam("float", 1.0, "p_max: probability of a fit step early in training", low=0.0,
                                  low_open=True, high=1.0),
        "update_prob_min": HParam("float", 0.03, "p_min: floor of the fit probability", low=0.0, high=1.0),
        "update_prob_decay": HParam("float", 0.001, "λ: decay rate of the fit probability (per step)", low=0.0),
        "update_prob_flat": HParam("int", 500, "t₀: steps before the fit probability starts to decay", low=0,
                                   high=2**31),
        "clip_rms": HParam("float", 1.1, "c: the update's RMS is clipped to this (update units; 0: no clip)",
                           low=0.0),
        "seed": HParam("int", 0, "seed of the fit coin and probe vectors (counter-based with the step)", low=0),
    }

    def __init__(self, hvp: bool = False):
        self.hvp = hvp
        if hvp:  # the HVPs are taken in the engine's pre-pass, before any chain moves a parameter (see _probe)
            self.prepare = self._prepare_hvps
        self.name = "psgd_kron_hvp" if hvp else "psgd_kron"
        self.rule = ("with prob. p_t fit Q_L, Q_R on (v, h = " + ("Hv" if hvp else "m̂") + "): Q ← Q − μ triu(T₁−T₂)Q/"
                     "‖T₁+T₂‖;  u = Q_LᵀQ_L m̂ Q_RᵀQ_R, RMS-clipped")

    def check(self, group: dict, owner: str) -> None:
        if group["update_prob_min"] > group["update_prob_max"]:
            raise ValueError(f"{owner}: update_prob_min must be <= update_prob_max, got "
                             f"{group['update_prob_min']!r} > {group['update_prob_max']!r}")

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        m, n = matrix_view(p).shape if p.ndim >= 2 else (1, p.numel())
        s = math.sqrt(group["precond_init_scale"])
        big = group["max_size_triangular"]
        q = lambda d: torch.full((d,), s, dtype=p.dtype, device=p.device) if d > big or d == 1 else (  # noqa: E731
            (torch.eye(d, dtype=p.dtype, device=p.device) * s)[tuple(torch.triu_indices(d, d, device=p.device))])
        return {"exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format), "Q_L": q(m), "Q_R": q(n)}

    def _fit(self, QL: Tensor, QR: Tensor, V: Tensor, H: Tensor, mu: float) -> tuple[Tensor, Tensor]:
        # one power of two for both: T₁ − T₂ and ‖T₁ + T₂‖ scale alike, so the group step is unchanged, and
        # neither A (from h, maybe 1e38) nor B (from v, O(1)) over- or underflows in the products below
        f = pow2_scale(H)
        A = _apply(QR, _apply(QL, H * f, "L"), "R")
        B = _solve(QR, _solve(QL, V, "L"), "R")
        ef = torch.frexp(f).exponent - 1  # f = 2^ef
        ea = torch.frexp(A.abs().amax(dim=(-2, -1), keepdim=True)).exponent
        eb = torch.frexp(B.abs().amax(dim=(-2, -1), keepdim=True)).exponent + ef
        k = torch.maximum(ea, eb)
        A = A * torch.exp2((-k).clamp(-120, 120).to(A.dtype))
        B = B * torch.exp2((ef - k).clamp(-120, 120).to(B.dtype))
        new = []
        # |A|, |B| ≤ 1 now (up to the clamp of extreme exponents): T₁, T₂ ≤ the side length, no overflow
        for Q, side in ((QL, "L"), (QR, "R")):
            if Q.ndim == A.ndim - 1:
                dim = -1 if side == "L" else -2
                T1 = (A * A).sum(dim)
                T2 = (B * B).sum(dim)
                nrm = (T1 + T2).amax(dim=-1, keepdim=True).clamp_min(torch.finfo(A.dtype).tiny)
                new.append(Q - mu * (T1 - T2) / nrm * Q)
            else:
                T1 = A @ A.mT if side == "L" else A.mT @ A
                T2 = B @ B.mT if side == "L" else B.mT @ B
                nrm = norm_lower_bound(T1 + T2, bounded=True).clamp_min(torch.finfo(A.dtype).tiny)
                D = T1.sub_(T2).mul_(mu / nrm)  # in place (T₁ is not used again); triu_triu reads triu(D)
                new.append(Q - triu_triu(D, Q))  # triangular times triangular: upper-triangular
        return new[0], new[1]

    def update(self, b: Bucket) -> None:
        g = b.group
        p0 = b.params[0]
        dt, wd = p0.dtype, root_dtype(p0.dtype)
        beta = g["momentum"]
        m = b.state(self, "exp_avg")
        torch._foreach_lerp_(m, b.updates, 1 - beta)
        mh = [x * (1 / (1 - beta**t) if beta > 0 else 1.0) for x, t in zip(m, b.steps)]
        as_mat = (lambda xs: stack_matrices(xs, dtype=wd)) if p0.ndim >= 2 else (
            lambda xs: torch.stack(xs).to(wd).unsqueeze(-2))
        M = as_mat(mh)
        rows, cols = M.shape[-2:]
        QLs, QRs = b.state(self, "Q_L"), b.state(self, "Q_R")
        probed = b.ctx.shared("psgd.hvp", dict).pop(id(b), None) if self.hvp and b.ctx is not None else None
        fit, V, H = probed if probed is not None else self._probe(b)
        if fit:
            if H is None:
                H = M[fit]
            QL = unpack_factors([QLs[i] for i in fit], rows, wd)
            QR = unpack_factors([QRs[i] for i in fit], cols, wd)
            QL, QR = self._fit(QL, QR, V, H, g["precond_lr"])
            QL, QR = saturate(QL, dt).to(dt), saturate(QR, dt).to(dt)  # what the state holds
            pack_factors(QL, [QLs[i] for i in fit])
            pack_factors(QR, [QRs[i] for i in fit])
        if len(fit) == len(b.steps):  # the fitted factors are exactly upper-triangular: what unpacking returns
            QL, QR = QL.to(wd), QR.to(wd)
        else:
            QL, QR = unpack_factors(QLs, rows, wd), unpack_factors(QRs, cols, wd)
        f = pow2_scale(M)
        U = _apply(QL, _apply(QL, _apply(QR, _apply(QR, M * f, "R"), "R", transpose=True), "L"), "L", transpose=True)
        U = saturate(U * (1 / f), wd)  # exact: f is a power of two
        if g["clip_rms"] > 0:
            fu = pow2_scale(U)
            rms = (U * fu).square().mean(dim=(-2, -1), keepdim=True).sqrt() / fu
            U = U * (g["clip_rms"] / rms.clamp_min(torch.finfo(wd).tiny)).clamp_max(1.0)
        if p0.ndim >= 2:
            set_matrices(b, U, dt)
        else:
            b.set_updates([u.reshape(p.shape).to(dt) for u, p in zip(U.unbind(0), b.params)], owned=True)

    def _probe(self, b: Bucket) -> tuple[list[int], Tensor | None, Tensor | None]:
        """``(fit, V, H)``: the bucket positions whose factors are fitted this step (the counter-based coin),
        their probe vectors ``V`` (``(len(fit), m, n)``, the fit dtype) and, for the HVP variant, ``H = H v``
        (whitening: None, ``h = m̂`` is taken in :meth:`update`); ``([], None, None)`` when nothing is fitted."""
        g = b.group
        p0 = b.params[0]
        wd = root_dtype(p0.dtype)
        fit = [i for i, t in enumerate(b.steps)
               if torch.rand((), generator=step_generator(g["seed"], t, _COIN)).item()
               < update_probability(t, g["update_prob_max"], g["update_prob_min"], g["update_prob_decay"],
                                    g["update_prob_flat"])]
        if not fit:
            return fit, None, None
        shape = tuple(matrix_view(p0).shape) if p0.ndim >= 2 else (1, p0.numel())
        order = {id(p): i for i, p in enumerate(g["params"])}
        V = torch.stack([torch.randn(shape, generator=step_generator(g["seed"], b.steps[i], order[id(b.params[i])]),
                                     dtype=wd) for i in fit]).to(p0.device)  # CPU draws: same on any device
        return fit, V, self._hvps(b, fit, V) if self.hvp else None

    def _prepare_hvps(self, b: Bucket) -> None:
        """The HVP variant's pre-pass: the probe pairs ``(v, H v)`` of this bucket, taken before any chain of the
        step moves a parameter. The closure's graph saved the parameters (a matmul's weight, a LayerNorm's
        scale); a double backward through it after an earlier bucket's step wrote a parameter in place would
        read a tensor at a newer version (autograd refuses it), so the products cannot wait for ``update``."""
        b.ctx.shared("psgd.hvp", dict)[id(b)] = self._probe(b)

    def _hvps(self, b: Bucket, fit: list[int], V: Tensor) -> Tensor:
        """``H v`` for the probe vectors of the fitted parameters (one double backward; zeros elsewhere)."""
        ctx = b.ctx
        where = {id(p): i for i, p in enumerate(ctx.params)}
        vecs = [torch.zeros_like(p) for p in ctx.params]
        for j, i in enumerate(fit):
            p = b.params[i]
            vecs[where[id(p)]] = V[j].reshape(p.shape).to(p.dtype)
        hv = ctx.hvp(vecs)
        return torch.stack([matrix_view(hv[where[id(b.params[i])]]).reshape(V.shape[-2:]).to(V.dtype) for i in fit])
