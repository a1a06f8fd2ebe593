"""F2SA: a fully first-order bilevel method (no Hessian-vector products).

Kwon, Kwon, Wright, Nowak, "A Fully First-Order Method for Stochastic Bilevel Optimization" (ICML 2023,
arXiv:2301.10945). With a penalty λ (increasing over outer steps), per outer step:

    y ← y − α ∇_y g(x, y)                                      (``inner_steps`` times; y ≈ argmin g)
    z ← z − α (∇_y f(x, z)/λ + ∇_y g(x, z))                    (``inner_steps`` times; z ≈ argmin f/λ + g)
    x.grad = ∇_x f(x, z) + λ (∇_x g(x, z) − ∇_x g(x, y))       (then any optimizer steps on x)

The z step is the coverage table's z ← z − α'(∇_y f + λ∇_y g) with α' = α/λ, which keeps one inner step
size α stable while λ grows. λ_k = min(lam_max, lam0 + lam_growth·k) for outer step k (our schedule; the
paper's is polynomial in k).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from .hypergrad import Loss, _detached, _grad, _plist, _scalar

__all__ = ["F2SA"]


class F2SA:
    """Keeps y and z between outer steps; ``hypergradient(x)`` advances them and returns x's estimate."""

    def __init__(self, inner_loss: Loss, outer_loss: Loss, y0: Sequence[Tensor], *, lr: float = 0.1,
                 inner_steps: int = 10, lam0: float = 1.0, lam_growth: float = 1.0, lam_max: float = 100.0) -> None:
        for name, v in (("lr", lr), ("lam0", lam0), ("lam_max", lam_max)):
            if not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"f2sa: {name} must be > 0, got {v!r}")
        if not isinstance(inner_steps, int) or inner_steps < 1:
            raise ValueError(f"f2sa: inner_steps must be an int >= 1, got {inner_steps!r}")
        if not isinstance(lam_growth, (int, float)) or lam_growth < 0:
            raise ValueError(f"f2sa: lam_growth must be >= 0, got {lam_growth!r}")
        self.inner_loss, self.outer_loss = inner_loss, outer_loss
        self.lr, self.inner_steps = float(lr), inner_steps
        self.lam0, self.lam_growth, self.lam_max = float(lam0), float(lam_growth), float(lam_max)
        self.y = _detached(_plist(y0, "inner"))
        self.z = _detached(self.y)
        self.steps = 0

    @property
    def lam(self) -> float:
        return min(self.lam_max, self.lam0 + self.lam_growth * self.steps)

    def hypergradient(self, x: Sequence[Tensor]) -> list[Tensor]:
        xs = _detached(_plist(x, "outer"), False)
        lam = self.lam
        for _ in range(self.inner_steps):
            gy = _grad(_scalar(self.inner_loss(xs, self.y), "inner"), self.y, "inner loss")
            self.y = [(a - self.lr * b).detach().requires_grad_(True) for a, b in zip(self.y, gy)]
            obj = _scalar(self.outer_loss(xs, self.z), "outer") / lam + _scalar(self.inner_loss(xs, self.z), "inner")
            gz = _grad(obj, self.z, "penalised loss")
            self.z = [(a - self.lr * b).detach().requires_grad_(True) for a, b in zip(self.z, gz)]
        xg = _detached(xs)
        fx = _grad(_scalar(self.outer_loss(xg, self.z), "outer"), xg, "outer loss", allow_unused=True)
        gxz = _grad(_scalar(self.inner_loss(xg, self.z), "inner"), xg, "inner loss (at z)", allow_unused=True)
        gxy = _grad(_scalar(self.inner_loss(xg, self.y), "inner"), xg, "inner loss (at y)", allow_unused=True)
        self.steps += 1
        return [a + lam * (b - c) for a, b, c in zip(fx, gxz, gxy)]

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "y": [t.detach().clone() for t in self.y], "z": [t.detach().clone() for t in self.z]}

    def load_state_dict(self, sd: Any) -> None:
        if not isinstance(sd, dict) or set(sd) != {"steps", "y", "z"}:
            raise ValueError(f"f2sa: state dict must be a dict with keys ['steps', 'y', 'z'], got "
                             f"{sorted(sd) if isinstance(sd, dict) else type(sd).__name__}")
        if not isinstance(sd["steps"], int) or isinstance(sd["steps"], bool) or sd["steps"] < 0:
            raise ValueError(f"f2sa: saved 'steps' must be an int >= 0, got {sd['steps']!r}")
        for key in ("y", "z"):
            saved = sd[key]
            if not isinstance(saved, list) or len(saved) != len(self.y) or not all(
                    isinstance(s, Tensor) and s.shape == t.shape and s.dtype == t.dtype and bool(torch.isfinite(s).all())
                    for s, t in zip(saved, self.y)):
                raise ValueError(f"f2sa: saved {key!r} must be {len(self.y)} finite tensors shaped like the inner "
                                 f"parameters {[tuple(t.shape) for t in self.y]}")
        self.steps = sd["steps"]
        self.y, self.z = _detached(sd["y"]), _detached(sd["z"])
