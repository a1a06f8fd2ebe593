"""AdaGrad-Norm, optimistic AMSGrad, Jain et al.'s accelerated SGD, β-normalized GD, random-scaling SGDM and
the secant-corrected Adam, one tensor at a time, in their papers' (or readings') own form.

The two-sequence methods keep their sequences here (``w_{t−½}``, ``v``) as the papers write them; the engine
keeps the difference in update units instead. With a constant lr the two agree.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..transforms.extrapolation import exp1_draw


def adagrad_norm_step(x: Tensor, g: Tensor, state: dict, *, lr: float, b0: float) -> None:
    """AdaGrad-Norm (Ward, Wu & Bottou, arXiv:1806.01811, Algorithm 1 with one ``b`` per tensor)::

        b_{j+1}² = b_j² + ‖G_j‖²;   x_{j+1} = x_j − η G_j / b_{j+1}
    """
    b_sq = state.get("b_sq", b0**2) + float(g.norm()) ** 2
    state["b_sq"] = b_sq
    x.sub_(lr * g / b_sq**0.5)


def optimistic_amsgrad_step(w: Tensor, g: Tensor, state: dict, *, lr: float, beta1: float, beta2: float,
                            eps: float) -> None:
    """Optimistic AMSGrad (Wang, Li, Karimi & Li, arXiv:1903.01435), the guess of ``g_{t+1}`` being ``g_t``::

        θ_t = β1 θ_{t−1} + (1 − β1) g_t;   v_t = β2 v_{t−1} + (1 − β2) g_t²;   v̂_t = max(v̂_{t−1}, v_t)
        w_{t+½} = w_{t−½} − η θ_t / (√v̂_t + ε)
        h_{t+1} = β1 θ_t + (1 − β1) g_t;   w_{t+1} = w_{t+½} − η h_{t+1} / (√v̂_t + ε)

    with ``w_{½} = w_1``; ``w`` holds ``w_t``.
    """
    if "theta" not in state:
        state.update(theta=torch.zeros_like(w), v=torch.zeros_like(w), vhat=torch.zeros_like(w), half=w.clone())
    state["theta"] = beta1 * state["theta"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    state["vhat"] = torch.maximum(state["vhat"], state["v"])
    d = state["vhat"].sqrt() + eps
    state["half"] = state["half"] - lr * state["theta"] / d
    h = beta1 * state["theta"] + (1 - beta1) * g
    w.copy_(state["half"] - lr * h / d)


def accelerated_sgd_step(y: Tensor, g: Tensor, state: dict, *, lr: float, kappa: float, xi: float,
                         small_const: float, wd: float = 0.0) -> None:
    """Accelerated SGD (Jain, Kakade, Kidambi, Netrapalli & Sidford, arXiv:1704.08227, Algorithm 1), ``y`` being
    the point where the gradient is taken, ``v₀ = y₀``::

        x̄ = y − δ ĝ(y);   v ← β y + (1 − β) v − γ ĝ(y);   y ← α x̄ + (1 − α) v

    with the constants of Kidambi et al.'s AccSGD (arXiv:1803.05591): long step ``lr·κ/c`` scaled by
    ``β = 1 − (1 − c²ξ/κ)`` gives ``γ``, ``α = c/(c + β)``, ``δ = lr``; ``ĝ = g + λ y`` (L2 decay).
    """
    v = state.setdefault("v", y.clone())
    beta = 1.0 - (1.0 - small_const**2 * xi / kappa)
    gamma = beta * (lr * kappa / small_const)
    alpha = small_const / (small_const + beta)
    gh = g + wd * y
    x_bar = y - lr * gh
    v = beta * y + (1 - beta) * v - gamma * gh
    state["v"] = v
    y.copy_(alpha * x_bar + (1 - alpha) * v)


def normalized_gd_step(x: Tensor, g: Tensor, state: dict, *, lr: float, power: float, offset: float) -> None:
    """β-normalized GD (Chen, Zhou, Liang & Lu, arXiv:2303.02854), per tensor, with an offset δ::

        x_{t+1} = x_t − γ ∇f(x_t) / (δ + ‖∇f(x_t)‖)^β
    """
    x.sub_(lr * g / (offset + float(g.norm())) ** power)


def random_scaling_sgdm_step(x: Tensor, g: Tensor, state: dict, *, lr: float, beta: float, seed: int) -> None:
    """SGDM with random scaling (Zhang & Cutkosky, arXiv:2405.09742)::

        m_t = β m_{t−1} + (1 − β) g_t;   x_t = x_{t−1} − s_t η m_t,   s_t ~ Exp(1)

    with ``s_t`` the ``t``-th draw of :func:`~optimlab.transforms.extrapolation.exp1_draw` for ``seed``.
    """
    t = state["t"] = state.get("t", 0) + 1
    m = state["m"] = beta * state.get("m", torch.zeros_like(x)) + (1 - beta) * g
    x.sub_(exp1_draw(seed, t) * lr * m)


def secant_adam_step(theta: Tensor, g: Tensor, state: dict, *, lr: float, beta1: float, beta2: float, eps: float,
                     gain: float, kappa_beta: float) -> None:
    """Adam on a secant-corrected gradient (optimlab's reading of arXiv:2604.15392)::

        κ_t = ‖g_t − g_{t−1}‖ / ‖θ_t − θ_{t−1}‖;   c_t = γ κ̄_{t−1} / (κ̄_{t−1} + κ_t)   (κ̄_1 = κ_2)
        κ̄_t = β_κ κ̄_{t−1} + (1 − β_κ) κ_t;   g̃_t = g_t + c_t (g_t − g_{t−1})   (g̃_1 = g_1)
        Adam (Kingma & Ba, arXiv:1412.6980) on g̃_t: m, v, bias corrections, θ ← θ − η m̂ / (√v̂ + ε)
    """
    t = state["t"] = state.get("t", 0) + 1
    if t == 1:
        gt = g
    else:
        kappa = float((g - state["g_prev"]).norm()) / float((theta - state["theta_prev"]).norm())
        kbar = state.get("kbar", kappa)
        c = gain * kbar / (kbar + kappa)
        state["kbar"] = kappa_beta * kbar + (1 - kappa_beta) * kappa
        gt = g + c * (g - state["g_prev"])
    state["g_prev"], state["theta_prev"] = g.clone(), theta.clone()
    m = state["m"] = beta1 * state.get("m", torch.zeros_like(theta)) + (1 - beta1) * gt
    v = state["v"] = beta2 * state.get("v", torch.zeros_like(theta)) + (1 - beta2) * gt * gt
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    theta.sub_(lr * m_hat / (v_hat.sqrt() + eps))
