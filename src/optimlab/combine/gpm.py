"""Gradient Projection Memory (GPM): layer gradients projected off earlier tasks' input-activation spaces.

For each linear layer with weight W (out × in), GPM keeps an orthonormal basis M (in × k) of the inputs the
layer saw on earlier tasks, and projects every later gradient G ← G − G M Mᵀ, so W x is unchanged for
inputs x in span(M): earlier tasks' layer outputs do not move (to first order through this layer).

Basis update after a task (Saha, Garg, Roy, "Gradient Projection Memory for Continual Learning", ICLR 2021,
arXiv:2103.09762): with the layer inputs A (in × N), Â = A − M Mᵀ A; take Â's left singular vectors
u_1, u_2, … (σ decreasing) and add the fewest k with ‖M Mᵀ A‖² + Σ_{i≤k} σ_i² ≥ ε·‖A‖² (ε = ``threshold``,
default 0.97). ROGO's restricted oblique relaxation of this projection needs its paper (pending claim
``rogo-vs-gpm``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .base import need

__all__ = ["GPMProjection"]


class GPMProjection:
    name = "gpm"

    def __init__(self, model: nn.Module, threshold: float = 0.97) -> None:
        need(isinstance(threshold, float) and 0 < threshold <= 1, ValueError,
             f"{self.name}: threshold must be a float in (0, 1], got {threshold!r}")
        self.threshold = threshold
        self.layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        need(bool(self.layers), ValueError, f"{self.name}: the model has no nn.Linear layers")
        self.bases: dict[str, Tensor] = {}

    def capture(self, model: nn.Module, inputs: Tensor) -> dict[str, Tensor]:
        """Each linear layer's inputs (rows) on ``inputs``, by forward hooks."""
        acts: dict[str, Tensor] = {}
        handles = [m.register_forward_hook(lambda mod, args, out, n=n: acts.__setitem__(n, args[0].detach().reshape(-1, args[0].shape[-1])))
                   for n, m in self.layers.items()]
        try:
            with torch.no_grad():
                model(inputs)
        finally:
            for h in handles:
                h.remove()
        return acts

    def update(self, model: nn.Module, inputs: Tensor) -> dict[str, int]:
        """Grow each layer's basis from the inputs of a finished task; returns the basis sizes."""
        for n, A_rows in self.capture(model, inputs).items():
            A = A_rows.T.to(torch.float64)  # in × N
            total = float((A * A).sum())
            if total == 0:
                continue
            M = self.bases.get(n)
            inside = 0.0 if M is None else float(((M.T @ A) ** 2).sum())
            R = A if M is None else A - M @ (M.T @ A)
            U, S, _ = torch.linalg.svd(R, full_matrices=False)
            need_energy = self.threshold * total - inside
            if need_energy <= 0:
                continue
            cum = torch.cumsum(S ** 2, 0)
            k = int((cum < need_energy).sum()) + 1
            k = min(k, int((S > 1e-10 * S[0]).sum()) if S.numel() else 0)
            if k == 0:
                continue
            new = U[:, :k]
            self.bases[n] = new if M is None else torch.cat([M, new], 1)
        return {n: M.shape[1] for n, M in self.bases.items()}

    def project_grad_(self) -> None:
        """G ← G − G M Mᵀ for every layer with a basis (call between backward() and step())."""
        for n, M in self.bases.items():
            w = self.layers[n].weight
            if w.grad is not None:
                Md = M.to(w.grad.dtype)
                w.grad.sub_((w.grad @ Md) @ Md.T)

    def state_dict(self) -> dict[str, Any]:
        return {"combiner": self.name, "threshold": self.threshold, "bases": {n: M.clone() for n, M in self.bases.items()}}

    def load_state_dict(self, sd: Any) -> None:
        need(isinstance(sd, dict) and set(sd) == {"combiner", "threshold", "bases"} and sd["combiner"] == self.name,
             ValueError, f"{self.name}: not a GPM state dict")
        need(sd["threshold"] == self.threshold, ValueError,
             f"{self.name}: state saved with threshold={sd['threshold']!r}, this one has {self.threshold!r}")
        bases = sd["bases"]
        need(isinstance(bases, dict), TypeError, f"{self.name}: saved 'bases' must be a dict")
        out = {}
        for n, M in bases.items():
            need(n in self.layers, ValueError, f"{self.name}: saved basis for unknown layer {n!r}")
            d_in = self.layers[n].weight.shape[1]
            need(isinstance(M, Tensor) and M.dim() == 2 and M.shape[0] == d_in and M.shape[1] <= d_in
                 and M.dtype == torch.float64 and bool(torch.isfinite(M).all()), ValueError,
                 f"{self.name}: saved basis of {n!r} must be a finite float64 [{d_in}, k] tensor")
            err = float((M.T @ M - torch.eye(M.shape[1], dtype=M.dtype)).abs().max()) if M.shape[1] else 0.0
            need(err < 1e-6, ValueError, f"{self.name}: saved basis of {n!r} is not orthonormal (error {err:.2e})")
            out[n] = M.clone()
        self.bases = out
