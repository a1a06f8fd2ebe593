"""Curvature operators: exact Hessian-vector and Gauss–Newton-vector products for a model.

An operator acts on flat vectors of length ``dim`` (the parameters concatenated in order) and is a
fixed symmetric matrix: the data, the module modes and any randomness are frozen when it is built
(see ``optimlab.diagnostics.data``). It counts its products in ``num_matvecs``.

- ``HessianOperator``: Hv = ∇²L(θ)·v by double backward (Pearlmutter, "Fast Exact Multiplication by
  the Hessian", Neural Computation 1994): g = ∇L with ``create_graph``, then Hv = ∇(gᵀv).
  With ``cache_graph`` the graph of g is built once and every product is a single backward pass
  through it; the cache is dropped when a parameter is modified in place (``optimizer.step``).
- ``GGNOperator``: Gv = Jᵀ H_ℓ J v, with J the Jacobian of the network output and H_ℓ the Hessian
  of the loss in the output (Schraudolph, "Fast Curvature Matrix-Vector Products for Second-Order
  Gradient Descent", Neural Computation 2002). Jv is a reverse-over-reverse product, so no
  forward-mode support is needed. PSD whenever the loss is convex in the output.
- ``PreconditionedOperator``: P^{-1/2} A P^{-1/2} for a diagonal P; same spectrum as P^{-1}A, but
  symmetric, so Lanczos applies.
- ``DenseOperator``: an explicit symmetric matrix (quadratics, tests).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .data import DataInfo, LossFn, ModePolicy, ModulePlan, SupervisedLoss, as_batches, check_loss


def flatten(tensors: Sequence[torch.Tensor | None], like: Sequence[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """Concatenate ``tensors`` (None meaning zeros shaped like ``like``) into one flat vector."""
    parts = [(t if t is not None else torch.zeros_like(p)).reshape(-1) for t, p in zip(tensors, like)]
    if any(t.dtype != dtype for t in parts):
        parts = [t.to(dtype) for t in parts]
    return torch.cat(parts)


def unflatten(vec: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Split a flat vector into tensors shaped (and typed) like ``like``."""
    chunks = torch.split(vec, [p.numel() for p in like])
    return [c.view(p.shape) if c.dtype == p.dtype else c.view(p.shape).to(p.dtype) for c, p in zip(chunks, like)]


class CurvatureOperator:
    """A symmetric linear operator on flat parameter vectors (``dim``, ``dtype``, ``device``)."""

    dim: int
    dtype: torch.dtype
    device: torch.device
    num_matvecs: int = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """Rows of ``V`` (shape ``(n, dim)``) mapped through the operator."""
        return torch.stack([self.matvec(v) for v in V]) if len(V) else V.new_zeros((0, self.dim))

    def to_dense(self, chunk: int = 256) -> torch.Tensor:
        """The full ``dim × dim`` matrix in float64, from ``dim`` products (small operators only)."""
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        cols = [self.matmat(eye[i:i + chunk]).to(torch.float64) for i in range(0, self.dim, chunk)]
        return torch.cat(cols).T.contiguous()

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v)

    def _check_vector(self, v: torch.Tensor) -> torch.Tensor:
        if not isinstance(v, torch.Tensor) or v.shape != (self.dim,):
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"v must be a flat tensor of shape ({self.dim},), got {shape}")
        return v.to(device=self.device, dtype=self.dtype)


