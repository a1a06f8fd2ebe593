"""DoG and L-DoG (Ivgi, Hinder, Carmon, "DoG is SGD's Best Friend", arXiv:2302.12022) with polynomial-decay
averaging, transcribed literally: the parameters are concatenated into one vector for DoG, and each tensor
is its own vector for L-DoG. Float64-friendly; no fast paths.

``dog_step(xs, gs, state, ...)`` takes the list of parameter tensors ``x_t`` (written in place with
``x_{t+1}``), their gradients and a plain dict; ``state["xbar"]`` is the average when ``gamma`` is given.
"""

from __future__ import annotations

import math

import torch

__all__ = ["dog_step", "ldog_step"]


def _flat(ts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


def _average(xs: list[torch.Tensor], state: dict, t: int, gamma: float | None) -> None:
    """x̄_t = (1 − (γ+1)/(t+γ)) x̄_{t−1} + (γ+1)/(t+γ) x_t   (x̄_1 = x_1)."""
    if gamma is None:
        return
    w = (gamma + 1) / (t + gamma)
    if "xbar" not in state:
        state["xbar"] = [x.detach().clone() for x in xs]
    state["xbar"] = [(1 - w) * a + w * x for a, x in zip(state["xbar"], xs)]


def dog_step(xs: list[torch.Tensor], gs: list[torch.Tensor], state: dict, *, lr: float = 1.0,
             reps_rel: float = 1e-6, eps: float = 1e-8, gamma: float | None = None) -> None:
    """One DoG step over all of ``xs`` as one vector::

        t = 0:  x_0 kept,  r̄ = reps_rel·(1 + ‖x_0‖),  G = ε + ‖g_0‖²
        t ≥ 1:  r̄ = max(r̄, ‖x_t − x_0‖),             G = G + ‖g_t‖²
        x_{t+1} = x_t − lr·(r̄/√G)·g_t
    """
    x, g = _flat(xs), _flat(gs)
    if "x0" not in state:
        state.update(t=0, x0=x.clone(), rbar=reps_rel * (1 + float(x.norm())), G=eps + float(g @ g))
    else:
        state["rbar"] = max(state["rbar"], float((x - state["x0"]).norm()))
        state["G"] = state["G"] + float(g @ g)
    state["t"] += 1
    eta = lr * state["rbar"] / math.sqrt(state["G"])
    for xi, gi in zip(xs, gs):
        xi.sub_(eta * gi)
    _average(xs, state, state["t"], gamma)


def ldog_step(xs: list[torch.Tensor], gs: list[torch.Tensor], states: list[dict], *, lr: float = 1.0,
              reps_rel: float = 1e-6, eps: float = 1e-8) -> None:
    """L-DoG: :func:`dog_step` applied to each tensor on its own (``states[i]`` for ``xs[i]``)."""
    for x, g, st in zip(xs, gs, states):
        dog_step([x], [g], st, lr=lr, reps_rel=reps_rel, eps=eps)


def udog_step(x: torch.Tensor, grad_fn, state: dict, *, lr: float = 1.0, reps_rel: float = 1e-6,
              eps: float = 1e-8) -> None:
    """One U-DoG step (optimlab's reading, see :mod:`optimlab.transforms.udog`) on a flat vector ``x`` = z̄
    (written in place); ``grad_fn(x) -> gradient``; weights α_t = t::

        t = 1: x0 = y = z̄, r̄ = reps_rel(1 + ‖x0‖), G = ε, M = g(z̄)
        t ≥ 2: y ← y − α_{t−1} η_{t−1} g(z̄);  G ← G + α_{t−1}²‖g(z̄) − M‖²;  r̄ ← max(r̄, ‖y − x0‖)
               x̃ = (α_t y + A_{t−1} z̄)/A_t;  M = g(x̃)
        η = lr r̄/√(G + α_t²‖M‖²);  z = y − α_t η M;  z̄ ← (α_t z + A_{t−1} z̄)/A_t
    """
    g = grad_fn(x)
    if "t" not in state:
        state.update(t=1, x0=x.clone(), y=x.clone(), rbar=reps_rel * (1 + float(x.norm())), G=eps)
        M = g
    else:
        t, a = state["t"] + 1, float(state["t"])
        state["t"] = t
        state["y"] = state["y"] - a * state["eta"] * g
        state["G"] += a * a * float((g - state["M"]).square().sum())
        state["rbar"] = max(state["rbar"], float((state["y"] - state["x0"]).norm()))
        A_prev, A = t * (t - 1) / 2, t * (t + 1) / 2
        M = grad_fn((t * state["y"] + A_prev * x) / A)
    t = state["t"]
    A_prev, A = t * (t - 1) / 2, t * (t + 1) / 2
    eta = lr * state["rbar"] / math.sqrt(state["G"] + t * t * float(M.square().sum()))
    z = state["y"] - t * eta * M
    x.copy_((t * z + A_prev * x) / A)
    state["M"], state["eta"] = M, eta
