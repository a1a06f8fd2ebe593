"""Orthogonal-gradient projection for continual learning: gradients are projected off a stored basis.

    g ← g − Mᵀ(M g),      M ∈ R^{k×n} with orthonormal rows (directions that earlier tasks depend on)

``OrthogonalProjection.add(vectors)`` orthonormalises new directions against the basis (two passes of
Gram–Schmidt, directions whose remainder is below ``tol`` relative to their norm are dropped);
``project(d)`` projects a flat vector; ``project_grad_(params)`` projects the parameters' ``.grad`` in place
(call between ``backward()`` and ``opt.step()``). ``ogd_directions`` gives OGD-GTL directions: the gradients
of each example's ground-truth logit (Farajtabar, Azizan, Mott, Li, "Orthogonal Gradient Descent for
Continual Learning", AISTATS 2020, arXiv:1910.07104). GPM (Saha et al., arXiv:2103.09762) uses a basis of
layer activations instead; the projection is the same operation.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .base import need
from .jacobian import as_params, per_sample_jacobian

__all__ = ["OrthogonalProjection", "ogd_directions"]


class OrthogonalProjection:
    name = "orthogonal_projection"

    def __init__(self, max_directions: int = 1000, tol: float = 1e-6) -> None:
        need(isinstance(max_directions, int) and max_directions >= 1, ValueError,
             f"{self.name}: max_directions must be an int >= 1, got {max_directions!r}")
        need(isinstance(tol, float) and 0 < tol < 1, ValueError, f"{self.name}: tol must be a float in (0, 1), got {tol!r}")
        self.max_directions, self.tol = max_directions, tol
        self.basis: Tensor | None = None  # [k, n], orthonormal rows

    @property
    def size(self) -> int:
        return 0 if self.basis is None else self.basis.shape[0]

    def add(self, vectors: Tensor) -> int:
        """Add the directions (rows of ``vectors`` [m, n]); returns how many were kept."""
        need(isinstance(vectors, Tensor) and vectors.dim() == 2 and vectors.is_floating_point(), ValueError,
             f"{self.name}: vectors must be a 2-D float tensor [m, n]")
        need(bool(torch.isfinite(vectors).all()), ValueError, f"{self.name}: vectors have non-finite entries")
        if self.basis is not None:
            need(vectors.shape[1] == self.basis.shape[1], ValueError,
                 f"{self.name}: vectors have {vectors.shape[1]} entries, the basis {self.basis.shape[1]}")
        rows = [] if self.basis is None else list(self.basis.unbind())
        kept = 0
        for v in vectors.to(torch.float64 if self.basis is None else self.basis.dtype):
            if len(rows) >= self.max_directions:
                break
            norm = v.norm()
            if norm == 0:
                continue
            r = v.clone()
            for _ in range(2):  # re-orthogonalise once: classical Gram–Schmidt loses orthogonality
                if rows:
                    B = torch.stack(rows)
                    r = r - B.T @ (B @ r)
            if r.norm() > self.tol * norm:
                rows.append(r / r.norm())
                kept += 1
        if rows:
            self.basis = torch.stack(rows)
        return kept

    def project(self, d: Tensor) -> Tensor:
        if self.basis is None:
            return d
        need(d.shape == (self.basis.shape[1],), ValueError,
             f"{self.name}: vector of shape {tuple(d.shape)}, the basis has {self.basis.shape[1]} entries")
        B = self.basis.to(d.dtype)
        return d - B.T @ (B @ d)

    def project_grad_(self, params: nn.Module | Sequence[Tensor]) -> None:
        plist, names = as_params(params, self.name)
        if self.basis is None:
            return
        for p, n in zip(plist, names):
            need(p.grad is not None, ValueError, f"{self.name}: parameter {n!r} has no .grad to project")
        flat = torch.cat([p.grad.reshape(-1).to(self.basis.dtype) for p in plist])
        out = self.project(flat)
        off = 0
        for p in plist:
            p.grad.copy_(out[off:off + p.numel()].view_as(p.grad))
            off += p.numel()

    def state_dict(self) -> dict[str, Any]:
        return {"combiner": self.name, "basis": None if self.basis is None else self.basis.clone()}

    def load_state_dict(self, sd: Any) -> None:
        need(isinstance(sd, dict) and set(sd) == {"combiner", "basis"} and sd["combiner"] == self.name, ValueError,
             f"{self.name}: not an orthogonal-projection state dict")
        B = sd["basis"]
        if B is not None:
            need(isinstance(B, Tensor) and B.dim() == 2 and B.is_floating_point() and bool(torch.isfinite(B).all()),
                 ValueError, f"{self.name}: saved basis must be a finite 2-D float tensor")
            need(B.shape[0] <= self.max_directions, ValueError,
                 f"{self.name}: saved basis has {B.shape[0]} directions, max_directions is {self.max_directions}")
            err = float((B @ B.T - torch.eye(B.shape[0], dtype=B.dtype)).abs().max()) if B.shape[0] else 0.0
            need(err < 1e-6, ValueError, f"{self.name}: saved basis rows are not orthonormal (error {err:.2e})")
            B = B.clone()
        self.basis = B


def ogd_directions(model: nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
    """Per-example gradients of the ground-truth logit (OGD-GTL), rows [batch, n] in parameter order."""
    J, _ = per_sample_jacobian(model, lambda out, y: out.gather(1, y[:, None]).sum(), inputs, targets,
                               where="ogd_directions")
    return J