class DenseOperator(CurvatureOperator):
    """An explicit symmetric matrix ``A`` as an operator (for quadratics f(x) = ½ xᵀAx and tests)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be a square 2-D tensor, got {getattr(matrix, 'shape', matrix)!r}")
        self.matrix = matrix
        self.dim, self.dtype, self.device = matrix.shape[0], matrix.dtype, matrix.device
        self.num_matvecs = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.num_matvecs += 1
        return self.matrix @ self._check_vector(v)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        self.num_matvecs += len(V)
        return V.to(self.dtype) @ self.matrix.T


class PreconditionedOperator(CurvatureOperator):
    """``D A D`` with D = diag(P^{-1/2}): symmetric, with the eigenvalues of P^{-1}A.

    preconditioner: flat positive vector P (same length as ``base.dim``), e.g. Adam's √v̂ + ε.
    """

    def __init__(self, base: CurvatureOperator, preconditioner: torch.Tensor) -> None:
        if not isinstance(preconditioner, torch.Tensor) or preconditioner.shape != (base.dim,):
            raise ValueError(f"preconditioner must be a flat tensor of shape ({base.dim},), "
                             f"got {getattr(preconditioner, 'shape', preconditioner)!r}")
        if not bool((preconditioner > 0).all()):
            raise ValueError(f"preconditioner must be positive, got min {float(preconditioner.min()):.3g}")
        self.base = base
        self.scale = preconditioner.to(device=base.device, dtype=base.dtype).rsqrt()
        self.dim, self.dtype, self.device = base.dim, base.dtype, base.device

    @property
    def num_matvecs(self) -> int:  # type: ignore[override]
        return self.base.num_matvecs

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.scale * self.base.matvec(self.scale * self._check_vector(v))

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self.scale * self.base.matmat(self.scale * V.to(self.dtype))


def _select_params(model: nn.Module, params: Iterable[torch.Tensor] | None) -> list[torch.Tensor]:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    chosen = [p for p in model.parameters() if p.requires_grad] if params is None else list(params)
    seen: set[int] = set()
    unique = []
    for i, p in enumerate(chosen):
        if not isinstance(p, torch.Tensor) or not p.requires_grad:
            raise ValueError(f"params[{i}] must be a tensor with requires_grad=True, got {type(p).__name__}")
        if id(p) not in seen:
            seen.add(id(p))
            unique.append(p)
    if not unique:
        raise ValueError("params: the model has no trainable parameters to measure")
    devices = {p.device for p in unique}
    if len(devices) > 1:
        raise ValueError(f"params must live on one device, got {sorted(map(str, devices))}")
    return unique


class ModelOperator(CurvatureOperator):
    """Shared machinery: parameters, frozen data, module modes, graph cache, gradient and loss."""

    kind = "model"

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Any, *,
                 params: Iterable[torch.Tensor] | None = None, bn: str = "batch", dropout: str = "off",
                 seed: int = 0, max_batches: int | None = None, cache_graph: bool | None = None) -> None:
        if not callable(loss_fn):
            raise ValueError(f"loss_fn must be callable as loss_fn(model, batch), got {loss_fn!r}")
        if cache_graph not in (None, True, False):
            raise ValueError(f"cache_graph must be True, False or None (auto), got {cache_graph!r}")
        self.model, self.loss_fn = model, loss_fn
        self.params = _select_params(model, params)
        self.policy = ModePolicy(bn=bn, dropout=dropout, seed=seed)
        self._plan = ModulePlan(model)
        self.batches, self.weights, self.data_info = as_batches(data, max_batches)
        self.dim = sum(p.numel() for p in self.params)
        self.dtype = self.params[0].dtype
        for p in self.params:
            self.dtype = torch.promote_types(self.dtype, p.dtype)
        self.device = self.params[0].device
        # Auto: keep the graph when it is one batch (the common full-batch or fixed-batch case);
        # with many batches the graphs of all of them would have to be held at once.
        self.cache_graph = (len(self.batches) == 1) if cache_graph is None else cache_graph
        self.num_matvecs = 0
        self._cache: dict[int, Any] = {}
        self._grad: torch.Tensor | None = None
        self._loss: float | None = None
        self._versions = self._param_versions()

    @property
    def data(self) -> DataInfo:
        return self.data_info

    def describe(self) -> str:
        return f"{self.kind} of {self.dim} parameters on {self.data_info}; {self.policy.describe()}"

    def _param_versions(self) -> tuple[int, ...]:
        return tuple(p._version for p in self.params)

    def _refresh(self) -> None:
        versions = self._param_versions()
        if versions != self._versions:
            self._cache.clear()
            self._grad, self._loss = None, None
            self._versions = versions

    def _batch_loss(self, index: int) -> torch.Tensor:
        return check_loss(self.loss_fn(self.model, self.batches[index]))

    def _state(self, index: int) -> Any:
        """Build (or fetch) the per-batch autograd state a product needs."""
        if index in self._cache:
            return self._cache[index]
        with torch.enable_grad(), self.policy.applied(self.model, index, self._plan):
            state = self._build(index)
        if self.cache_graph:
            self._cache[index] = state
        return state

    def _build(self, index: int) -> Any:
        raise NotImplementedError

    def _product(self, state: Any, v_list: list[torch.Tensor], retain: bool) -> list[torch.Tensor | None]:
        raise NotImplementedError

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        v = self._check_vector(v)
        self._refresh()
        v_list = unflatten(v, self.params)
        parts = []
        for index in range(len(self.batches)):
            state = self._state(index)
            with torch.enable_grad():
                parts.append(flatten(self._product(state, v_list, retain=self.cache_graph), self.params, self.dtype))
        self.num_matvecs += 1
        return self._combine(parts)

    def _combine(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Σ_b w_b · part_b (a single batch has weight 1 and is returned as is)."""
        if len(parts) == 1:
            return parts[0]
        out = parts[0].mul_(self.weights[0])
        for part, weight in zip(parts[1:], self.weights[1:]):
            out.add_(part, alpha=weight)
        return out

    def gradient(self) -> torch.Tensor:
        """The flat gradient ∇L(θ) on the operator's data (no product is counted)."""
        self._refresh()
        if self._grad is None:
            grad = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
            loss = 0.0
            for index, weight in enumerate(self.weights):
                with torch.enable_grad(), self.policy.applied(self.model, index, self._plan):
                    value = self._batch_loss(index)
                    g = torch.autograd.grad(value, self.params, allow_unused=True)
                grad.add_(flatten(g, self.params, self.dtype), alpha=weight)
                loss += weight * float(value.detach())
            self._grad, self._loss = grad, loss
        return self._grad

    def loss(self) -> float:
        """The loss L(θ) on the operator's data."""
        self.gradient()
        return float(self._loss if self._loss is not None else float("nan"))


