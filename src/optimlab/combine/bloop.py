"""Bloop: the auxiliary gradient projected orthogonally to an EMA of the training gradient.

    ĝ ← (1 − ρ)·ĝ + ρ·g_train        (ĝ starts at the first g_train)
    d = g_train + λ·(g_aux − ⟨g_aux, ĝ⟩/‖ĝ‖²·ĝ)

Losses in this order: training loss, auxiliary loss. The auxiliary objective is minimised *among the
minimisers* of the training loss (a bilevel reading): its gradient never pushes along the (averaged)
training direction, so the training loss still reaches its minimum. The EMA makes the projection direction
stable under minibatch noise. Hyperparameters: λ (``lam``, default 0.1, weight of the projected auxiliary
gradient, dimensionless), ρ (``rho``, default 0.01, EMA rate per step; 1 = no averaging). The defaults are
ours, not taken from the paper; the EMA form follows the coverage table's reading of the abstract.
"Careful with that Scalpel: Improving Gradient Surgery with an EMA"
(arXiv:2402.02998).

State: ``ema`` (flat, [n]) and ``steps``; ``state_dict()``/``load_state_dict()`` round-trip it exactly and
reject a state saved under other hyperparameters or of another size.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import Combiner, check_hparam, need

__all__ = ["Bloop"]


class Bloop(Combiner):
    name = "bloop"
    n_losses = 2

    def __init__(self, lam: float = 0.1, rho: float = 0.01) -> None:
        self.lam = check_hparam(self.name, "lam", lam, 0.0, 1e6)
        self.rho = check_hparam(self.name, "rho", rho, 0.0, 1.0, low_open=True)
        self.ema: Tensor | None = None
        self.steps = 0

    def _order(self) -> str:
        return "training loss, auxiliary loss"

    def combine(self, J: Tensor, values: Tensor | None = None) -> Tensor:
        self._check_rows(J)
        g, a = J[0], J[1]
        if self.ema is None:
            self.ema = g.detach().clone()
        else:
            need(self.ema.shape == g.shape, ValueError,
                 f"{self.name}: the EMA has {self.ema.numel()} elements, the gradients have {g.numel()} "
                 f"(parameters changed since the state was created?)")
            self.ema.mul_(1.0 - self.rho).add_(g.to(self.ema.dtype), alpha=self.rho)
        self.steps += 1
        e = self.ema.to(J.dtype)
        sq = e @ e
        proj = a - ((a @ e) / sq) * e if sq > 0 else a
        return g + self.lam * proj

    def state_dict(self) -> dict[str, Any]:
        return {"combiner": self.name, "lam": self.lam, "rho": self.rho, "steps": self.steps,
                "ema": None if self.ema is None else self.ema.clone()}

    def load_state_dict(self, sd: Any) -> None:
        self._check_sd(sd, {"combiner", "lam", "rho", "steps", "ema"})
        for k in ("lam", "rho"):
            need(isinstance(sd[k], float) and sd[k] == getattr(self, k), ValueError,
                 f"{self.name}: state dict saved with {k}={sd[k]!r}, this combiner has {k}={getattr(self, k)!r}")
        steps, ema = sd["steps"], sd["ema"]
        need(isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0, ValueError,
             f"{self.name}: saved 'steps' must be an int >= 0, got {steps!r}")
        need((ema is None) == (steps == 0), ValueError,
             f"{self.name}: saved 'ema' is {'missing' if ema is None else 'present'} but steps={steps}")
        if ema is not None:
            need(isinstance(ema, Tensor) and ema.dim() == 1 and ema.is_floating_point() and ema.layout == torch.strided,
                 TypeError, f"{self.name}: saved 'ema' must be a dense 1-D float tensor, got "
                 f"{type(ema).__name__}{tuple(ema.shape) if isinstance(ema, Tensor) else ''}")
            need(bool(torch.isfinite(ema).all()), ValueError, f"{self.name}: saved 'ema' has non-finite entries")
            if self.ema is not None:
                need(ema.shape == self.ema.shape and ema.dtype == self.ema.dtype, ValueError,
                     f"{self.name}: saved 'ema' is {tuple(ema.shape)} {ema.dtype}, this combiner's is "
                     f"{tuple(self.ema.shape)} {self.ema.dtype}")
            ema = ema.clone()
        self.ema, self.steps = ema, steps

    def __repr__(self) -> str:
        return f"Bloop(lam={self.lam}, rho={self.rho})"
