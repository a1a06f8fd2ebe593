"""Stateless combiners: plain sum, PCGrad-style projection, ODICE's orthogonal-gradient update."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import Combiner, check_hparam, need

__all__ = ["Sum", "PCGrad", "ODICE"]


class Sum(Combiner):
    """d = Σ_i w_i g_i (weights default 1): what ``sum(losses).backward()`` gives."""

    name = "sum"

    def __init__(self, weights: list[float] | None = None) -> None:
        if weights is not None:
            weights = [check_hparam(self.name, f"weights[{i}]", w, -1e30, 1e30) for i, w in enumerate(weights)]
            need(len(weights) > 0, ValueError, f"{self.name}: weights is empty")
        self.weights = weights

    def combine(self, J: Tensor, values: Tensor | None = None) -> Tensor:
        self._check_rows(J)
        if self.weights is None:
            return J.sum(0)
        need(len(self.weights) == J.shape[0], ValueError,
             f"{self.name}: {len(self.weights)} weights for {J.shape[0]} losses")
        return torch.tensor(self.weights, dtype=J.dtype, device=J.device) @ J


class PCGrad(Combiner):
    """Gradient surgery (PCGrad): each g_i is projected off every g_j it conflicts with, then summed.

    For each i, over the other losses j in a random order: if ⟨g_i', g_j⟩ < 0, g_i' ← g_i' − ⟨g_i', g_j⟩/‖g_j‖²·g_j
    (original g_j, projected g_i'). d = Σ_i g_i'. The order comes from ``seed`` and the step count, so a
    restored state dict repeats the same orders. Yu et al., "Gradient Surgery for Multi-Task Learning"
    (NeurIPS 2020, arXiv:2001.06782).
    """

    name = "pcgrad"

    def __init__(self, seed: int = 0) -> None:
        need(isinstance(seed, int) and not isinstance(seed, bool), TypeError,
             f"{self.name}: seed must be an int, got {type(seed).__name__}")
        self.seed, self.steps = seed, 0

    def orders(self, m: int) -> list[list[int]]:
        """The visiting order of the other losses for each i at the current step."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.steps)
        out = []
        for i in range(m):
            others = [j for j in range(m) if j != i]
            out.append([others[k] for k in torch.randperm(len(others), generator=g).tolist()])
        return out

    def combine(self, J: Tensor, values: Tensor | None = None) -> Tensor:
        self._check_rows(J)
        m = J.shape[0]
        orders = self.orders(m)
        self.steps += 1
        sq = (J * J).sum(1)
        P = J.clone()
        for i in range(m):
            for j in orders[i]:
                dot = P[i] @ J[j]
                if dot < 0 and sq[j] > 0:
                    P[i] -= (dot / sq[j]) * J[j]
        return P.sum(0)

    def state_dict(self) -> dict[str, Any]:
        return {"combiner": self.name, "seed": self.seed, "steps": self.steps}

    def load_state_dict(self, sd: Any) -> None:
        self._check_sd(sd, {"combiner", "seed", "steps"})
        for k in ("seed", "steps"):
            need(isinstance(sd[k], int) and not isinstance(sd[k], bool), TypeError,
                 f"{self.name}: saved {k!r} must be an int, got {sd[k]!r}")
        need(sd["steps"] >= 0, ValueError, f"{self.name}: saved 'steps' must be >= 0, got {sd['steps']}")
        need(sd["seed"] == self.seed, ValueError,
             f"{self.name}: state dict saved with seed={sd['seed']}, this combiner has seed={self.seed}")
        self.steps = sd["steps"]


class ODICE(Combiner):
    """Orthogonal-gradient update: d = g_fwd + η·(g_bwd − ⟨g_bwd, g_fwd⟩/‖g_fwd‖²·g_fwd).

    Losses in this order: the forward term (gradient through V(s)), the backward term (through V(s')).
    The backward gradient keeps only its part orthogonal to the forward one, so it cannot undo the forward
    step. When ‖g_fwd‖ = 0 the backward gradient is used whole. η (``eta``, default 1.0: weight of the
    orthogonal backward part, dimensionless). Mao et al., "ODICE: Revealing the Mystery of Distribution
    Correction Estimation via Orthogonal-gradient Update" (ICLR 2024; arXiv id not checked here); rule as read in the
    coverage table (the paper's η schedule not transcribed).
    """

    name = "odice"
    n_losses = 2

    def __init__(self, eta: float = 1.0) -> None:
        self.eta = check_hparam(self.name, "eta", eta, 0.0, 1e6)

    def _order(self) -> str:
        return "forward term, backward term"

    def combine(self, J: Tensor, values: Tensor | None = None) -> Tensor:
        self._check_rows(J)
        f, b = J[0], J[1]
        sq = f @ f
        orth = b - ((b @ f) / sq) * f if sq > 0 else b
        return f + self.eta * orth
