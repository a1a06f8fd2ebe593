"""Zeroth-order rules, transcribed literally on the concatenated parameter vector (float64), for parity tests.

ZO-GD / ZO-GDM / ZO-Adam (Zeroth-Order Optimization at the Edge of Stability, arXiv:2604.14669):
``ĝ = (1/q) Σ_j [f(x + μ z_j) − f(x − μ z_j)]/(2μ) · z_j`` fed to gradient descent, heavy ball or Adam.
The directions are the shared randomness, taken from :func:`optimlab.transforms.zeroth_order.direction`
(the recipe regenerates the same stream chunk by chunk); everything else is written out here.

``f(xs)`` evaluates the loss at a list of tensors shaped like the parameters.
"""

from __future__ import annotations

import torch

from ..transforms.zeroth_order import direction

__all__ = ["zo_estimate", "zo_gd_step", "zo_gdm_step", "zo_adam_step", "zo_fw_step", "zo_fw_batched", "langevin_step", "zo_spider_step"]


def _flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def _split(x, like):
    out, i = [], 0
    for t in like:
        out.append(x[i:i + t.numel()].view_as(t))
        i += t.numel()
    return out


def zo_estimate(f, xs, step: int, *, mu: float = 1e-3, q: int = 1, seed: int = 0) -> torch.Tensor:
    """ĝ = (1/q) Σ_j (f(x + μz_j) − f(x − μz_j))/(2μ)·z_j (flat)."""
    x = _flat(xs)
    g = torch.zeros_like(x)
    for j in range(q):
        z = _flat([direction(t, seed, step, j, i) for i, t in enumerate(xs)])
        d = mu * z
        g += (float(f(_split(x + d, xs))) - float(f(_split(x - d, xs)))) / (2 * mu) / q * z
    return g


def _write(xs, x):
    for t, v in zip(xs, _split(x, xs)):
        t.copy_(v)


def zo_gd_step(f, xs, state: dict, *, lr: float = 1e-3, **est) -> None:
    """x ← x − lr·ĝ."""
    state["t"] = state.get("t", 0) + 1
    _write(xs, _flat(xs) - lr * zo_estimate(f, xs, state["t"], **est))


def zo_gdm_step(f, xs, state: dict, *, lr: float = 1e-3, momentum: float = 0.9, **est) -> None:
    """b ← ĝ (t = 1), b ← β b + ĝ (t > 1);  x ← x − lr·b."""
    state["t"] = state.get("t", 0) + 1
    g = zo_estimate(f, xs, state["t"], **est)
    state["b"] = g if state["t"] == 1 else momentum * state["b"] + g
    _write(xs, _flat(xs) - lr * state["b"])


def zo_adam_step(f, xs, state: dict, *, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, **est) -> None:
    """m ← β1 m + (1−β1)ĝ;  v ← β2 v + (1−β2)ĝ²;  x ← x − lr·(m/(1−β1^t)) / (√(v/(1−β2^t)) + ε)."""
    state["t"] = t = state.get("t", 0) + 1
    g = zo_estimate(f, xs, t, **est)
    b1, b2 = betas
    m = state["m"] = b1 * state.get("m", torch.zeros_like(g)) + (1 - b1) * g
    v = state["v"] = b2 * state.get("v", torch.zeros_like(g)) + (1 - b2) * g * g
    _write(xs, _flat(xs) - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps))


def zo_fw_step(f, xs, state: dict, *, lr: float = 1.0, constraint: str = "l1", radius: float = 1.0,
               seed: int = 0) -> None:
    """Sahu et al. (arXiv:1810.03233), t the 0-based step, d = Σ numel, z = Gaussian/‖Gaussian‖ (all params):
    c = 2/(d^{3/2}(t+8)^{1/3}), ρ = 4/(d^{1/3}(t+8)^{2/3}), γ = min(1, lr·2/(t+8));
    g ← (1−ρ)g + ρ·d·(f(x+cz) − f(x))/c·z;  v_i = LMO(g_i) per tensor;  x ← (1−γ)x + γv."""
    t = state.get("t", 0)
    state["t"] = t + 1
    x = _flat(xs)
    d = x.numel()
    c, rho, gamma = 2 / (d**1.5 * (t + 8) ** (1 / 3)), 4 / (d ** (1 / 3) * (t + 8) ** (2 / 3)), 2 / (t + 8)
    gamma = min(1.0, lr * gamma)
    z = _flat([direction(xi, seed, t + 1, 0, i) for i, xi in enumerate(xs)])
    z = z / z.norm()
    g = state.get("g", torch.zeros_like(x))
    g = state["g"] = (1 - rho) * g + rho * d * (float(f(_split(x + c * z, xs))) - float(f(xs))) / c * z
    vs = []
    for gi in _split(g, xs):
        gi = gi.reshape(-1)
        v = torch.zeros_like(gi)
        if constraint == "l1":
            k = int(gi.abs().argmax())
            v[k] = -radius * (1.0 if gi[k] >= 0 else -1.0)
        elif constraint == "simplex":
            v[int(gi.argmin())] = radius
        else:
            v = -radius * torch.sign(gi)
        vs.append(v)
    _write(xs, (1 - gamma) * x + gamma * torch.cat(vs))


