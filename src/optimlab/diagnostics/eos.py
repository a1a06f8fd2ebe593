"""Edge-of-stability monitor: sharpness, its threshold and the gradient's top-eigenspace overlap, every k steps.

Under full-batch gradient descent the sharpness λ_1(H) first rises ("progressive sharpening") and
then hovers at 2/η (Cohen, Kaur, Li, Kolter, Talwalkar, arXiv:2103.00065); for Adam the
preconditioned sharpness λ_1(P⁻¹H) hovers at (2+2β1)/((1−β1)η) (Cohen et al., arXiv:2207.14484).
Gradient descent also moves mostly inside the top Hessian eigenspace (Gur-Ari, Roberts, Dyer,
"Gradient Descent Happens in a Tiny Subspace", arXiv:1812.04754), measured here as
overlap = ‖V_kᵀ g‖² / ‖g‖² ∈ [0, 1], with V_k the top-k unit eigenvectors.

Usage, in any training loop::

    monitor = EoSMonitor(every=10, k=4)
    for step in range(num_steps):
        ...
        monitor.step(step, model, loss_fn, batch, optimizer)   # measures when step % every == 0
    monitor.history[-1].ratio                                   # sharpness / threshold

Each record states its cost (seconds, HVPs) and the data it used. Successive measurements
warm-start Lanczos from the previous top eigenvector, which usually halves the HVPs.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .data import LossFn
from .lanczos import _generator, lanczos
from .operators import HessianOperator, PreconditionedOperator
from .sharpness import StabilityThreshold, find_second_moment, optimizer_preconditioner, stability_threshold


def gradient_overlap(gradient: torch.Tensor, eigenvectors: torch.Tensor) -> float:
    """‖Vᵀg‖²/‖g‖²: the fraction of the squared gradient norm inside span of the (orthonormal) rows of V."""
    g = gradient.reshape(-1).to(torch.float64)
    V = eigenvectors.reshape(-1, g.numel()).to(torch.float64)
    norm2 = float(g @ g)
    return float(((V @ g) ** 2).sum()) / norm2 if norm2 > 0 else 0.0


@dataclass
class EoSRecord:
    """One measurement. Curvatures in loss/parameter² (preconditioned ones in 1/η units).

    threshold/quantity: the optimizer's stability threshold and what it bounds ("sharpness" or
    "preconditioned sharpness"); ratio = that quantity / threshold (≈ 1 at the edge of stability).
    """

    step: int
    loss: float
    sharpness: float
    eigenvalues: list[float]
    grad_norm: float
    grad_overlap: float
    preconditioned_sharpness: float | None
    threshold: float | None
    quantity: str | None
    ratio: float | None
    lr: float | None
    num_hvps: int
    seconds: float
    num_batches: int
    num_examples: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class EoSMonitor:
    """Measure sharpness (and preconditioned sharpness) every ``every`` steps; keep a history.

    every: measurement period in steps (measures when ``step_idx % every == 0``).
    k: number of top Hessian eigenpairs (the overlap uses all k).
    preconditioned: "auto" (measure λ_max(P⁻¹H) when the optimizer has a second-moment state),
    True (require it) or False.
    threshold: override the threshold; otherwise inferred from the optimizer (None if it cannot be).
    tol, max_iters, seed: Lanczos settings. Other keywords go to ``HessianOperator`` (``bn``,
    ``dropout``, ``max_batches``, ``params``, ``cache_graph``).
    """

    def __init__(self, every: int = 10, k: int = 1, *, preconditioned: bool | str = "auto",
                 threshold: float | None = None, tol: float = 1e-3, max_iters: int | None = None,
                 warm_start: bool = True, seed: int = 0, **operator_kwargs: Any) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if preconditioned not in ("auto", True, False):
            raise ValueError(f"preconditioned must be 'auto', True or False, got {preconditioned!r}")
        if threshold is not None and not (isinstance(threshold, (int, float)) and threshold > 0):
            raise ValueError(f"threshold must be a positive number or None, got {threshold!r}")
        self.every, self.k, self.preconditioned = every, k, preconditioned
        self.threshold, self.tol, self.max_iters = threshold, tol, max_iters
        self.warm_start, self.seed = warm_start, seed
        self.operator_kwargs = operator_kwargs
        self.history: list[EoSRecord] = []
        self._previous: dict[str, torch.Tensor] = {}
        self._gen: torch.Generator | None = None

    @property
    def total_seconds(self) -> float:
        return sum(r.seconds for r in self.history)

    @property
    def total_hvps(self) -> int:
        return sum(r.num_hvps for r in self.history)

    def _start(self, name: str, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor | None:
        prev = self._previous.get(name)
        if not self.warm_start or prev is None or prev.numel() != dim:
            return None
        if self._gen is None:
            self._gen = _generator(device, self.seed)
        noise = torch.randn(dim, generator=self._gen, device=device, dtype=dtype)
        # A little noise keeps the Krylov space from starting inside an invariant subspace.
        return prev.to(dtype) + 0.1 * noise / noise.norm()

    def _wants_preconditioned(self, optimizer: torch.optim.Optimizer | None, params: list[torch.Tensor]) -> bool:
        if self.preconditioned is False or optimizer is None:
            if self.preconditioned is True:
                raise ValueError("preconditioned=True needs an optimizer in monitor.step(...)")
            return False
        try:
            for p in params:
                find_second_moment(optimizer, p)
        except ValueError:
            if self.preconditioned is True:
                raise
            return False
        return True

    def _threshold(self, optimizer: torch.optim.Optimizer | None, preconditioned: bool) -> tuple[float | None, str | None]:
        if self.threshold is not None:
            return float(self.threshold), "preconditioned sharpness" if preconditioned else "sharpness"
        if optimizer is None:
            return None, None
        try:
            found: StabilityThreshold = stability_threshold(optimizer)
        except ValueError:
            return None, None
        return found.value, found.quantity

    def should_measure(self, step_idx: int) -> bool:
        return step_idx % self.every == 0

    def step(self, step_idx: int, model: nn.Module, loss_fn: LossFn, data: Any,
             optimizer: torch.optim.Optimizer | None = None) -> EoSRecord | None:
        """Measure at ``step_idx`` if it is a multiple of ``every``; return the new record (or None)."""
        if not isinstance(step_idx, int) or step_idx < 0:
            raise ValueError(f"step_idx must be a nonnegative int, got {step_idx!r}")
        if not self.should_measure(step_idx):
            return None
        start = time.perf_counter()
        op = HessianOperator(model, loss_fn, data, seed=self.seed, **self.operator_kwargs)
        res = lanczos(op, min(self.k, op.dim), tol=self.tol, max_iters=self.max_iters, seed=self.seed + step_idx,
                      v0=self._start("hessian", op.dim, op.device, op.dtype), data=op.data_info)
        if res.eigenvectors is not None:
            self._previous["hessian"] = res.eigenvectors[0]
        grad = op.gradient()
        overlap = gradient_overlap(grad, res.eigenvectors) if res.eigenvectors is not None else float("nan")
        precond_value = None
        use_pre = self._wants_preconditioned(optimizer, op.params)
        if use_pre:
            P, _ = optimizer_preconditioner(optimizer, op.params)  # type: ignore[arg-type]
            pre_op = PreconditionedOperator(op, P.to(op.dtype))
            pre = lanczos(pre_op, 1, tol=self.tol, max_iters=self.max_iters, seed=self.seed + step_idx + 1,
                          v0=self._start("preconditioned", op.dim, op.device, op.dtype))
            if pre.eigenvectors is not None:
                self._previous["preconditioned"] = pre.eigenvectors[0]
            precond_value = pre.value
        threshold, quantity = self._threshold(optimizer, use_pre)
        measured = precond_value if quantity == "preconditioned sharpness" else res.value
        ratio = measured / threshold if (threshold and measured is not None) else None
        lr = float(optimizer.param_groups[0]["lr"]) if optimizer is not None and "lr" in optimizer.param_groups[0] else None
        record = EoSRecord(step_idx, op.loss(), res.value, res.eigenvalues.tolist(), float(grad.norm()), overlap,
                           precond_value, threshold, quantity, ratio, lr, op.num_matvecs,
                           time.perf_counter() - start, op.data_info.num_batches, op.data_info.num_examples)
        self.history.append(record)
        return record

    def as_dicts(self) -> list[dict[str, Any]]:
        """The history as plain dicts (for a results store)."""
        return [r.as_dict() for r in self.history]

    def summary(self) -> str:
        if not self.history:
            return "EoSMonitor: no measurements yet"
        last = self.history[-1]
        ratio = f"{last.ratio:.3f}" if last.ratio is not None else "n/a"
        return (f"EoSMonitor: {len(self.history)} measurements, {self.total_hvps} HVPs, {self.total_seconds:.2f} s; "
                f"last step {last.step}: sharpness {last.sharpness:.4g}, ratio to threshold {ratio}, "
                f"gradient overlap {last.grad_overlap:.3f}")
