"""(N-)HARPG transcribed literally on one flat parameter vector (float64): Fatkhullin, Barakat, Kireeva, He,
"Stochastic Policy Gradient Methods: Improved Sample Complexity for Fisher-non-degenerate Policies"
(ICML 2023, arXiv:2302.01734), Algorithm (N)-HARPG, in minimisation form and with constant η_t = 1 − β, γ_t = lr.

``n_harpg(x0, grad, hvp, ...)`` runs the iteration with oracles ``grad(x)`` (the stochastic gradient at x)
and ``hvp(x, v)`` (the Hessian estimate at x times v), the draws ``q_t`` given by ``q(t)``. No fast paths.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["n_harpg"]


def n_harpg(x0: Tensor, grad: Callable[[Tensor], Tensor], hvp: Callable[[Tensor, Tensor], Tensor], steps: int,
            *, lr: float, momentum: float, q: Callable[[int], float], normalized: bool = True) -> list[Tensor]:
    """The iterates θ_1..θ_{steps+1} (θ_1 = x0); t counts from 1 as the optimizer's step counter.

    t = 1:  d_1 = g(θ_1)
    t ≥ 2:  θ̂_t = q_t θ_t + (1 − q_t) θ_{t−1};  v_t = ∇²f(θ̂_t)(θ_t − θ_{t−1})
            d_t = (1 − η)(d_{t−1} + v_t) + η g(θ_t),  η = 1 − momentum
    θ_{t+1} = θ_t − lr d_t/‖d_t‖   (HARPG, normalized=False: θ_t − lr d_t)
    """
    eta = 1.0 - momentum
    x = x0.clone()
    prev: Tensor | None = None
    d: Tensor | None = None
    out = [x.clone()]
    for t in range(1, steps + 1):
        g = grad(x)
        if t == 1:
            d = g.clone()
        else:
            qt = q(t)
            x_hat = qt * x + (1.0 - qt) * prev
            v = hvp(x_hat, x - prev)
            d = (1.0 - eta) * (d + v) + eta * g
        prev = x.clone()
        n = torch.linalg.vector_norm(d)
        x = x - lr * d / n if normalized else x - lr * d
        out.append(x.clone())
    return out