class HessianOperator(ModelOperator):
    """Exact Hessian-vector products of ``loss_fn`` on ``data`` (double backward).

    Cost of one product: one backward pass through the gradient graph when the graph is cached
    (about 1–2 gradients), plus one forward and one ``create_graph`` backward when it is not.
    """

    kind = "Hessian"

    def _build(self, index: int) -> Any:
        loss = self._batch_loss(index)
        grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
        if index == 0 and self._grad is None and len(self.weights) == 1:
            self._grad = flatten([None if g is None else g.detach() for g in grads], self.params, self.dtype)
            self._loss = float(loss.detach())
        return grads, live

    def _product(self, state: Any, v_list: list[torch.Tensor], retain: bool) -> list[torch.Tensor | None]:
        grads, live = state
        if not live:
            return [None] * len(self.params)
        return list(torch.autograd.grad([grads[i] for i in live], self.params,
                                        grad_outputs=[v_list[i] for i in live],
                                        retain_graph=retain, allow_unused=True))

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """Many products at once through one graph per batch (vectorized backward when supported)."""
        if len(V) <= 1:
            return super().matmat(V)
        self._refresh()
        V = V.to(device=self.device, dtype=self.dtype)
        out = torch.zeros_like(V)
        for index, weight in enumerate(self.weights):
            grads, live = self._state(index)
            if not live:
                continue
            outputs = [grads[i] for i in live]
            blocks = torch.split(V, [p.numel() for p in self.params], dim=1)
            cols = [blocks[i].reshape((len(V),) + self.params[i].shape).to(self.params[i].dtype) for i in live]
            with torch.enable_grad():
                try:
                    prod = torch.autograd.grad(outputs, self.params, grad_outputs=cols, retain_graph=True,
                                               allow_unused=True, is_grads_batched=True)
                    flat = torch.cat([(g if g is not None else torch.zeros((len(V),) + p.shape, dtype=p.dtype,
                                       device=p.device)).reshape(len(V), -1).to(self.dtype)
                                      for g, p in zip(prod, self.params)], dim=1)
                except RuntimeError:  # some ops have no batching rule for double backward
                    flat = torch.stack([flatten(self._product((grads, live), unflatten(v, self.params), True),
                                                self.params, self.dtype) for v in V])
            out.add_(flat, alpha=weight)
        self.num_matvecs += len(V)
        return out



