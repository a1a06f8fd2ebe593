"""Gauss–Newton / Fisher preconditioners on the model's outputs (need ``"outputs"``: core/model_batch.py).

Every transform here works on all parameters of the optimizer as one flat float64 vector ``g`` (the engine's
gradients, so that anything the closure or hooks add to ``.grad`` is preconditioned too) and the step's
:class:`~optimlab.core.model_batch.OutputCurvature` (``G = Jᵀ H_f J``, the generalised Gauss–Newton matrix of
the mean loss, equal to the Fisher of the model's predictive distribution for both loss kinds). The direction
is computed once per step in the pre-pass (``prepare``, before any parameter moves) and shared by the buckets.

* :class:`NaturalGradient`: ``u = (G + λI)⁻¹g``: dense (G from the per-sample Jacobian, Cholesky) up to
  ``max_dense`` parameters, conjugate gradients on GGN-vector products beyond;
* :class:`ExactGaussNewton` (EGN): the same LM direction by the Duncan–Guttman / Woodbury identity (a
  (bc) × (bc) solve), an Armijo backtracking line search and adaptive LM damping;
* :class:`SophiaG`: Sophia's clipped update with the Gauss–Newton–Bartlett diagonal estimate;
* :class:`ThermodynamicNGD`: a simulated Ornstein–Uhlenbeck solve of ``(G + λI)x = g`` (TNGD).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.model_batch import output_grad, sample_targets
from ..core.transform import Bucket, Transform
from ..linalg.scaling import saturate, saturate_
from .hessian import SEED, SophiaClip

__all__ = ["NaturalGradient", "ExactGaussNewton", "SophiaG", "ThermodynamicNGD", "flat_grad", "split",
           "dense_ggn", "woodbury_direction", "cg_direction"]

DAMPING = HParam("float", 1e-3, "λ, added to G (curvature units: loss per parameter²)", low=0.0, low_open=True)


def flat_grad(params: list[Tensor]) -> Tensor:
    """The gradients of ``params`` as one float64 vector (None: zeros)."""
    return torch.cat([(p.grad.detach() if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(torch.float64)
                      for p in params])


def split(v: Tensor, params: list[Tensor]) -> dict[int, Tensor]:
    """A flat vector cut into one float64 piece per parameter, keyed by ``id(p)``."""
    return {id(p): c.view(p.shape) for p, c in zip(params, torch.split(v, [q.numel() for q in params]))}


def _usable(g: Tensor) -> bool:
    norm = float(g.norm())
    return norm > 0 and math.isfinite(norm)


def dense_ggn(curv: Any) -> Tensor:
    """``G = (1/b) JᵀQJ`` (d × d, float64) from the per-sample Jacobian."""
    J = curv.jacobian()
    G = J.T @ curv.output_hessian_apply(J) / curv.f.shape[0]
    return 0.5 * (G + G.T)


def _spd_solve(A: Tensor, g: Tensor) -> Tensor:
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) == 0:
        return torch.cholesky_solve(g.unsqueeze(1), L).squeeze(1)
    w, V = torch.linalg.eigh(A)  # not numerically SPD (λ below rounding of a huge G): floor the spectrum
    return V @ ((V.T @ g) / w.clamp_min(float(w.abs().max()) * 1e-15 + 1e-300))


def woodbury_direction(J: Tensor, Q: Tensor, g: Tensor, damp: float, batch: int) -> Tensor:
    """``(G + λI)⁻¹g`` with ``G = (1/b)JᵀQJ``, via ``(1/λ)(g − Jᵀ(bλI + QJJᵀ)⁻¹QJg)``: one (bc) × (bc) solve.
    For ``g = (1/b)Jᵀr`` it is ``Jᵀ(QJJᵀ + bλI)⁻¹r``, the EGN direction (linalg.gauss_newton.egn_direction)."""
    n = J.shape[0]
    A = Q @ (J @ J.T) + batch * damp * torch.eye(n, dtype=J.dtype, device=J.device)
    return (g - J.T @ torch.linalg.solve(A, Q @ (J @ g))) / damp


def cg_direction(curv: Any, params: list[Tensor], g: Tensor, damp: float, iters: int, tol: float) -> Tensor:
    """``(G + λI)⁻¹g`` by conjugate gradients on GGN-vector products (G is PSD: CG applies), from x = 0; stops
    when ‖r‖ ≤ tol·‖g‖ or after ``iters`` products."""
    def matvec(v: Tensor) -> Tensor:
        pieces = split(v, params)
        gv = curv.ggn([pieces[id(p)].to(p.dtype) for p in params])
        return torch.cat([t.reshape(-1).to(torch.float64) for t in gv]) + damp * v

    x, r = torch.zeros_like(g), g.clone()
    p, rr, stop = r.clone(), float(r @ r), (tol ** 2) * float(g @ g)
    for _ in range(iters):
        Ap = matvec(p)
        pAp = float(p @ Ap)
        if not (pAp > 0 and math.isfinite(pAp)):
            break
        a = rr / pAp
        x, r = x + a * p, r - a * Ap
        rr_new = float(r @ r)
        if rr_new <= stop:
            break
        p, rr = r + (rr_new / rr) * p, rr_new
    return x


class _Direction(Transform):
    """A transform whose step is a flat direction computed once per step in the pre-pass (``_direction``)."""

    key = "ggn.step"

    def prepare(self, b: Bucket) -> None:
        b.ctx.shared(self.key, lambda: self._direction(b))

    def _direction(self, b: Bucket) -> dict[int, Tensor]:
        raise NotImplementedError

    def update(self, b: Bucket) -> None:
        u = b.ctx.shared(self.key, dict)
        b.set_updates([saturate(u[id(p)], p.dtype).to(p.dtype) for p in b.params], owned=True)


class NaturalGradient(_Direction):
    """Natural gradient with the GGN/Fisher (Amari 1998; Martens, "New insights and perspectives on the natural
    gradient method", arXiv:1412.1193): ``u = (G + λI)⁻¹g``, G the GGN of the batch's mean loss (= its Fisher
    for cross-entropy and squared loss). Dense Cholesky when the parameter count is ≤ ``max_dense``, else CG."""

    name = "natural_gradient"
    key = "ngd.step"
    rule = "G = (1/b)JᵀQJ (GGN = Fisher);  u ← (G + λI)⁻¹g  (dense Cholesky, or CG on Gv products)"
    hparams = {"damping": DAMPING,
               "max_dense": HParam("int", 1000, "largest parameter count solved densely (G from the Jacobian)",
                                   low=0),
               "cg_iters": HParam("int", 50, "CG iterations (GGN-vector products) beyond max_dense", low=1),
               "cg_tol": HParam("float", 1e-10, "CG stops at ‖residual‖ ≤ tol·‖g‖ (unitless)", low=0.0)}

    def _direction(self, b: Bucket) -> dict[int, Tensor]:
        ctx, params, grp = b.ctx, b.ctx.params, b.group
        g = flat_grad(params)
        if not _usable(g):
            return split(torch.zeros_like(g), params)
        curv = ctx.model()
        lam = grp["damping"]
        if g.numel() <= grp["max_dense"]:
            G = dense_ggn(curv)
            G.diagonal().add_(lam)
            return split(_spd_solve(G, g), params)
        return split(cg_direction(curv, params, g, lam, grp["cg_iters"], grp["cg_tol"]), params)


class ExactGaussNewton(_Direction):
    """EGN (Korbit, Adeoye, Bemporad, Zanon, "Exact Gauss-Newton Optimization for Training Deep Neural
    Networks", arXiv:2405.14402): ``s = (G + λI)⁻¹g`` by the Duncan–Guttman identity (a (bc) × (bc) solve),
    then Armijo backtracking ``f(x − lr·α·s) ≤ f(x) − c₁·lr·α·⟨g, s⟩`` over α = 1, ½, ¼, … (at most
    ``backtracks``; none accepted: no move), and the LM damping adapted (our reading of the paper's adaptive
    regularisation, as in claim ``egn-exact-linear-rate``): λ ← max(λ/2, λ_min) when α = 1 was accepted,
    else λ ← min(2λ, 1e10). ``u = α·s``; λ and α are kept in the state (floats, exact in a checkpoint)."""

    name = "egn"
    key = "egn.step"
    rule = "s = (G + λI)⁻¹g (Woodbury, a bc × bc solve);  α: Armijo backtracking;  u ← α·s;  λ ← max(λ/2, λ_min) or 2λ"
    hparams = {"damping": HParam("float", 0.3, "λ₀, the initial LM damping (curvature units)", low=0.0,
                                 low_open=True),
               "armijo": HParam("float", 1e-4, "c₁, Armijo's sufficient-decrease constant (unitless)", low=0.0,
                                high=1.0, high_open=True),
               "backtracks": HParam("int", 20, "most halvings of α per step (each one forward pass)", low=0),
               "damping_min": HParam("float", 0.3, "floor of the adapted λ (curvature units)", low=0.0,
                                     low_open=True)}

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"damping": float(group["damping"]), "alpha": 0.0}

    def _direction(self, b: Bucket) -> dict[int, Tensor]:
        ctx, params, grp = b.ctx, b.ctx.params, b.group
        states = [ctx.opt.state[p] for p in params if p in ctx.opt.state and "egn.damping" in ctx.opt.state[p]]
        lam = float(states[0]["egn.damping"]) if states else float(grp["damping"])
        g = flat_grad(params)
        alpha, s = 0.0, torch.zeros_like(g)
        if _usable(g):
            curv = ctx.model()
            s = woodbury_direction(curv.jacobian(), curv.output_hessian(), g, lam, curv.f.shape[0])
            alpha = self._search(ctx, curv, params, g, s, grp["lr"], grp["armijo"], grp["backtracks"])
        floor = grp["damping_min"]
        ctx.shared("egn.next", lambda: (max(lam / 2, floor) if alpha == 1.0 else min(2 * lam, 1e10), alpha))
        return split(alpha * s, params)

    def update(self, b: Bucket) -> None:
        super().update(b)
        lam, alpha = b.ctx.shared("egn.next", tuple)
        for st in b.states:  # written by the chains only: a refused step leaves the damping as it was
            st["egn.damping"], st["egn.alpha"] = lam, alpha

    @staticmethod
    def _search(ctx: Any, curv: Any, params: list[Tensor], g: Tensor, s: Tensor, lr: float, c1: float,
                backtracks: int) -> float:
        if not torch.isfinite(s).all():
            return 0.0
        f0, slope, alpha = ctx.loss_value, float(g @ s), 1.0
        pieces = split(s, params)
        for _ in range(backtracks + 1):
            f1 = curv.loss_at([(-lr * alpha * pieces[id(p)]).to(p.dtype) for p in params])
            if f1 <= f0 - c1 * lr * alpha * slope:  # NaN/inf compare False: rejected
                return alpha
            alpha *= 0.5
        return 0.0


class SophiaG(SophiaClip):
    """Sophia-G (Liu, Li, Hall, Liang, Ma, arXiv:2305.14342, Algorithms 2–3): Sophia's clipped update with the
    Gauss–Newton–Bartlett estimate ``ĥ = B·ĝ⊙ĝ``, ĝ the gradient of the mean loss on the batch's inputs with
    labels ŷ sampled from the model's own predictive distribution (B: the batch's rows). E[ĥ] = diag of the
    GGN (Bartlett's identity). The labels are a function of (seed, step): a checkpoint resumes exactly."""

    name = "sophia_g"
    rule = "m ← β₁m + (1−β₁)g;  every k steps ĥ = B·ĝ⊙ĝ (ŷ ~ model), h ← β₂h + (1−β₂)ĥ;  u ← clip(m / max(ρ·h, ε), 1)"

    def prepare(self, b: Bucket) -> None:
        if self._due(b):
            diag = b.ctx.shared("sophia_g.h_hat", lambda: self._gnb(b))
            b.ctx.shared("sophia.h_hat", dict)[id(b)] = [diag[id(p)] for p in b.params]

    @staticmethod
    def _gnb(b: Bucket) -> dict[int, Tensor]:
        ctx = b.ctx
        curv = ctx.model()
        gen = torch.Generator().manual_seed((b.group["seed"] * 1_000_003 + b.steps[0]) % (2 ** 62))
        y_hat = sample_targets(curv.kind, curv.f, gen)
        g_hat = curv.vjp(output_grad(curv.kind, curv.f, y_hat))
        rows = curv.f.shape[0]
        return {id(p): saturate(rows * gh.double().square(), p.dtype).to(p.dtype) for p, gh in zip(ctx.params, g_hat)}


class ThermodynamicNGD(_Direction):
    """Thermodynamic natural gradient descent, simulated (Donatella, Duffield, Aifer, Melanson, Crooks, Coles,
    "Thermodynamic Natural Gradient Descent", arXiv:2405.13817): the analog device's Ornstein–Uhlenbeck
    dynamics ``dx = −((G + λI)x − g)dt + √(2κ) dW`` run for time τ from the previous step's x (the hybrid
    digital-analog loop: the device keeps its state while G and g are refreshed), by Euler–Maruyama with step
    ``h = min(dt, 1/(1.1·λ̂_max + λ))`` (λ̂_max: 10 power iterations on G, so the simulation is stable), at most
    ``max_sde_steps`` steps; ``u = x(τ)``. Its mean relaxes to ``(G + λI)⁻¹g`` (NGD) as τ → ∞, exponentially
    at rate ≥ λ; κ = 0 is the noiseless limit. Dense G up to ``max_dense`` parameters, GGN products beyond."""

    name = "tngd"
    key = "tngd.step"
    rule = "x ← x − h((G + λI)x − g) + √(2κh)ξ for τ/h steps from the last x;  u ← x"
    hparams = {"damping": DAMPING,
               "tau": HParam("float", 10.0, "τ, simulated time per step (units of 1/curvature)", low=0.0,
                             low_open=True),
               "dt": HParam("float", 0.1, "largest Euler–Maruyama step h (units of 1/curvature)", low=0.0,
                            low_open=True),
               "max_sde_steps": HParam("int", 200, "most Euler–Maruyama steps per optimizer step", low=1),
               "temperature": HParam("float", 1e-6, "κ, the noise's variance per unit time (parameter² per time)",
                                     low=0.0),
               "max_dense": HParam("int", 1000, "largest parameter count simulated with a dense G", low=0),
               "seed": SEED}

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"x": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def _direction(self, b: Bucket) -> dict[int, Tensor]:
        ctx, params, grp = b.ctx, b.ctx.params, b.group
        g = flat_grad(params)
        x0 = torch.cat([ctx.opt.state[p]["tngd.x"].reshape(-1).to(torch.float64) if "tngd.x" in ctx.opt.state[p]
                        else torch.zeros(p.numel(), dtype=torch.float64, device=p.device) for p in params])
        if not torch.isfinite(g).all():
            return split(torch.zeros_like(g), params)
        curv = ctx.model()
        lam = grp["damping"]
        if g.numel() <= grp["max_dense"]:
            G = dense_ggn(curv)
            apply = lambda v: G @ v  # noqa: E731
        else:
            def apply(v: Tensor) -> Tensor:
                pieces = split(v, params)
                return torch.cat([t.reshape(-1).to(torch.float64)
                                  for t in curv.ggn([pieces[id(p)].to(p.dtype) for p in params])])
        gen = torch.Generator().manual_seed((grp["seed"] * 1_000_003 + b.steps[0]) % (2 ** 62))
        x = simulate_ou(apply, g, x0, lam, grp["tau"], grp["dt"], grp["max_sde_steps"], grp["temperature"], gen)
        saturate_([x])
        return split(x, params)

    def update(self, b: Bucket) -> None:
        super().update(b)  # the device's state x, carried to the next step
        torch._foreach_copy_(b.state(self, "x"), b.updates)


def simulate_ou(apply: Any, g: Tensor, x0: Tensor, lam: float, tau: float, dt: float, max_steps: int,
                temperature: float, gen: torch.Generator, power_iters: int = 10) -> Tensor:
    """Euler–Maruyama for ``dx = −((A)x − g)dt + √(2κ)dW``, A = G + λI (``apply(v) = Gv``), from ``x0`` for
    time τ; the step h is capped at 1/(1.1·λ̂_max + λ) (λ̂_max by power iteration from g)."""
    v = g if _usable(g) else torch.ones_like(g)
    top = 0.0
    for _ in range(power_iters):
        w = apply(v / v.norm())
        top = float(w.norm())
        if not (top > 0 and math.isfinite(top)):
            break
        v = w
    top = top if math.isfinite(top) else 1e300
    h = min(dt, 1.0 / (1.1 * top + lam))
    n = min(max_steps, max(1, math.ceil(tau / h - 1e-9)))
    h = min(h, tau / n)
    x, noise = x0.clone(), math.sqrt(2 * temperature * h)
    for _ in range(n):
        x = x - h * (apply(x) + lam * x - g)
        if noise > 0:
            x = x + noise * torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)  # CPU draws: any device
    return x
