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
