"""Steps that look ahead or shake the step: optimistic AMSGrad, Jain et al.'s accelerated SGD, the secant
gradient correction, and the Exp(1) random scaling of the step.

Each keeps its state in the units of the update (never in parameter units), so that ``lr = 0`` means no
step whatever happened before, as schedulers expect; with a constant ``lr`` each equals its paper's
two-sequence form (the references in :mod:`optimlab.reference.first_order` are those forms).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.scaling import saturate_
from .moments import BETAS

__all__ = ["OptimisticAMSGradStep", "AcceleratedSGDStep", "SecantCorrection", "ExpRandomScale", "exp1_draw"]


def _zeros(p: Tensor) -> Tensor:
    return torch.zeros_like(p, memory_format=torch.preserve_format)


class OptimisticAMSGradStep(Transform):
    """Optimistic AMSGrad (Wang, Li, Karimi & Li, arXiv:1903.01435), predictor = the last gradient.

    ``θ ← β1 θ + (1−β1) u;  v ← β2 v + (1−β2) u²;  v̂ ← max(v̂, v);  d = sqrt(v̂) + ε;``
    ``h = β1 θ + (1−β1) u`` (the predicted next momentum, with the next gradient guessed as ``u``);
    ``u ← (θ + h)/d − q;  q ← h/d``.  With ``p ← p − lr·u`` and a constant lr this is the paper's
    ``w_{t+½} = w_{t−½} − lr·θ_t/d_t``, ``w_{t+1} = w_{t+½} − lr·h_{t+1}/d_t`` with the parameters holding
    ``w_t``: ``q`` stores the optimistic half-step so that the state is in update units.
    State keys ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``, ``prev_hint`` (q).
    """

    name = "optimistic_amsgrad"
    rule = "θ ← β1·θ + (1−β1)·u;  v̂ ← max(v̂, β2·v + (1−β2)·u²);  h = β1·θ + (1−β1)·u;  " \
           "u ← (θ + h)/(√v̂ + ε) − q;  q ← h/(√v̂ + ε)"
    hparams = {"betas": BETAS, "eps": HParam("float", 1e-8, "added to the denominator (gradient units)", low=0.0)}

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        return {k: _zeros(p) for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "prev_hint")}

    def update(self, b: Bucket) -> None:
        beta1, beta2 = b.group["betas"]
        u = b.updates
        m, v = b.state(self, "exp_avg"), b.state(self, "exp_avg_sq")
        vmax, q = b.state(self, "max_exp_avg_sq"), b.state(self, "prev_hint")
        torch._foreach_lerp_(m, u, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, u, u, 1 - beta2)
        torch._foreach_maximum_(vmax, v)
        den = torch._foreach_sqrt(vmax)
        torch._foreach_add_(den, b.group["eps"])
        h = torch._foreach_mul(m, beta1)
        torch._foreach_add_(h, u, alpha=1 - beta1)
        torch._foreach_div_(h, den)  # h/d: the next optimistic half-step
        out = torch._foreach_div(m, den)
        torch._foreach_add_(out, h)
        torch._foreach_sub_(out, q)
        torch._foreach_copy_(q, h)
        b.set_updates(out, owned=True)


def accsgd_coefficients(kappa: float, xi: float, small_const: float) -> tuple[float, float, float]:
    """(α, β, ρ = γ/δ) of Jain et al.'s ASGD from Kidambi et al.'s (κ, ξ, c):
    ``β = c²ξ/κ``, ``α = κ/(κ + cξ)``, long step ``γ = cξ·δ`` (δ = lr, the short step)."""
    return kappa / (kappa + small_const * xi), small_const**2 * xi / kappa, small_const * xi


class AcceleratedSGDStep(Transform):
    """Accelerated SGD of Jain, Kakade, Kidambi, Netrapalli & Sidford ("Accelerating Stochastic Gradient
    Descent for least squares regression", arXiv:1704.08227), as the AccSGD of Kidambi et al. (arXiv:1803.05591).

    Paper form (parameters hold ``y``, the point where the gradient is taken):
    ``x̄ = y − δ g;  v ← β y + (1−β) v − γ g;  y ← α x̄ + (1−α) v`` with ``v₀ = y₀``,
    ``δ = lr, γ = cξ·lr, β = c²ξ/κ, α = κ/(κ + cξ)``.  Written with ``B = (y − v)/lr`` (gradient units,
    starts at 0): ``u = (1−α)(1−β)·B + (α + (1−α)cξ)·g;  B ← α(1−β)·B + α(cξ − 1)·g``; ``p ← p − lr·u``.
    State key ``momentum_buffer`` (B).
    """

    name = "accelerated_sgd"
    rule = "u ← (1−α)(1−β)·B + (α + (1−α)ρ)·g;  B ← α(1−β)·B + α(ρ−1)·g   " \
           "(β = c²ξ/κ, α = κ/(κ + cξ), ρ = cξ)"
    hparams = {
        "kappa": HParam("float", 1000.0, "κ: long-step parameter (a condition number, unitless)", low=0.0,
                        low_open=True),
        "xi": HParam("float", 10.0, "ξ: statistical advantage parameter (unitless, ξ ≤ √κ in the analysis)",
                     low=0.0, low_open=True),
        "small_const": HParam("float", 0.7, "c: the constant of Kidambi et al.'s parametrization (unitless)",
                              low=0.0, high=1.0, low_open=True),
    }

    def check(self, group: dict, owner: str) -> None:
        _, beta, _ = accsgd_coefficients(group["kappa"], group["xi"], group["small_const"])
        if beta > 1:
            raise ValueError(f"{owner}: accelerated_sgd needs small_const²·xi <= kappa (β = c²ξ/κ <= 1), got "
                             f"kappa={group['kappa']!r}, xi={group['xi']!r}, small_const={group['small_const']!r}")

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        return {"momentum_buffer": _zeros(p)}

    def update(self, b: Bucket) -> None:
        g = b.group
        alpha, beta, rho = accsgd_coefficients(g["kappa"], g["xi"], g["small_const"])
        u, buf = b.updates, b.state(self, "momentum_buffer")
        out = torch._foreach_mul(buf, (1 - alpha) * (1 - beta))
        torch._foreach_add_(out, u, alpha=alpha + (1 - alpha) * rho)
        torch._foreach_mul_(buf, alpha * (1 - beta))
        torch._foreach_add_(buf, u, alpha=alpha * (rho - 1))
        # sums of gradients near the top of the range (3e38) saturate at ±max/2 rather than overflow
        # to inf (and then NaN): ordinary values pass unchanged (linalg.scaling.saturate's rule)
        saturate_(out)
        saturate_(buf)
        b.set_updates(out, owned=True)


class SecantCorrection(Transform):
    """A secant-based predictive correction of the gradient (optimlab's reading of Chen et al.'s
    "Lightweight Geometric Adaptation for Training Physics-Informed Neural Networks", arXiv:2604.15392).

    Per tensor, from the previous gradient and parameter: ``κ = ‖u − u_prev‖ / ‖p − p_prev‖`` (secant
    curvature, normalised by the step); ``c = γ·κ̄/(κ̄ + κ)`` with ``κ̄`` an EMA (β_κ) of past κ, so the
    correction is strongest where the curvature is low for this tensor and fades where it spikes;
    ``u ← u + c·(u − u_prev)`` (extrapolates the gradient's trend). No correction on a tensor's first step;
    ``κ̄`` starts at the first κ. State keys ``prev_grad``, ``prev_param``, ``kappa_avg`` (0-dim).
    """

    name = "secant"
    rule = "κ = ‖u − u_prev‖/‖p − p_prev‖;  c = γ·κ̄/(κ̄ + κ);  κ̄ ← β_κ·κ̄ + (1−β_κ)·κ;  u ← u + c·(u − u_prev)"
    hparams = {
        "secant_gain": HParam("float", 0.5, "γ: largest correction gain (unitless)", low=0.0),
        "secant_beta": HParam("float", 0.9, "β_κ: EMA coefficient of the secant curvature (unitless)", low=0.0,
                              high=1.0, high_open=True),
    }

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        return {"prev_grad": _zeros(p), "prev_param": _zeros(p),
                "kappa_avg": torch.zeros((), dtype=p.dtype, device=p.device)}

    def update(self, b: Bucket) -> None:
        g = b.group
        u = b.updates
        prev_g, prev_p = b.state(self, "prev_grad"), b.state(self, "prev_param")
        kbar = torch.stack(b.state(self, "kappa_avg")).to(torch.float64)
        # extreme gradients (1e30, 3e38): u − u_prev saturates at ±max/2 instead of overflowing to inf,
        # and κ, κ̄ are formed in float64 and capped, so c stays in [0, γ] and nothing becomes NaN
        half = 0.5 * torch.finfo(u[0].dtype).max
        dg = saturate_(torch._foreach_sub(u, prev_g))
        dp = torch._foreach_sub(b.params, prev_p)
        ng = torch.stack(torch._foreach_norm(dg, 2, dtype=torch.float64))
        nd = torch.stack(torch._foreach_norm(dp, 2, dtype=torch.float64))
        kappa = (ng / nd.clamp_min(torch.finfo(torch.float64).tiny)).clamp_max(half)
        steps = torch.tensor(b.steps, device=kappa.device)
        first, second = steps == 1, steps == 2
        kbar = torch.where(second, kappa, kbar)  # κ̄ starts at the first κ
        total = kbar + kappa
        c = torch.where(total > 0, g["secant_gain"] * kbar / total.clamp_min(torch.finfo(total.dtype).tiny),
                        torch.full_like(total, g["secant_gain"]))
        c = torch.where(first, torch.zeros_like(c), c)
        new_kbar = torch.where(first, torch.zeros_like(kbar), torch.lerp(kbar, kappa, 1 - g["secant_beta"]))
        torch._foreach_copy_(b.state(self, "kappa_avg"), list(new_kbar.clamp_max(half).unbind(0)))
        torch._foreach_copy_(prev_g, u)
        torch._foreach_copy_(prev_p, b.params)
        torch._foreach_mul_(dg, list(c.to(u[0].dtype).unbind(0)))
        b.set_updates(saturate_(torch._foreach_add(u, dg)), owned=True)


_MASK64 = (1 << 64) - 1


def exp1_draw(seed: int, t: int) -> float:
    """The ``t``-th draw of an Exp(1) sequence with ``seed``: ``−log(1 − U)``, ``U`` uniform on [0, 1) from a
    SplitMix64 hash of ``(seed, t)``. Counter-based: the draw depends on the step number alone, so it needs no
    generator state (resume is bit-identical) and every parameter stepped at ``t`` gets the same scale."""
    z = (seed * 0x9E3779B97F4A7C15 + t * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return -math.log1p(-(z >> 11) * 2.0**-53)


class ExpRandomScale(Transform):
    """Scale the step by ``s_t ~ Exp(1)`` (Zhang & Cutkosky, "Random Scaling and Momentum for Non-smooth
    Non-convex Optimization", arXiv:2405.09742): ``u ← s_t·u`` with ``s_t = exp1_draw(seed, t)``, ``t`` the
    parameter's step count. Mean 1, so the expected step is the unscaled one."""

    name = "random_scale"
    rule = "u ← s_t·u,  s_t ~ Exp(1) (counter-based draw of (seed, t))"
    hparams = {"seed": HParam("int", 0, "seed of the Exp(1) draws (the sequence depends on it alone)", low=0)}

    def update(self, b: Bucket) -> None:
        seed = b.group["seed"]
        draws = {t: exp1_draw(seed, t) for t in set(b.steps)}  # one hash per distinct step, not per tensor
        b.scale_by([draws[t] for t in b.steps])
