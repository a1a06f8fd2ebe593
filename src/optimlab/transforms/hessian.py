"""Diagonal-Hessian preconditioners from Hutchinson probes: Sophia-H, OASIS and SANIA's Hutchinson variant.

All three read ``ĥ = z ⊙ (H z)`` (Hutchinson's diagonal estimator, unbiased: E[z zᵀ] = I gives
E[z ⊙ Hz] = diag H; Bekas, Kokiopoulou, Saad 2007) from the step context's Hessian-vector product (recipes
declare ``needs={"loss", "hvp"}``; the closure calls ``loss.backward(create_graph=True)``).

The probes are a pure function of (seed, step, parameter index): :func:`probe`. A checkpoint therefore
resumes bit-identically (no generator state to save), and the literal transcriptions in
:mod:`optimlab.reference.curvature` are fed the very same probes. The HVP is one double backward over all
parameters, taken in the pre-pass (``prepare``), before any parameter moves: the closure's graph holds the
parameters' values and would refuse tensors changed in place.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.scaling import saturate, saturate_
from .polyak import F_STAR, SaniaPolyak

__all__ = ["probe", "hutchinson_diagonal", "SophiaClip", "Oasis", "SaniaHutchinson", "SaddleFreeNewton",
           "RegularizedNewton"]

SEED = HParam("int", 0, "seed of the Hutchinson probes (probes are a function of seed, step and parameter)",
              low=0)
PROBES = ("rademacher", "gaussian")


def probe(p: Tensor, seed: int, step: int, index: int, kind: str = "rademacher") -> Tensor:
    """The Hutchinson probe ``z`` for parameter ``index`` at ``step``: Rademacher (±1) or N(0, 1), of ``p``'s
    shape and dtype, drawn from a generator seeded by (seed, step, index) alone."""
    gen = torch.Generator(device=p.device).manual_seed(((seed * 1_000_003 + step) * 65_537 + index) % (2**62))
    dtype = torch.float64 if p.dtype == torch.float64 else torch.float32
    if kind == "rademacher":
        z = torch.randint(0, 2, p.shape, generator=gen, device=p.device).to(dtype) * 2 - 1
    else:
        z = torch.randn(p.shape, generator=gen, device=p.device, dtype=dtype)
    return z.to(p.dtype)


def hutchinson_diagonal(b: Bucket, seed: int, kind: str) -> list[Tensor]:
    """``ĥ = z ⊙ Hz`` for the bucket's parameters, from one HVP over all parameters shared by every bucket of
    the step (call it from ``prepare``). Saturated to the finite range (a huge Hessian gives a huge, finite ĥ)."""
    ctx = b.ctx

    def compute() -> dict[int, Tensor]:
        opt_state = ctx.opt.state
        zs = [probe(p, seed, int(opt_state[p].get("step", 0)) if p in opt_state else 0, i, kind)
              for i, p in enumerate(ctx.params)]
        hz = ctx.hvp(zs)
        return {id(p): saturate(z * h.to(z.dtype)) for p, z, h in zip(ctx.params, zs, hz)}

    diag = ctx.shared(f"hutchinson.{seed}.{kind}", compute)
    return [diag[id(p)] for p in b.params]


class SophiaClip(Transform):
    """Sophia (Liu, Li, Hall, Liang, Ma, "Sophia: A Scalable Stochastic Second-order Optimizer for Language
    Model Pre-training", arXiv:2305.14342), Algorithm 3 with the Hutchinson estimator (Sophia-H):
    ``m ← β₁m + (1−β₁)g``; at steps t ≡ 1 (mod k): ``h ← β₂h + (1−β₂)ĥ``, ĥ = u ⊙ Hu, u ~ N(0, I);
    ``u_t = clip(m / max(γ·h, ε), 1)`` (elementwise clip to [−1, 1]); the chain applies ``x ← x − lr·u``."""

    name = "sophia"
    rule = "m ← β₁m + (1−β₁)g;  every k steps h ← β₂h + (1−β₂)·u⊙Hu;  u ← clip(m / max(ρ·h, ε), 1)"
    hparams = {
        "betas": HParam("betas", (0.965, 0.99), "(β₁, β₂): EMA of the gradient and of the curvature estimate",
                        low=0.0, high=1.0, high_open=True),
        "rho": HParam("float", 0.01, "γ, the scale of h in the clip's denominator (unitless)", low=0.0,
                      low_open=True),
        "eps": HParam("float", 1e-12, "ε, floor of γ·h (curvature units)", low=0.0, low_open=True),
        "update_period": HParam("int", 10, "k: steps between curvature estimates", low=1),
        "seed": SEED,
    }

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        z = torch.zeros_like(p, memory_format=torch.preserve_format)
        return {"exp_avg": z, "hessian": z.clone()}

    def _due(self, b: Bucket) -> bool:
        return (b.steps[0] - 1) % b.group["update_period"] == 0

    def prepare(self, b: Bucket) -> None:
        if self._due(b):
            b.ctx.shared("sophia.h_hat", dict)[id(b)] = hutchinson_diagonal(b, b.group["seed"], "gaussian")

    def update(self, b: Bucket) -> None:
        beta1, beta2 = b.group["betas"]
        m, h = b.state(self, "exp_avg"), b.state(self, "hessian")
        torch._foreach_mul_(m, beta1)
        torch._foreach_add_(m, b.grads, alpha=1 - beta1)
        h_hat = b.ctx.shared("sophia.h_hat", dict).pop(id(b), None)
        if h_hat is not None:
            torch._foreach_mul_(h, beta2)
            torch._foreach_add_(h, h_hat, alpha=1 - beta2)
            saturate_(h)
        den = torch._foreach_mul(h, b.group["rho"])
        torch._foreach_clamp_min_(den, b.group["eps"])
        u = torch._foreach_div(m, den)  # |m|/ε may be inf: the clip maps it to ±1, never NaN (den > 0)
        torch._foreach_clamp_min_(u, -1.0)
        torch._foreach_clamp_max_(u, 1.0)
        b.set_updates(u, owned=True)


class Oasis(Transform):
    """OASIS (Jahani, Rusakov, Shi, Richtárik, Mahoney, Takáč, "Doubly Adaptive Scaled Algorithm for Machine
    Learning Using Second-Order Information", arXiv:2109.05198), Algorithm 1 (adaptive step):
    ``D_k = β₂D_{k−1} + (1−β₂)·z⊙Hz`` (D₀ = z⊙Hz at x₀), ``D̂ = max(|D|, α)``,
    ``η_k = min(√(1+θ_{k−1})·η_{k−1}, ‖x_k − x_{k−1}‖_D̂ / (2‖g_k − g_{k−1}‖*_D̂))``, ``θ_k = η_k/η_{k−1}``,
    ``u = η_k·D̂⁻¹g`` (η₀ given; norms over all parameters, ‖v‖²_D̂ = Σ D̂v², ‖v‖*² = Σ v²/D̂). The first bound
    is void at k = 1 (θ₀ = +∞); a zero gradient difference leaves only it."""

    name = "oasis"
    rule = ("D ← β₂D + (1−β₂)z⊙Hz;  D̂ = max(|D|, α);  η ← min(√(1+θ)η, ‖Δx‖_D̂ / (2‖Δg‖*_D̂));  "
            "θ ← η/η_prev;  u ← η·g/D̂")
    hparams = {
        "beta2": HParam("float", 0.99, "β₂, EMA of the Hutchinson diagonal (unitless)", low=0.0, high=1.0,
                        high_open=True),
        "alpha": HParam("float", 1e-3, "α, floor of |D| (curvature units: loss per parameter²)", low=0.0,
                        low_open=True),
        "eta0": HParam("float", 1e-2, "η₀, the first step's size (unitless: multiplies D̂⁻¹g)", low=0.0,
                       low_open=True),
        "seed": SEED,
    }

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        z = torch.zeros_like(p, memory_format=torch.preserve_format)
        # η and θ: Python floats (a checkpoint keeps them exact; torch casts tensor state to the param dtype)
        return {"D": z, "prev_x": z.clone(), "eta": float(group["eta0"]), "theta": 1.0}

    def prepare(self, b: Bucket) -> None:
        ctx, beta2 = b.ctx, b.group["beta2"]
        h_hat = hutchinson_diagonal(b, b.group["seed"], "rademacher")
        D = [hh.clone() if t == 1 else beta2 * d + (1 - beta2) * hh
             for hh, d, t in zip(h_hat, b.state(self, "D"), b.steps)]
        saturate_(D)
        d_hat = [d.abs().clamp_min(b.group["alpha"]) for d in D]
        ctx.shared("oasis.new", dict)[id(b)] = (D, d_hat)
        if b.steps[0] > 1:  # global ‖Δx‖²_D̂ and ‖Δg‖*², in float64 (squares of 1e38 gradients overflow fp32)
            prev = self._grads_at_prev(b)
            dx = sum(((x.double() - px.double()).square() * dh.double()).sum()
                     for x, px, dh in zip(b.params, b.state(self, "prev_x"), d_hat))
            dg = sum(((g.double() - pg.double()).square() / dh.double()).sum()
                     for g, pg, dh in zip(b.grads, prev, d_hat))
            ctx.add("oasis.dx", torch.as_tensor(dx, dtype=torch.float64))
            ctx.add("oasis.dg", torch.as_tensor(dg, dtype=torch.float64))

    @staticmethod
    def _grads_at_prev(b: Bucket) -> list[Tensor]:
        """∇f_{I_k}(x_{k−1}): this step's batch at the previous point (one re-evaluation shared by all
        buckets, after the HVP: the re-evaluation restores the parameters in place)."""
        ctx = b.ctx

        def compute() -> dict[int, Tensor]:
            st = ctx.opt.state
            deltas = [st[p]["oasis.prev_x"] - p.detach() if p in st and "oasis.prev_x" in st[p] else None
                      for p in ctx.params]
            _, grads = ctx.reevaluate(deltas)
            return {id(p): (torch.zeros_like(p) if g is None else g.detach()) for p, g in zip(ctx.params, grads)}

        prev = ctx.shared("oasis.prev_grads", compute)
        return [prev[id(p)] for p in b.params]

    def _eta(self, b: Bucket) -> tuple[float, float]:
        eta_prev, theta_prev = float(b.states[0]["oasis.eta"]), float(b.states[0]["oasis.theta"])
        if b.steps[0] == 1:
            return eta_prev, theta_prev
        dx, dg = float(b.ctx.total("oasis.dx")), float(b.ctx.total("oasis.dg"))
        bound = math.sqrt(dx) / (2 * math.sqrt(dg)) if dg > 0 else math.inf
        grow = math.inf if b.steps[0] == 2 else math.sqrt(1 + theta_prev) * eta_prev
        eta = min(grow, bound)
        if not math.isfinite(eta):  # no information (Δg = 0 at k = 1): keep the previous step size
            eta = eta_prev
        eta = min(eta, 1e300)
        return eta, (eta / eta_prev if eta_prev > 0 else 1.0)

    def update(self, b: Bucket) -> None:
        eta, theta = b.ctx.shared("oasis.eta", lambda: self._eta(b))
        D, d_hat = b.ctx.shared("oasis.new", dict).pop(id(b))
        torch._foreach_copy_(b.state(self, "D"), D)
        torch._foreach_copy_(b.state(self, "prev_x"), b.params)
        for st in b.states:
            st["oasis.eta"], st["oasis.theta"] = eta, theta
        u = [saturate(g.double() * (eta / dh.double()), g.dtype).to(g.dtype) for g, dh in zip(b.grads, d_hat)]
        b.set_updates(u, owned=True)


class SaniaHutchinson(SaniaPolyak):
    """SANIA's preconditioned Polyak step (Abdukhakimov et al., arXiv:2312.17369) with B from Hutchinson's
    estimator (our reading of the paper's diagonal-Hessian option, as in OASIS):
    ``B ← β₂B + (1−β₂)·z⊙Hz`` (B₁ = z⊙Hz), ``B̂ = max(|B|, α)``, ``u = (f − f*)₊/‖g‖²_{B̂⁻¹} · B̂⁻¹g``."""

    name = "sania_hutchinson"
    rule = "B ← β₂B + (1−β₂)z⊙Hz;  B̂ = max(|B|, α);  d = g/B̂;  u ← (f − f*)/⟨g, d⟩ · d"
    hparams = {"beta2": HParam("float", 0.999, "β₂, EMA of the Hutchinson diagonal (unitless)", low=0.0,
                               high=1.0, high_open=True),
               "alpha": HParam("float", 1e-4, "α, floor of |B| (curvature units: loss per parameter²)",
                               low=0.0, low_open=True),
               "f_star": F_STAR, "seed": SEED}

    def prepare(self, b: Bucket) -> None:
        beta2 = b.group["beta2"]
        h_hat = hutchinson_diagonal(b, b.group["seed"], "rademacher")
        new = [hh.clone() if t == 1 else beta2 * B + (1 - beta2) * hh
               for hh, B, t in zip(h_hat, b.state(self, "precond"), b.steps)]
        saturate_(new)
        d = [g / B.abs().clamp_min(b.group["alpha"]) for g, B in zip(b.grads, new)]
        saturate_(d)
        b.ctx.shared("sania.buckets", dict)[id(b)] = (new, d)
        b.ctx.add("sania.gBg", sum((g.double() * x.double()).sum() for g, x in zip(b.grads, d)))

    def update(self, b: Bucket) -> None:
        # γ·d in float64, saturated: with tiny gradients γ = (f − f*)/Σg²/B̂ exceeds the float32 range
        gamma = b.ctx.shared("sania.gamma", lambda: self._gamma(b))
        new, d = b.ctx.shared("sania.buckets", dict).pop(id(b))
        torch._foreach_copy_(b.state(self, "precond"), new)
        b.set_updates([saturate(x.double() * gamma, x.dtype).to(x.dtype) for x in d], owned=True)


class SaddleFreeNewton(Transform):
    """Saddle-free Newton in a Krylov subspace (Dauphin, Pascanu, Gulcehre, Cho, Ganguli, Bengio, "Identifying
    and attacking the saddle point problem in high-dimensional non-convex optimization", arXiv:1406.2572):
    k Lanczos steps on H from g (all parameters, one flat vector) give H ≈ VΛVᵀ on span{g, Hg, …};
    ``u = V (|Λ| + λI)⁻¹ Vᵀ g`` — Newton's step with every curvature made positive, so negative-curvature
    directions are descended, not climbed. g lies in the subspace (it starts it)."""

    name = "saddle_free_newton"
    rule = "V, Λ from k Lanczos steps on H started at g;  u ← V(|Λ| + λI)⁻¹Vᵀg"
    hparams = {"krylov_dim": HParam("int", 20, "k, Lanczos steps (Hessian-vector products) per step", low=1),
               "damp": HParam("float", 1.0, "λ, added to |Λ| (curvature units: loss per parameter²)", low=0.0,
                              low_open=True)}

    def prepare(self, b: Bucket) -> None:
        b.ctx.shared("sfn.step", lambda: self._direction(b))

    @staticmethod
    def _direction(b: Bucket) -> dict[int, Tensor]:
        from ..diagnostics.lanczos import LanczosProcess
        from ..diagnostics.operators import flatten

        ctx, k, lam = b.ctx, b.group["krylov_dim"], b.group["damp"]
        params = ctx.params

        def split(v: Tensor) -> dict[int, Tensor]:  # float64 pieces (cast and saturated in update)
            return {id(p): c.view(p.shape) for p, c in zip(params, torch.split(v, [q.numel() for q in params]))}

        g = flatten([p.grad.detach() if p.grad is not None else None for p in params], params, torch.float64)
        norm = float(g.norm())
        if not (norm > 0 and math.isfinite(norm)):
            return split(torch.zeros_like(g))
        op = ctx.hessian_operator()
        proc = LanczosProcess(op, (g / norm), min(k, op.dim))
        while proc.steps < proc.max_steps and not proc.done:
            proc.step()
        theta, S = torch.linalg.eigh(proc.tridiagonal().to(g.device))
        V = proc.Q[:proc.steps].to(torch.float64).T @ S.to(torch.float64)
        theta = torch.nan_to_num(theta, nan=0.0, posinf=1e300, neginf=-1e300)
        return split(V @ ((V.T @ g) / (theta.abs() + lam)))

    def update(self, b: Bucket) -> None:
        u = b.ctx.shared("sfn.step", dict)
        b.set_updates([saturate(u[id(p)], p.dtype).to(p.dtype) for p in b.params], owned=True)


class RegularizedNewton(Transform):
    """Gradient-regularised Newton (Mishchenko, "Regularized Newton Method with Global O(1/k²) Convergence",
    arXiv:2112.02089; Doikov & Nesterov): ``u = (H + λ_k I)⁻¹g`` with ``λ_k = √(L·‖g‖)`` (all parameters as
    one vector). Dense eigendecomposition of H when the parameter count is ≤ ``max_dense`` (H from as many
    HVPs), else conjugate gradients on HVPs. Negative curvature (the methods are for convex f): the dense path
    floors each eigenvalue of H + λI at λ; CG stops at the first direction of non-positive curvature."""

    name = "regularized_newton"
    rule = "λ = √(L‖g‖);  u ← (H + λI)⁻¹g  (dense eigh, or CG on HVPs)"
    hparams = {"lipschitz": HParam("float", 10.0, "L, Lipschitz constant of the Hessian (loss per parameter³)",
                                   low=0.0, low_open=True),
               "max_dense": HParam("int", 100, "largest parameter count solved densely (H from that many HVPs)",
                                   low=1),
               "cg_iters": HParam("int", 20, "CG iterations beyond max_dense (HVPs per step)", low=1)}

    def prepare(self, b: Bucket) -> None:
        b.ctx.shared("grn.step", lambda: self._direction(b))

    @staticmethod
    def _direction(b: Bucket) -> dict[int, Tensor]:
        from ..diagnostics.operators import flatten

        ctx, params = b.ctx, b.ctx.params
        g = flatten([p.grad.detach() if p.grad is not None else None for p in params], params, torch.float64)
        norm = float(g.norm())
        out = torch.zeros_like(g)
        if norm > 0 and math.isfinite(norm):
            lam = math.sqrt(b.group["lipschitz"] * norm)
            op = ctx.hessian_operator()
            if op.dim <= b.group["max_dense"]:
                H = op.to_dense().to(torch.float64)
                w, V = torch.linalg.eigh(0.5 * (H + H.T))
                w = torch.nan_to_num(w, nan=0.0, posinf=1e300, neginf=-1e300)
                out = V @ ((V.T @ g) / (w + lam).clamp_min(lam))
            else:
                out = RegularizedNewton._cg(op, g, lam, b.group["cg_iters"])
        return {id(p): c.view(p.shape) for p, c in zip(params, torch.split(out, [q.numel() for q in params]))}

    @staticmethod
    def _cg(op: Any, g: Tensor, lam: float, iters: int) -> Tensor:
        x, r = torch.zeros_like(g), g.clone()
        p, rr = r.clone(), float(r @ r)
        for _ in range(iters):
            Ap = op.matvec(p.to(op.dtype)).to(torch.float64) + lam * p
            pAp = float(p @ Ap)
            if not pAp > 0:
                return x if x.any() else g / lam
            a = rr / pAp
            x, r = x + a * p, r - a * Ap
            rr_new = float(r @ r)
            if rr_new <= 1e-20 * float(g @ g):
                break
            p, rr = r + (rr_new / rr) * p, rr_new
        return x

    def update(self, b: Bucket) -> None:
        u = b.ctx.shared("grn.step", dict)
        b.set_updates([saturate(u[id(p)], p.dtype).to(p.dtype) for p in b.params], owned=True)
