"""Geometry of matrix updates (Muon-type optimizers): spectrum shape, orthogonality, row balance, descent.

For an update matrix U (m × n; higher-order tensors are viewed as (shape[0], −1), like conv kernels)
with singular values σ_1 ≥ … ≥ σ_r, r = min(m, n):

- stable rank ‖U‖_F²/‖U‖_2² = Σσ_i²/σ_1² ∈ [1, r] (dimensionless); r for an orthogonal update.
- condition number σ_1/σ_r (∞ if σ_r = 0); finite-step Newton–Schulz accuracy degrades with it.
- orthogonality error max_i |σ_i/c − 1|, with c the given scale or the RMS singular value, so any
  multiple of a (semi-)orthogonal matrix scores 0 — the residual of an approximate polar factor.
- row-norm imbalance: coefficient of variation std/mean of the row norms ‖U_i,:‖ (0 when every
  output neuron moves by the same amount). Orthogonalized updates can have very uneven neuron
  norms, the motivation of NorMuon ("NorMuon: Making Muon more efficient and scalable",
  arXiv:2510.05491).
- alignment ⟨G, U⟩/(‖G‖_F‖U‖_F) with the gradient G: the cosine between step and gradient.
- descent potential (one HVP): along the step θ − η·d, the local quadratic model decreases by
  η⟨g,d⟩ − ½η² dᵀHd; its best step is η* = ⟨g,d⟩/dᵀHd, with decrease ⟨g,d⟩²/(2 dᵀHd). "Muon is Not
  That Special: Random or Inverted Spectra Work Just as Well" (Shumaylov et al., arXiv:2605.11181)
  argues that optimizer performance is governed by alignment and descent potential, each optimizer
  tuning its step size around them; we use these second-order-model definitions (our reading;
  the paper's exact normalization may differ) and also report η/η*, the step-size optimality.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .data import DataInfo, LossFn
from .operators import HessianOperator, flatten


def _matrix(update: torch.Tensor, name: str = "update") -> torch.Tensor:
    if not isinstance(update, torch.Tensor) or update.dim() < 2 or update.numel() == 0:
        raise ValueError(f"{name} must be a non-empty tensor with at least 2 dimensions, "
                         f"got {getattr(update, 'shape', type(update).__name__)}")
    return update.detach().reshape(update.shape[0], -1).to(torch.float64)


def _singular_values(update: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(_matrix(update))


def stable_rank(update: torch.Tensor) -> float:
    """‖U‖_F² / ‖U‖_2² (0 for the zero matrix)."""
    s = _singular_values(update)
    return float((s ** 2).sum() / s[0] ** 2) if float(s[0]) > 0 else 0.0


def condition_number(update: torch.Tensor) -> float:
    """σ_max / σ_min over the min(m, n) singular values (∞ when singular)."""
    s = _singular_values(update)
    return float(s[0] / s[-1]) if float(s[-1]) > 0 else float("inf")


def orthogonality_error(update: torch.Tensor, scale: float | None = None) -> float:
    """max_i |σ_i / c − 1|, c = ``scale`` or the RMS singular value (0 for c × a semi-orthogonal matrix)."""
    s = _singular_values(update)
    c = float(s.pow(2).mean().sqrt()) if scale is None else scale
    if not (isinstance(c, (int, float)) and c > 0):
        raise ValueError(f"scale must be a positive number (or the update nonzero), got {c!r}")
    return float((s / c - 1).abs().max())


def row_norm_imbalance(update: torch.Tensor) -> float:
    """Coefficient of variation (std/mean, population std) of the row norms of U."""
    norms = _matrix(update).norm(dim=1)
    mean = float(norms.mean())
    return float(norms.std(unbiased=False)) / mean if mean > 0 else 0.0


def alignment(update: torch.Tensor, grad: torch.Tensor) -> float:
    """⟨G, U⟩ / (‖G‖_F ‖U‖_F) ∈ [−1, 1] (0 if either is zero)."""
    if not isinstance(grad, torch.Tensor) or not isinstance(update, torch.Tensor) or grad.shape != update.shape:
        raise ValueError(f"grad must be a tensor shaped like the update {tuple(getattr(update, 'shape', ()))}, "
                         f"got {getattr(grad, 'shape', type(grad).__name__)}")
    u, g = update.detach().reshape(-1).double(), grad.detach().reshape(-1).double()
    denom = float(u.norm() * g.norm())
    return float(u @ g) / denom if denom > 0 else 0.0


@dataclass
class UpdateGeometry:
    """Shape statistics of one update matrix (see the module docstring for each definition)."""

    shape: tuple[int, ...]
    stable_rank: float
    condition_number: float
    orthogonality_error: float
    row_norm_cv: float
    row_norm_max_over_mean: float
    spectral_norm: float
    frobenius_norm: float
    alignment: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def update_geometry(update: torch.Tensor, grad: torch.Tensor | None = None, *,
                    scale: float | None = None) -> UpdateGeometry:
    """All geometry statistics of ``update`` (one SVD), plus the alignment with ``grad`` if given."""
    M = _matrix(update)
    s = torch.linalg.svdvals(M)
    top, low = float(s[0]), float(s[-1])
    rms = float(s.pow(2).mean().sqrt())
    c = scale if scale is not None else rms
    norms = M.norm(dim=1)
    mean = float(norms.mean())
    return UpdateGeometry(
        shape=tuple(update.shape),
        stable_rank=float((s ** 2).sum()) / top ** 2 if top > 0 else 0.0,
        condition_number=top / low if low > 0 else float("inf"),
        orthogonality_error=float((s / c - 1).abs().max()) if c > 0 else float("inf"),
        row_norm_cv=float(norms.std(unbiased=False)) / mean if mean > 0 else 0.0,
        row_norm_max_over_mean=float(norms.max()) / mean if mean > 0 else 0.0,
        spectral_norm=top, frobenius_norm=float(s.norm()),
        alignment=alignment(update, grad) if grad is not None else None)


@dataclass
class UpdateCapture:
    """Per-parameter steps d = θ_before − θ_after recorded by ``capture_update`` (so θ_after = θ_before − d)."""

    updates: dict[str, torch.Tensor] = field(default_factory=dict)
    grads: dict[str, torch.Tensor] = field(default_factory=dict)

    def geometry(self, min_dim: int = 2) -> dict[str, UpdateGeometry]:
        """``update_geometry`` of every captured update with at least ``min_dim`` dimensions."""
        return {name: update_geometry(d, self.grads.get(name))
                for name, d in self.updates.items() if d.dim() >= min_dim}


@contextlib.contextmanager
def capture_update(model: nn.Module) -> Iterator[UpdateCapture]:
    """Record the step an optimizer takes inside the block, and the gradients present before it.

    with capture_update(model) as cap: optimizer.step()
    cap.geometry()  # per-matrix UpdateGeometry, with alignment to the gradient
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    before = {n: p.detach().clone() for n, p in named}
    cap = UpdateCapture(grads={n: p.grad.detach().clone() for n, p in named if p.grad is not None})
    yield cap
    for n, p in named:
        cap.updates[n] = before[n] - p.detach()


