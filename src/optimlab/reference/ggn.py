"""Gauss–Newton / natural-gradient methods, transcribed literally on one flat float64 parameter vector θ.

Each ``*_step(theta, f, y, kind, state, ...)`` takes θ (returned updated, never written in place), ``f(θ)``
the model's outputs on the batch (b × c), the targets, the loss kind (``"cross_entropy"``: mean CE;
``"mse"``: F.mse_loss; ``"half_sse"``: mean ½‖f − y‖²) and a plain dict. J is ``torch.autograd.functional.jacobian`` of f, the GGN is
formed densely, and solves are ``torch.linalg.solve``: no Woodbury, no CG, no guards.

* natural gradient (Amari 1998; Martens, arXiv:1412.1193): θ ← θ − lr·(G + λI)⁻¹∇L;
* EGN (Korbit et al., arXiv:2405.14402): d = −Jᵀ(QJJᵀ + bλI)⁻¹r, Armijo backtracking, λ halved/doubled;
* Sophia-G (Liu et al., arXiv:2305.14342, Algorithms 2–3) with the labels passed in (``y_hat``);
* TNGD (Donatella et al., arXiv:2405.13817): Euler–Maruyama on dx = −((G + λI)x − ∇L)dt + √(2κ)dW.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["loss_of", "jacobian", "ggn", "natural_gradient_step", "egn_step", "sophia_g_step", "tngd_step"]


def loss_of(out, y, kind):
    if kind == "cross_entropy":
        return F.cross_entropy(out, y)
    if kind == "mse":
        return F.mse_loss(out, y)
    return 0.5 * ((out - y) ** 2).sum(1).mean()


def jacobian(theta, f):
    """J: (b·c) × d."""
    J = torch.autograd.functional.jacobian(f, theta)
    return J.reshape(-1, theta.numel())


def _q_r(out, y, kind):
    """Q (bc × bc, block diagonal) and r (bc): the per-sample output Hessians and gradients."""
    b, c = out.shape
    if kind == "cross_entropy":
        p = torch.softmax(out, 1)
        Q = torch.block_diag(*[torch.diag(p[i]) - torch.outer(p[i], p[i]) for i in range(b)])
        return Q, (p - F.one_hot(y, c).to(out.dtype)).reshape(-1)
    k = 2.0 / c if kind == "mse" else 1.0  # ℓ_i = (1/c)‖f − y‖² (F.mse_loss) or ½‖f − y‖²
    return k * torch.eye(b * c, dtype=out.dtype), k * (out - y).reshape(-1)


def ggn(theta, f, y, kind):
    """G = (1/b)JᵀQJ and ∇L = (1/b)Jᵀr."""
    out = f(theta).detach()
    J = jacobian(theta, f)
    Q, r = _q_r(out, y, kind)
    b = out.shape[0]
    return J.T @ Q @ J / b, J.T @ r / b


def natural_gradient_step(theta, f, y, kind, state, *, lr, damping):
    G, g = ggn(theta, f, y, kind)
    return theta - lr * torch.linalg.solve(G + damping * torch.eye(len(theta), dtype=theta.dtype), g)


def egn_step(theta, f, y, kind, state, *, lr=1.0, damping=1e-3, armijo=1e-4, backtracks=20, damping_min=1e-10):
    """d = −Jᵀ(QJJᵀ + bλI)⁻¹r;  α = max{2⁻ʲ : L(θ + lr·α·d) ≤ L(θ) + c₁·lr·α·⟨∇L, d⟩};  θ ← θ + lr·α·d;
    λ ← max(λ/2, λ_min) if α = 1, else min(2λ, 1e10)."""
    lam = state.get("damping", damping)
    out = f(theta).detach()
    J = jacobian(theta, f)
    Q, r = _q_r(out, y, kind)
    b = out.shape[0]
    d = -J.T @ torch.linalg.solve(Q @ J @ J.T + b * lam * torch.eye(len(r), dtype=theta.dtype), r)
    g = J.T @ r / b
    f0 = float(loss_of(out, y, kind))
    alpha = 1.0
    for _ in range(backtracks + 1):
        if float(loss_of(f(theta + lr * alpha * d), y, kind)) <= f0 + armijo * lr * alpha * float(g @ d):
            break
        alpha /= 2
    else:
        alpha = 0.0
    state["damping"] = max(lam / 2, damping_min) if alpha == 1.0 else min(2 * lam, 1e10)
    return theta + lr * alpha * d


def sophia_g_step(theta, f, y, kind, y_hat, state, *, lr, betas=(0.965, 0.99), rho=0.05, eps=1e-12,
                  update_period=10, weight_decay=0.1):
    """t ← t+1;  m ← β₁m + (1−β₁)∇L;  if t mod k = 1: ĝ = ∇L(θ; x, ŷ), h ← β₂h + (1−β₂)·B·ĝ⊙ĝ;
    θ ← θ − lr·λθ;  θ ← θ − lr·clip(m / max(γh, ε), 1).  ``y_hat``: the labels sampled at this step."""
    t = state["t"] = state.get("t", 0) + 1
    th = theta.detach().requires_grad_(True)
    out = f(th)
    g = torch.autograd.grad(loss_of(out, y, kind), th)[0]
    m = betas[0] * state.get("m", torch.zeros_like(theta)) + (1 - betas[0]) * g
    h = state.get("h", torch.zeros_like(theta))
    if t % update_period == 1 % update_period:
        g_hat = torch.autograd.grad(loss_of(f(th), y_hat, kind), th)[0]
        h = betas[1] * h + (1 - betas[1]) * out.shape[0] * g_hat * g_hat
    state["m"], state["h"] = m, h
    theta = theta - lr * weight_decay * theta
    return theta - lr * torch.clamp(m / torch.clamp(rho * h, min=eps), -1.0, 1.0)


def tngd_step(theta, f, y, kind, state, noise, *, lr, damping, tau, h):
    """x ← x − h((G + λI)x − ∇L) + √(2κh)ξ_j for j = 1..τ/h (``noise[j]`` = √(2κh)ξ_j, or None), from the
    previous step's x (0 at the first);  θ ← θ − lr·x."""
    G, g = ggn(theta, f, y, kind)
    A = G + damping * torch.eye(len(theta), dtype=theta.dtype)
    x = state.get("x", torch.zeros_like(theta))
    for j in range(round(tau / h)):
        x = x - h * (A @ x - g)
        if noise is not None:
            x = x + noise[j]
    state["x"] = x
    return theta - lr * x