class GGNOperator(ModelOperator):
    """Generalized Gauss–Newton products Gv = Jᵀ H_ℓ J v (Schraudolph 2002).

    ``loss_fn`` must be a ``SupervisedLoss`` (from ``supervised_loss(criterion)``) so the network
    output and the loss-of-output are separate. Equal to the Hessian when the model is linear in θ.
    """

    kind = "Gauss-Newton"

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Any, **kwargs: Any) -> None:
        if not isinstance(loss_fn, SupervisedLoss):
            raise ValueError("GGNOperator needs loss_fn = supervised_loss(criterion) (output and loss kept apart), "
                             f"got {loss_fn!r}")
        super().__init__(model, loss_fn, data, **kwargs)

    def _build(self, index: int) -> Any:
        batch = self.batches[index]
        out = self.loss_fn.forward(self.model, batch)  # type: ignore[attr-defined]
        loss = self.loss_fn.output_loss(out, batch)  # type: ignore[attr-defined]
        (g_out,) = torch.autograd.grad(loss, out, create_graph=True)
        # Reverse-over-reverse: Jᵀu is linear in the dummy u, so ∂(Jᵀu · v)/∂u = Jv.
        u = torch.zeros_like(out, requires_grad=True)
        jtu = torch.autograd.grad(out, self.params, grad_outputs=u, create_graph=True, allow_unused=True)
        live = [i for i, t in enumerate(jtu) if t is not None and t.requires_grad]
        return out, g_out, u, jtu, live

    def _product(self, state: Any, v_list: list[torch.Tensor], retain: bool) -> list[torch.Tensor | None]:
        out, g_out, u, jtu, live = state
        if not live or not g_out.requires_grad:
            return [None] * len(self.params)
        (jv,) = torch.autograd.grad([jtu[i] for i in live], u, grad_outputs=[v_list[i] for i in live],
                                    retain_graph=True)
        (hjv,) = torch.autograd.grad(g_out, out, grad_outputs=jv, retain_graph=True)
        return list(torch.autograd.grad(out, self.params, grad_outputs=hjv, retain_graph=retain, allow_unused=True))


OPERATORS = {"hessian": HessianOperator, "ggn": GGNOperator}


def make_operator(model: nn.Module, loss_fn: LossFn, data: Any, operator: str = "hessian",
                  **kwargs: Any) -> ModelOperator:
    """Build the named curvature operator (``"hessian"`` or ``"ggn"``) for ``model`` on ``data``."""
    if operator not in OPERATORS:
        raise ValueError(f"operator must be one of {sorted(OPERATORS)}, got {operator!r}")
    return OPERATORS[operator](model, loss_fn, data, **kwargs)


# -- Jacobian-vector products -----------------------------------------------------------------------
def output_jvp(outputs: Any, params: Sequence[torch.Tensor],
               vectors: Sequence[torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(J v, z)`` for ``z = outputs()`` (a callable of the current parameters) along ``v`` (one tensor per
    parameter, None = 0), by double backward: ``Jᵀu`` is linear in a dummy ``u``, and ``J v = ∇_u⟨Jᵀu, v⟩``
    (the "double-backward trick"; no forward-mode support needed; one forward, two backward passes)."""
    with torch.enable_grad():
        z = outputs()
        if not isinstance(z, torch.Tensor) or not z.requires_grad:
            raise RuntimeError("the outputs do not depend on the parameters (no autograd graph)")
        u = torch.zeros_like(z, requires_grad=True)
        grads = torch.autograd.grad(z, list(params), grad_outputs=u, create_graph=True, allow_unused=True)
        pairs = [(g, v) for g, v in zip(grads, vectors) if g is not None and v is not None]
        if not pairs:
            return torch.zeros_like(z).detach(), z.detach()
        (jv,) = torch.autograd.grad([g for g, _ in pairs], u, grad_outputs=[v.to(g.dtype) for g, v in pairs],
                                    allow_unused=True)
    return (torch.zeros_like(z) if jv is None else jv).detach(), z.detach()


def model_jvp(model: nn.Module, inputs: Any, vectors: Sequence[torch.Tensor | None]
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(J v, model(inputs))`` by forward mode (``torch.func.jvp`` over ``functional_call``); ``vectors``
    follow ``model.parameters()`` (trainable ones; None = 0). Falls back to :func:`output_jvp` for models
    whose operations have no forward-mode rule."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    names = [n for n, _ in named]
    tangents = tuple(torch.zeros_like(p) if v is None else v.to(p.dtype) for (_, p), v in zip(named, vectors))

    def f(*ps: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(model, dict(zip(names, ps)), (inputs,))

    try:
        out, jv = torch.func.jvp(f, tuple(p.detach() for _, p in named), tangents)
    except (RuntimeError, NotImplementedError):
        return output_jvp(lambda: model(inputs), [p for _, p in named], list(vectors))
    return jv.detach(), out.detach()
