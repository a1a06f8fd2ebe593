"""The ``"outputs"`` need: a step that sees the model's outputs on the closure's batch, their targets and the loss.

Gauss–Newton and natural-gradient methods (``natural_gradient``, ``egn``, ``sophia_g``, ``tngd``) need the
curvature of the loss *as a function of the model's outputs*: the generalised Gauss–Newton matrix
``G = Jᵀ H_f J`` (J: Jacobian of the outputs, H_f: Hessian of the loss with respect to the outputs), which for
the losses below is also the Fisher information of the model's predictive distribution. The user describes
the batch once, as a :class:`ModelBatch` hung on the closure::

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss
    closure.batch = optimlab.core.ModelBatch(lambda: model(x), y, "cross_entropy")
    opt.step(closure)

or builds the whole closure with :func:`model_closure` (``closure = model_closure(opt, model, x, y)``).

Losses (both are means over the rows of the outputs; outputs of shape (..., c) are flattened to rows):

* ``"cross_entropy"``: ``L = mean_i CE(f_i, y_i)`` (``F.cross_entropy``; targets: class indices);
  output Hessian per row ``diag(p) − ppᵀ``, p = softmax(f_i); model distribution Categorical(p);
* ``"mse"``: ``L = mean_i (1/c)‖f_i − y_i‖²`` (``F.mse_loss``: the mean over every entry); output Hessian
  (2/c)·I; model distribution N(f_i, (c/2)·I);
* ``"half_sse"``: ``L = mean_i ½‖f_i − y_i‖²`` (the squared error summed over outputs, halved: the lab's
  classification ``loss="mse"`` and :mod:`optimlab.linalg.gauss_newton`); output Hessian I; model
  distribution N(f_i, I).

The step checks once that the closure's loss equals the loss of ``outputs()`` against ``targets`` (relative
tolerance 1e-3, 2e-2 for half precision): a mismatched loss (``"mse"`` for ½‖f − y‖², label smoothing, a regulariser
in the closure) is a ``ValueError`` naming the two values, never a silently wrong curvature.

The step context builds one :class:`OutputCurvature` per step (``ctx.model()``): one forward pass whose graph
serves every product of the step (the parameters do not move before the chains run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["LOSSES", "ModelBatch", "model_closure", "batch_loss", "output_grad", "output_hessian_product",
           "sample_targets", "OutputCurvature"]

LOSSES = ("cross_entropy", "mse", "half_sse")


def _kappa(kind: str, c: int) -> float:
    """The squared losses as ``L = κ·mean_i ‖f_i − y_i‖²``: κ = 1/c (mse) or ½ (half_sse)."""
    return 1.0 / c if kind == "mse" else 0.5


@dataclass(frozen=True)
class ModelBatch:
    """The model's outputs on the closure's batch (``outputs()``: a forward pass at the current parameters,
    with its autograd graph), their ``targets`` and the ``loss`` kind (see the module doc)."""

    outputs: Callable[[], Tensor]
    targets: Tensor
    loss: str = "cross_entropy"

    def __post_init__(self) -> None:
        if not callable(self.outputs):
            raise TypeError(f"ModelBatch: outputs must be a callable returning the model's outputs "
                            f"(e.g. lambda: model(x)), got {type(self.outputs).__name__}")
        if not isinstance(self.targets, Tensor):
            raise TypeError(f"ModelBatch: targets must be a tensor, got {type(self.targets).__name__}")
        if self.loss not in LOSSES:
            raise ValueError(f"ModelBatch: loss must be one of {LOSSES}, got {self.loss!r}")


def model_closure(opt: Any, model: torch.nn.Module, inputs: Any, targets: Tensor,
                  loss: str = "cross_entropy") -> Callable[[], Tensor]:
    """A closure for ``opt.step``: zero the grads, ``loss`` of ``model(inputs)`` against ``targets``, backward,
    return the loss; with ``closure.batch`` (a :class:`ModelBatch`) and ``closure.outputs`` (for ``jvp``)."""
    batch = ModelBatch(lambda: model(inputs), targets, loss)

    def closure() -> Tensor:
        opt.zero_grad()
        value = batch_loss(loss, model(inputs), targets)
        value.backward()
        return value

    closure.batch = batch  # type: ignore[attr-defined]
    closure.outputs = batch.outputs  # type: ignore[attr-defined]
    return closure


def _rows(kind: str, f: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    c = f.shape[-1]
    f2 = f.reshape(-1, c)
    y2 = y.reshape(-1) if kind == "cross_entropy" else y.reshape(-1, c)
    if y2.shape[0] != f2.shape[0]:
        raise ValueError(f"ModelBatch: {f2.shape[0]} output rows but {y2.shape[0]} target rows "
                         f"(outputs {tuple(f.shape)}, targets {tuple(y.shape)})")
    return f2, y2


def batch_loss(kind: str, f: Tensor, y: Tensor) -> Tensor:
    """The mean loss of outputs ``f`` against targets ``y`` (the module doc's conventions)."""
    f2, y2 = _rows(kind, f, y)
    if kind == "cross_entropy":
        return torch.nn.functional.cross_entropy(f2, y2)
    return _kappa(kind, f2.shape[1]) * (f2 - y2.to(f2.dtype)).square().sum(1).mean()


def output_grad(kind: str, f: Tensor, y: Tensor) -> Tensor:
    """``∂L/∂f`` (rows × c) of the mean loss: ``(softmax(f) − onehot(y))/b`` or ``2κ(f − y)/b``."""
    f2, y2 = _rows(kind, f, y)
    b = f2.shape[0]
    if kind == "cross_entropy":
        p = torch.softmax(f2, dim=1)
        return (p - torch.nn.functional.one_hot(y2, f2.shape[1]).to(p.dtype)) / b
    return 2 * _kappa(kind, f2.shape[1]) * (f2 - y2.to(f2.dtype)) / b


def output_hessian_product(kind: str, f: Tensor, w: Tensor) -> Tensor:
    """``(∂²L/∂f²) w`` for the mean loss (rows × c): ``(p⊙w − p⟨p, w⟩)/b`` or ``2κ·w/b``."""
    f2 = f.reshape(-1, f.shape[-1])
    w2 = w.reshape(f2.shape).to(f2.dtype)
    b = f2.shape[0]
    if kind == "cross_entropy":
        p = torch.softmax(f2, dim=1)
        return (p * w2 - p * (p * w2).sum(1, keepdim=True)) / b
    return 2 * _kappa(kind, f2.shape[1]) * w2 / b


def sample_targets(kind: str, f: Tensor, gen: torch.Generator) -> Tensor:
    """Targets drawn from the model's own predictive distribution at outputs ``f`` (rows × c):
    Categorical(softmax(f)) or N(f, I/(2κ)) — Sophia-G's sampled labels (Bartlett: E[∇ℓ∇ℓᵀ] = ∇²ℓ)."""
    f2 = f.detach().reshape(-1, f.shape[-1])
    if kind == "cross_entropy":
        p = torch.softmax(f2.double(), dim=1)
        p = torch.nan_to_num(p, nan=1.0 / f2.shape[1]).clamp_min(0)
        return torch.multinomial(p.cpu(), 1, generator=gen).reshape(-1).to(f2.device)
    sd = (2 * _kappa(kind, f2.shape[1])) ** -0.5
    return f2 + sd * torch.randn(f2.shape, generator=gen, dtype=f2.dtype).to(f2.device)


class OutputCurvature:
    """One step's forward pass through ``closure.batch.outputs`` and the products built on it, over the
    parameters ``params`` (one tensor per parameter; J has one column per entry, in ``params`` order):
    ``jvp`` (J v), ``vjp`` (Jᵀ w), ``ggn`` (Jᵀ H_f J v), ``jacobian`` (J, rows·c × d, float64)."""

    def __init__(self, name: str, batch: ModelBatch, params: Sequence[Tensor], count: Callable[[], None]):
        self.name, self.kind, self.params, self._count = name, batch.loss, list(params), count
        with torch.enable_grad():
            out = batch.outputs()
        count()
        if not isinstance(out, Tensor) or not out.requires_grad or out.ndim < 1:
            raise ValueError(f"{name}: closure.batch.outputs() must return the model's outputs as a tensor that "
                             f"depends on the parameters, got {type(out).__name__}")
        self.out = out
        self.batch = batch
        with torch.enable_grad():  # a view taken under no_grad would have no grad_fn
            self.rows, self.targets = _rows(self.kind, out, batch.targets)  # (rows × c) with graph, and targets
        self.f = self.rows.detach()
        self._jtu: Any = None

    def check_loss(self, loss: float) -> None:
        """Refuse a closure whose loss is not the ModelBatch's loss (module doc)."""
        mine = float(batch_loss(self.kind, self.f.double(), self.targets))
        tol = 2e-2 if self.f.dtype in (torch.float16, torch.bfloat16) else 1e-3
        if not abs(mine - loss) <= tol * max(1.0, abs(loss)):
            raise ValueError(f"{self.name}: the closure's loss {loss:.6g} is not the {self.kind!r} loss of "
                             f"closure.batch.outputs() against its targets ({mine:.6g}); the Gauss–Newton "
                             f"curvature would not be the loss's (see optimlab.core.model_batch for the conventions)")

    @torch.no_grad()
    def loss_at(self, deltas: Sequence[Tensor | None]) -> float:
        """The batch loss at ``x + δ`` (one forward pass, no graph); the parameters are restored from a copy
        (bit-identical). A non-finite loss is returned as it is (a line search rejects it)."""
        moved = [(p, d) for p, d in zip(self.params, deltas) if d is not None]
        saved = [p.detach().clone() for p, _ in moved]
        try:
            for p, d in moved:
                p.add_(d.to(p.dtype))
            value = float(batch_loss(self.kind, self.batch.outputs().double(), self.batch.targets))
            self._count()
            return value
        finally:
            for (p, _), s in zip(moved, saved):
                p.copy_(s)

    def output_grad(self) -> Tensor:
        return output_grad(self.kind, self.f, self.targets)

    def vjp(self, w: Tensor, retain: bool = True) -> list[Tensor]:
        """``Jᵀ w`` for w of the outputs' shape (rows × c), one tensor per parameter."""
        with torch.enable_grad():
            out = torch.autograd.grad(self.rows, self.params, grad_outputs=w.reshape(self.rows.shape).to(
                self.rows.dtype), retain_graph=retain, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for g, p in zip(out, self.params)]

    def jvp(self, vectors: Sequence[Tensor]) -> Tensor:
        """``J v`` (rows × c) by the double-backward trick (Jᵀu is linear in a dummy u)."""
        with torch.enable_grad():
            if self._jtu is None:
                u = torch.zeros_like(self.rows, requires_grad=True)
                jtu = torch.autograd.grad(self.rows, self.params, grad_outputs=u, create_graph=True,
                                          allow_unused=True)
                self._jtu = (u, [i for i, t in enumerate(jtu) if t is not None and t.requires_grad], jtu)
            u, live, jtu = self._jtu
            if not live:
                return torch.zeros_like(self.f)
            (jv,) = torch.autograd.grad([jtu[i] for i in live], u,
                                        grad_outputs=[vectors[i].to(jtu[i].dtype) for i in live], retain_graph=True)
        return jv.detach()

    def ggn(self, vectors: Sequence[Tensor]) -> list[Tensor]:
        """``G v = Jᵀ H_f J v`` (H_f: the mean loss's Hessian in the outputs), one tensor per parameter."""
        return self.vjp(output_hessian_product(self.kind, self.f, self.jvp(vectors)))

    def jacobian(self) -> Tensor:
        """J: (rows·c) × d in float64, columns in ``params`` order (vmapped backward, one per output entry)."""
        n = self.rows.numel()
        eye = torch.eye(n, dtype=self.rows.dtype, device=self.rows.device).reshape(n, *self.rows.shape)
        with torch.enable_grad():
            cols = torch.autograd.grad(self.rows, self.params, grad_outputs=eye, retain_graph=True,
                                       allow_unused=True, is_grads_batched=True)
        return torch.cat([torch.zeros(n, p.numel(), dtype=torch.float64, device=p.device) if c is None
                          else c.reshape(n, -1).to(torch.float64) for c, p in zip(cols, self.params)], dim=1)

    def output_hessian_apply(self, M: Tensor) -> Tensor:
        """``Q M`` for M of (rows·c) × k (float64), blockwise: O(rows·c·k), Q never formed."""
        f = self.f.to(torch.float64)
        if self.kind != "cross_entropy":
            return 2 * _kappa(self.kind, f.shape[1]) * M
        b, c = f.shape
        p = torch.softmax(f, dim=1).unsqueeze(2)  # rows × c × 1
        M3 = M.reshape(b, c, -1)
        return (p * M3 - p * (p * M3).sum(1, keepdim=True)).reshape(M.shape)

    def output_hessian(self) -> Tensor:
        """Q: the (rows·c) × (rows·c) block-diagonal output Hessian of the per-row loss (float64; L's is Q/b)."""
        f = self.f.to(torch.float64)
        if self.kind != "cross_entropy":
            return 2 * _kappa(self.kind, f.shape[1]) * torch.eye(f.numel(), dtype=torch.float64, device=f.device)
        p = torch.softmax(f, dim=1)
        return torch.block_diag(*(torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)))
