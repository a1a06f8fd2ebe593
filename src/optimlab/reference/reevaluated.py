"""Literal transcriptions of the rules that take a second gradient per step (FD-GR, exact GR, IGT, O2NC,
SPIDER + β-normalized GD, SMB as optimlab reads it). ``xs``: the parameter tensors (written in place);
``grad_fn(xs) -> (f, gs)``: the loss and its gradients at ``xs`` (same batch); ``state``: a plain dict.
Float64-friendly; no fast paths. Norms over "all parameters" concatenate the tensors.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

__all__ = ["fd_gr_step", "exact_gr_step", "igt_step", "o2nc_step", "spider_ngd_step", "smb_step"]

GradFn = Callable[[Sequence[torch.Tensor]], tuple[float, list[torch.Tensor]]]


def _norm(ts: Sequence[torch.Tensor]) -> float:
    return math.sqrt(sum(float((t * t).sum()) for t in ts))


def fd_gr_step(xs, grad_fn: GradFn, *, lr: float, gamma: float, h: float) -> None:
    """g = ∇L(θ); g' = ∇L(θ + h g); θ ← θ − lr (g + (γ/h)(g' − g))."""
    _, g = grad_fn(xs)
    _, g2 = grad_fn([x + h * gi for x, gi in zip(xs, g)])
    for x, gi, g2i in zip(xs, g, g2):
        x.sub_(lr * (gi + (gamma / h) * (g2i - gi)))


def exact_gr_step(xs, grad_fn: GradFn, hvp_fn, *, lr: float, gamma: float) -> None:
    """θ ← θ − lr (g + γ H g), ``hvp_fn(xs, vs)`` the Hessian-vector product."""
    _, g = grad_fn(xs)
    hg = hvp_fn(xs, g)
    for x, gi, hi in zip(xs, g, hg):
        x.sub_(lr * (gi + gamma * hi))


def igt_step(xs, grad_fn: GradFn, state: dict, *, lr: float, beta: float) -> None:
    """d ← β d + (1 − β) ∇f(θ_t + β/(1−β) (θ_t − θ_{t−1})); θ ← θ − lr d/‖d‖ (θ_{−1} = θ_0, d_0 = 0)."""
    prev = state.get("prev", [x.clone() for x in xs])
    d = state.get("d", [torch.zeros_like(x) for x in xs])
    _, g = grad_fn([x + beta / (1 - beta) * (x - p) for x, p in zip(xs, prev)])
    d = [beta * di + (1 - beta) * gi for di, gi in zip(d, g)]
    state["prev"], state["d"] = [x.clone() for x in xs], d
    n = _norm(d)
    for x, di in zip(xs, d):
        x.sub_(lr * di / n)


def o2nc_step(xs, grad_fn: GradFn, state: dict, *, lr: float, radius: float, s: float) -> None:
    """Δ_t = −lr·m (m_1 = 0): m ← m·min(1, D/(lr‖m‖)); g = ∇f(x + sΔ); x ← x + Δ; m ← m + g — i.e.
    x_t = x_{t−1} + Δ_t, Δ_{t+1} = Π_{‖Δ‖≤D}(Δ_t − lr g) at a constant lr."""
    m = state.get("m", [torch.zeros_like(x) for x in xs])
    n = _norm(m)
    if n > 0:
        m = [mi * min(1.0, radius / (lr * n)) for mi in m]
    delta = [-lr * mi for mi in m]
    _, g = grad_fn([x + s * d for x, d in zip(xs, delta)])
    for x, d in zip(xs, delta):
        x.add_(d)
    state["m"] = [mi + gi for mi, gi in zip(m, g)]


def spider_ngd_step(xs, grad_fn: GradFn, state: dict, *, lr: float, beta: float, q: int) -> None:
    """t ≡ 0 (mod q): v = ∇f(x_t); else v = ∇f(x_t) − ∇f(x_{t−1}) + v; per tensor x ← x − lr v/‖v‖^β."""
    t = state.get("t", 0)
    _, g = grad_fn(xs)
    if t % q == 0:
        v = [gi.clone() for gi in g]
    else:
        _, gp = grad_fn(state["prev"])
        v = [gi - gpi + vi for gi, gpi, vi in zip(g, gp, state["v"])]
    state.update(t=t + 1, v=v, prev=[x.clone() for x in xs])
    for x, vi in zip(xs, v):
        n = float(vi.norm())
        x.sub_(lr * vi / (n ** beta if n > 0 else 1.0))


def smb_step(xs, grad_fn: GradFn, *, lr: float, c: float) -> None:
    """Trial s = −lr g; if f(x + s) ≤ f − c lr ‖g‖² take it; else per tensor κ = ⟨s, g⁺ − g⟩/‖s‖² and
    x ← x − min(lr, 1/κ) g (κ ≤ 0: lr)."""
    f, g = grad_fn(xs)
    trial = [x - lr * gi for x, gi in zip(xs, g)]
    f2, g2 = grad_fn(trial)
    if f2 <= f - c * lr * _norm(g) ** 2:
        for x, t in zip(xs, trial):
            x.copy_(t)
        return
    for x, gi, g2i in zip(xs, g, g2):
        s = -lr * gi
        kappa = float((s * (g2i - gi)).sum()) / float((s * s).sum()) if float((s * s).sum()) > 0 else 0.0
        x.sub_((min(lr, 1.0 / kappa) if kappa > 0 else lr) * gi)