@dataclass
class DescentPotential:
    """Second-order view of a step θ − η·d (units: loss for potential, loss/parameter² for curvature)."""

    alignment: float          # ⟨g,d⟩ / (‖g‖‖d‖)
    slope: float              # ⟨g,d⟩: first-order decrease per unit η
    curvature: float          # dᵀHd
    optimal_step: float       # η* = ⟨g,d⟩ / dᵀHd (inf when dᵀHd ≤ 0)
    potential: float          # ⟨g,d⟩² / (2 dᵀHd): model decrease at η* (inf when dᵀHd ≤ 0)
    step_ratio: float | None  # η / η* for the given lr (1 = step-size optimal)
    predicted_decrease: float | None  # η⟨g,d⟩ − ½η² dᵀHd at the given lr
    num_hvps: int
    seconds: float
    data: DataInfo | None = None


def descent_potential(model: nn.Module, loss_fn: LossFn, data: Any,
                      direction: Mapping[str, torch.Tensor] | torch.Tensor, *, lr: float | None = None,
                      **operator_kwargs: Any) -> DescentPotential:
    """Alignment, curvature and descent potential of the step θ − lr·d on ``data`` (one HVP).

    direction: ``{parameter name: d}`` (missing parameters: zero; e.g. ``capture_update(...).updates``,
    then lr = 1 reproduces the step) or a flat vector over the trainable parameters.
    """
    start = time.perf_counter()
    op = HessianOperator(model, loss_fn, data, **operator_kwargs)
    if isinstance(direction, Mapping):
        names = {id(p): n for n, p in model.named_parameters()}
        known = {names[id(p)] for p in op.params if id(p) in names}
        unknown = sorted(set(direction) - known)
        if unknown:
            raise ValueError(f"direction has entries for unknown or frozen parameters: {unknown}")
        d = flatten([direction.get(names.get(id(p), ""), None) for p in op.params], op.params, op.dtype)
    elif isinstance(direction, torch.Tensor) and direction.shape == (op.dim,):
        d = direction.to(device=op.device, dtype=op.dtype)
    else:
        raise ValueError(f"direction must be a dict of parameter name -> tensor or a flat tensor of length {op.dim}")
    if lr is not None and not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number or None, got {lr!r}")
    g = op.gradient().double()
    d64 = d.double()
    slope = float(g @ d64)
    curvature = float(d64 @ op.matvec(d).double())
    denom = float(g.norm() * d64.norm())
    optimal = slope / curvature if curvature > 0 else float("inf")
    potential = slope ** 2 / (2 * curvature) if curvature > 0 else float("inf")
    ratio = lr / optimal if (lr is not None and curvature > 0 and optimal != 0) else None
    predicted = lr * slope - 0.5 * lr ** 2 * curvature if lr is not None else None
    return DescentPotential(slope / denom if denom > 0 else 0.0, slope, curvature, optimal, potential, ratio,
                            predicted, op.num_matvecs, time.perf_counter() - start, op.data_info)
