"""Diagonal-Hessian methods, transcribed literally on the concatenated parameter vector (float64): Sophia-H
(Liu et al., arXiv:2305.14342, Algorithm 3), OASIS (Jahani et al., arXiv:2109.05198, Algorithm 1) and SANIA
with a Hutchinson diagonal (Abdukhakimov et al., arXiv:2312.17369; our reading).

Each ``*_step(xs, gs, hvp, zs, state, ...)`` takes the parameter tensors (written in place), the gradients,
``hvp(v) -> H v`` on the flat vector, this step's Hutchinson probes (one tensor per parameter; the recipes'
:func:`optimlab.transforms.hessian.probe`), a plain dict, and (SANIA) the loss. No fast paths, no guards.
"""

from __future__ import annotations

import math

import torch

from .polyak import _flat, _write

__all__ = ["sophia_step", "oasis_step", "sania_hutchinson_step", "mfac_step", "scaled_gd_step", "sfn_step",
           "regularized_newton_step"]


def sophia_step(xs, gs, hvp, zs, state: dict, *, lr: float, betas=(0.965, 0.99), rho: float = 0.01,
                eps: float = 1e-12, update_period: int = 10, weight_decay: float = 0.1) -> None:
    """t ← t+1;  m ← β₁m + (1−β₁)g;  if t mod k = 1: h ← β₂h + (1−β₂)·u⊙Hu;
    x ← x − lr·λ·x;  x ← x − lr·clip(m / max(γh, ε), 1)."""
    x, g = _flat(xs), _flat(gs)
    t = state["t"] = state.get("t", 0) + 1
    m = state.get("m", torch.zeros_like(x))
    h = state.get("h", torch.zeros_like(x))
    m = betas[0] * m + (1 - betas[0]) * g
    if t % update_period == 1 % update_period:
        u = _flat(zs)
        h = betas[1] * h + (1 - betas[1]) * u * hvp(u)
    state["m"], state["h"] = m, h
    x = x - lr * weight_decay * x
    x = x - lr * torch.clamp(m / torch.clamp(rho * h, min=eps), -1.0, 1.0)
    _write(xs, x)


def oasis_step(xs, gs, hvp, zs, state: dict, grad_at=None, *, lr: float = 1.0, beta2: float = 0.99, alpha: float = 1e-3,
               eta0: float = 1e-2) -> None:
    """k = 0: D = z⊙Hz, η = η₀, θ = +∞.  k ≥ 1: D ← β₂D + (1−β₂)z⊙Hz;  D̂ = max(|D|, α);
    η_k = min(√(1+θ)η_{k−1}, ‖x_k − x_{k−1}‖_D̂ / (2‖g_k − ∇f(x_{k−1})‖*_D̂));  θ = η_k/η_{k−1};  x ← x − η_k D̂⁻¹g.
    ``grad_at(x)``: the flat gradient at x on this step's batch."""
    x, g = _flat(xs), _flat(gs)
    z = _flat(zs)
    v = z * hvp(z)
    if "D" not in state:
        D, eta, theta = v, eta0, math.inf
    else:
        D = beta2 * state["D"] + (1 - beta2) * v
    d_hat = torch.clamp(D.abs(), min=alpha)
    if "D" in state:
        eta_prev, theta = state["eta"], state["theta"]
        dx, dg = x - state["x"], g - grad_at(state["x"])
        num = math.sqrt(float((d_hat * dx * dx).sum()))
        den = 2 * math.sqrt(float((dg * dg / d_hat).sum()))
        eta = min(math.sqrt(1 + theta) * eta_prev, num / den if den > 0 else math.inf)
        if math.isinf(eta):
            eta = eta_prev
        theta = eta / eta_prev
    state.update(D=D, eta=eta, theta=theta, x=x.clone())
    _write(xs, x - lr * eta * g / d_hat)


def sania_hutchinson_step(xs, gs, hvp, zs, f: float, state: dict, *, lr: float = 1.0, beta2: float = 0.999,
                          alpha: float = 1e-4, f_star: float = 0.0) -> None:
    """B = z⊙Hz at the first step, then B ← β₂B + (1−β₂)z⊙Hz;  B̂ = max(|B|, α);
    x ← x − lr·(f − f*)₊/(gᵀB̂⁻¹g)·B̂⁻¹g."""
    x, g = _flat(xs), _flat(gs)
    z = _flat(zs)
    v = z * hvp(z)
    B = v if "B" not in state else beta2 * state["B"] + (1 - beta2) * v
    state["B"] = B
    d = g / torch.clamp(B.abs(), min=alpha)
    gd = float(g @ d)
    gamma = max(f - f_star, 0.0) / gd if gd > 0 else 0.0
    _write(xs, x - lr * gamma * d)


def mfac_step(xs, gs, state: dict, *, lr: float = 1e-2, ngrads: int = 32, damp: float = 1e-2,
              momentum: float = 0.0) -> None:
    """Per tensor i (M-FAC, Frantar et al., arXiv:2107.03356, dense estimator, one block per tensor): append g
    to the window of the last m gradients;  F = λI + (1/m)Σ gⱼgⱼᵀ (m = window length);  d = F⁻¹g (dense solve);
    b ← μb + d;  x ← x − lr·b."""
    for i, (x, g) in enumerate(zip(xs, gs)):
        st = state.setdefault(i, {"window": [], "b": torch.zeros(x.numel(), dtype=torch.float64)})
        gf = g.reshape(-1).to(torch.float64)
        st["window"] = (st["window"] + [gf])[-ngrads:]
        W = torch.stack(st["window"])
        F = damp * torch.eye(gf.numel(), dtype=torch.float64) + W.T @ W / W.shape[0]
        st["b"] = momentum * st["b"] + torch.linalg.solve(F, gf)
        x.copy_((x.reshape(-1) - lr * st["b"]).view_as(x))


def scaled_gd_step(xs, gs, *, lr: float = 0.1, damp: float = 0.1) -> None:
    """ScaledGD(λ) (Xu, Shen, Chi, Ma, arXiv:2302.01186): X ← X − lr·∇f(X)(XᵀX + λI)⁻¹ for a matrix X (dense
    inverse); other tensors x ← x − lr·g."""
    for x, g in zip(xs, gs):
        if x.ndim != 2:
            x.sub_(lr * g)
            continue
        P = x.T @ x + damp * torch.eye(x.shape[1], dtype=x.dtype)
        x.sub_(lr * g @ torch.linalg.inv(P))


def sfn_step(xs, gs, H: torch.Tensor, *, lr: float = 1.0, damp: float = 1.0) -> None:
    """Saddle-free Newton with the exact Hessian (Dauphin et al., arXiv:1406.2572): H = VΛVᵀ (dense eigh);
    x ← x − lr·V(|Λ| + λI)⁻¹Vᵀg. (The recipe's Krylov subspace is the whole space once k ≥ dim.)"""
    x, g = _flat(xs), _flat(gs)
    lam, V = torch.linalg.eigh(H)
    _write(xs, x - lr * V @ ((V.T @ g) / (lam.abs() + damp)))


def regularized_newton_step(xs, gs, H: torch.Tensor, *, lr: float = 1.0, lipschitz: float = 1.0) -> None:
    """Gradient-regularised Newton (Mishchenko, arXiv:2112.02089): λ = √(L‖g‖);  x ← x − lr·(H + λI)⁻¹g."""
    x, g = _flat(xs), _flat(gs)
    lam = math.sqrt(lipschitz * float(g.norm()))
    _write(xs, x - lr * torch.linalg.solve(H + lam * torch.eye(len(x), dtype=x.dtype), g))