def zo_fw_batched(f, x0: torch.Tensor, steps: int, *, radius: float = 1.0, generator=None,
                  record=()) -> dict[int, torch.Tensor]:
    """The same rule on the ℓ1 ball for ``R`` independent runs at once (rows of ``x0``; ``f`` maps (R, d) to
    (R,)), Gaussian directions from ``generator``; returns {t: x_t} for the steps in ``record``."""
    x = x0.clone()
    R, d = x.shape
    g = torch.zeros_like(x)
    out, want = {}, set(record)
    rows = torch.arange(R)
    for t in range(steps):
        c, rho, gamma = 2 / (d**1.5 * (t + 8) ** (1 / 3)), 4 / (d ** (1 / 3) * (t + 8) ** (2 / 3)), 2 / (t + 8)
        z = torch.randn(R, d, dtype=x.dtype, generator=generator)
        z = z / z.norm(dim=1, keepdim=True)
        g = (1 - rho) * g + rho * d * ((f(x + c * z) - f(x)) / c)[:, None] * z
        k = g.abs().argmax(dim=1)
        v = torch.zeros_like(x)
        v[rows, k] = -radius * torch.sign(g[rows, k])
        x = (1 - gamma) * x + gamma * v
        if t + 1 in want:
            out[t + 1] = x.clone()
    return out


def langevin_step(xs, gs, state: dict, *, lr: float = 1e-3, beta: float = 1e4, sphere: bool = False,
                  seed: int = 0) -> None:
    """x_i ← x_i − lr·g_i + √(2lr/β)·ξ_i (ξ_i the shared noise stream); x_i ← x_i/‖x_i‖ if sphere;
    avg_i ← avg_i + (x_i − avg_i)/t."""
    state["t"] = t = state.get("t", 0) + 1
    avgs = state.setdefault("avg", [torch.zeros_like(x) for x in xs])
    for i, (x, g) in enumerate(zip(xs, gs)):
        new = x - lr * g + (2 * lr / beta) ** 0.5 * direction(x, seed, t, 0, i)
        if sphere:
            new = new / new.norm()
        x.copy_(new)
        avgs[i] += (x - avgs[i]) / t


def zo_spider_step(f, xs, state: dict, *, lr: float = 1e-3, delta: float = 1e-3, epoch: int = 10, b1: int = 16,
                   b2: int = 2, seed: int = 0) -> None:
    """g(x; w) = d/(2δ)(f(x+δw) − f(x−δw))·w, w = z/‖z‖ (z the shared stream, salt 0);
    t ≡ 1 (mod epoch): v = mean_{j<b1} g(x_t; w_j); else v ← v + mean_{j<b2}[g(x_t; w_j) − g(x_{t−1}; w_j)];
    x_{t−1} ← x_t;  x ← x − lr·v."""
    from ..transforms.zeroth_order import _chunk_z, _chunks, _mix

    state["t"] = t = state.get("t", 0) + 1
    x = _flat(xs)
    d = x.numel()

    def w(j):
        z = torch.cat([torch.cat([_chunk_z(xi, _mix(seed, t, 0, j, i, k), c.numel()) for k, c in _chunks(xi)])
                       for i, xi in enumerate(xs)])
        return z / z.norm()

    def g(point, wj):
        return d / (2 * delta) * (float(f(_split(point + delta * wj, xs))) - float(f(_split(point - delta * wj, xs)))) * wj

    if (t - 1) % epoch == 0:
        v = sum(g(x, w(j)) for j in range(b1)) / b1
    else:
        v = state["v"] + sum(g(x, w(j)) - g(state["prev"], w(j)) for j in range(b2)) / b2
    state["v"], state["prev"] = v, x.clone()
    _write(xs, x - lr * v)
