"""The step context: what one step of a recipe may ask for beyond the gradients.

A recipe declares ``needs`` (a subset of :data:`NEEDS`); the engine builds one :class:`StepContext` per
step and hangs it on every bucket as ``bucket.ctx``:

* ``"loss"``: the closure's loss, checked (a scalar, finite under the ``nonfinite=`` policy) —
  ``ctx.loss_value`` (a float);
* ``"reevaluate"``: ``ctx.reevaluate(deltas)`` — loss and gradients at ``x + δ``: every parameter is
  perturbed, the closure called, and the parameters and their ``.grad`` restored exactly (bit-identical);
* ``"global"``: reductions over all parameters of the optimizer (‖g‖², ‖x − x₀‖², ⟨g, v⟩...), computed
  once per step by a pre-pass before the per-bucket chains: a transform's ``prepare(bucket)`` adds its
  bucket's partial sums with ``ctx.add(key, value)``, the chains read ``ctx.total(key)``;
* ``"jvp"``: Jacobian-vector products of the model's outputs (e.g. the logits), ``ctx.jvp(vectors)``: the
  closure carries ``closure.outputs``, a callable returning the outputs at the current parameters (the
  closure's batch); the product is a double backward through them
  (:func:`optimlab.diagnostics.operators.output_jvp`), so the model needs no forward-mode support;
* ``"value"``: function values only (zeroth-order methods): the closure computes and returns the loss
  without ``backward()``; the engine does not call it at the start of the step, the recipe calls
  ``ctx.value()`` (the closure under ``torch.no_grad()``, counted) at the points it chooses and sets
  ``ctx.loss`` (the step's return value). The engine steps every parameter that requires grad, whether or
  not it has a ``.grad``, and never reads a gradient;
* ``"outputs"``: the model's outputs on the closure's batch, their targets and the loss kind, for
  Gauss–Newton / Fisher curvature: the closure carries ``closure.batch``, a
  :class:`optimlab.core.model_batch.ModelBatch`; ``ctx.model()`` is the step's
  :class:`~optimlab.core.model_batch.OutputCurvature` (one forward pass, checked against the closure's loss;
  ``jvp``, ``vjp``, ``ggn`` products, the Jacobian, the loss at ``x + δ``);
* ``"hvp"``: Hessian-vector products (double backward through the gradients of a closure that called
  ``loss.backward(create_graph=True)``; Pearlmutter, Neural Computation 1994), ``ctx.hvp(vectors)``, or
  as a flat :class:`optimlab.diagnostics.operators.CurvatureOperator` via ``ctx.hessian_operator()``.

A transform may also define ``finish(bucket)``: a post-pass the engine runs on every bucket after every chain
has stepped (the ghosts-of-softmax controller applies a step it scaled by a global factor there).

``loss``, ``reevaluate``, ``value``, ``hvp``, ``jvp`` and ``outputs`` need a closure: ``step()`` without one is a ``TypeError`` naming the
optimizer. The closure follows torch's convention (zero the grads, compute the loss, backward, return
the loss) and must not modify the parameters: a closure that does is a ``ValueError`` (detected by the
parameters' version counters, so free). Every closure call is counted: ``ctx.evals`` this step,
``optimizer.closure_evals`` in total.

Recipes that declare nothing pay for one small object per step: no pre-pass, no checks — the closure's
return value is passed through untouched, as in torch.optim.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["NEEDS", "CLOSURE_NEEDS", "StepContext", "SkipStep", "check_needs", "norms", "dists", "sq_norm",
           "sq_dist", "dot"]

NEEDS = ("loss", "reevaluate", "global", "hvp", "jvp", "value", "outputs")
CLOSURE_NEEDS = frozenset({"loss", "reevaluate", "hvp", "jvp", "value", "outputs"})


class SkipStep(Exception):
    """Raised inside the pre-pass under ``nonfinite='skip'`` (a non-finite re-evaluation): the engine takes the
    step back (state as it was) and counts it in ``skipped_steps``."""


def check_needs(owner: str, needs: Iterable[str]) -> frozenset[str]:
    """Validate a recipe's ``needs`` declaration (a bug in a recipe, reported like user input)."""
    out = frozenset(needs)
    bad = sorted(out - set(NEEDS))
    if bad:
        raise ValueError(f"{owner}: needs must be a subset of {NEEDS}, got {bad}")
    return out


def _acc(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def norms(tensors: Sequence[Tensor]) -> Tensor:
    """‖t‖ of each tensor of a same-dtype list (one foreach kernel), in fp32 (fp64 for fp64)."""
    acc = _acc(tensors[0])
    # the dtype= form of _foreach_norm is a slow path (6x on CPU): only for bf16/fp16 inputs
    out = torch._foreach_norm(list(tensors), 2, dtype=acc) if tensors[0].dtype != acc else \
        torch._foreach_norm(list(tensors))
    return torch.stack(out)


def dists(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """‖a_i − b_i‖ of each pair, one tensor at a time: a foreach subtraction would allocate the whole
    difference at once (3x slower on CPU for 12 × 512² than per-tensor temporaries the allocator reuses)."""
    acc = _acc(a[0])
    return torch.stack([torch.linalg.vector_norm(x - y, dtype=acc) for x, y in zip(a, b)])


def sq_norm(tensors: Sequence[Tensor]) -> Tensor:
    """Σ‖t‖² over a list of same-dtype tensors."""
    return norms(tensors).square().sum()


def sq_dist(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """Σ‖a − b‖²."""
    return dists(a, b).square().sum()


def dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """Σ⟨a, b⟩, accumulated in fp32 (fp64 for fp64)."""
    acc = _acc(a[0])
    return torch.stack([torch.vdot(x.reshape(-1).to(acc), y.reshape(-1).to(acc)) for x, y in zip(a, b)]).sum()


class StepContext:
    """One step's loss, closure helpers, evaluation counter and global reductions (see the module doc)."""

    __slots__ = ("opt", "name", "needs", "closure", "loss", "evals", "skip", "params", "_partials",
                 "_totals", "_memo")

    def __init__(self, opt: Any, closure: Callable[[], Any] | None):
        self.opt = opt
        self.name: str = opt.name
        self.needs: frozenset[str] = opt.recipe.needs
        self.closure = closure
        self.loss: Any = None
        self.evals = 0
        self.skip = False
        self.params: list[Tensor] = [p for g in opt.param_groups for p in g["params"]] if self.needs else []
        self._partials: dict[str, tuple[str, list[Tensor]]] = {}
        self._totals: dict[str, Tensor] = {}
        self._memo: dict[str, Any] = {}

    # -- the closure -----------------------------------------------------------------------------
    @classmethod
    def begin(cls, opt: Any, closure: Callable[[], Any] | None) -> StepContext:
        """Refuse a missing closure, call the closure once, check its loss. Nothing is changed on refusal."""
        ctx = cls(opt, closure)
        wants = ctx.needs & CLOSURE_NEEDS
        if closure is None:
            if wants:
                raise TypeError(
                    f"{ctx.name}: step() needs a closure (this optimizer needs {sorted(wants)}); call "
                    f"opt.step(closure) with a closure that zeroes the grads, computes the loss, calls "
                    f"backward() and returns the loss")
            return ctx
        if wants == {"value"}:  # zeroth order: the recipe evaluates the closure itself (ctx.value())
            return ctx
        if not wants:  # torch.optim's behaviour: the closure's value passes through untouched
            with torch.enable_grad():
                ctx.loss = closure()
            ctx._count()
            return ctx
        ctx.loss = ctx._call(closure, "the closure")
        value = ctx.loss_value
        if not math.isfinite(value) and opt.nonfinite != "ignore":
            if opt.nonfinite == "skip":
                opt.skipped_steps += 1
                ctx.skip = True
                return ctx
            raise FloatingPointError(
                f"{ctx.name}: the closure's loss is {value}; nothing was updated (nonfinite='error'; "
                f"'skip' skips such steps, 'ignore' checks nothing)")
        if "jvp" in ctx.needs and not callable(getattr(closure, "outputs", None)):
            raise TypeError(f"{ctx.name}: needs Jacobian-vector products of the model's outputs; give the closure "
                            f"an attribute 'outputs', a callable returning them on the closure's batch "
                            f"(closure.outputs = lambda: model(x))")
        if "outputs" in ctx.needs:
            from .model_batch import ModelBatch

            if not isinstance(getattr(closure, "batch", None), ModelBatch):
                raise TypeError(f"{ctx.name}: needs the model's outputs; give the closure an attribute 'batch', "
                                f"closure.batch = optimlab.core.ModelBatch(lambda: model(x), y, 'cross_entropy') "
                                f"(or build it with optimlab.core.model_closure(opt, model, x, y))")
        if "hvp" in ctx.needs and not any(p.grad is not None and p.grad.requires_grad for p in ctx.params):
            raise TypeError(f"{ctx.name}: needs Hessian-vector products, but the gradients carry no graph; "
                            f"call loss.backward(create_graph=True) in the closure")
        return ctx

    def _count(self) -> None:
        self.evals += 1
        self.opt.closure_evals += 1

    def _call(self, closure: Callable[[], Any], what: str, grad: bool = True) -> Any:
        versions = [p._version for p in self.params]
        with torch.enable_grad() if grad else torch.no_grad():
            loss = closure()
        self._count()
        for i, (p, v) in enumerate(zip(self.params, versions)):
            if p._version != v:
                raise ValueError(f"{self.name}: {what} modified parameter {self._label(i)} in place; a closure "
                                 f"must only compute the loss and gradients (zero_grad, forward, backward)")
        if isinstance(loss, Tensor):
            if loss.numel() != 1:
                raise TypeError(f"{self.name}: the closure must return a scalar loss, got a tensor of shape "
                                f"{tuple(loss.shape)}")
        elif isinstance(loss, bool) or not isinstance(loss, (int, float)):
            raise TypeError(f"{self.name}: the closure must return a scalar loss (tensor or number), "
                            f"got {type(loss).__name__}")
        return loss

    def _label(self, i: int) -> str:
        p = self.params[i]
        for g in self.opt.param_groups:
            for j, q in enumerate(g["params"]):
                if q is p:
                    names = g.get("param_names")
                    return repr(names[j]) if names else f"#{j} of the {g['role']!r} group"
        return f"#{i}"

    @property
    def loss_value(self) -> float:
        """The closure's loss as a float (one device sync, cached)."""
        if "loss_value" not in self._memo:
            if self.loss is None:
                raise TypeError(f"{self.name}: no loss this step (step() was called without a closure)")
            self._memo["loss_value"] = float(self.loss.detach() if isinstance(self.loss, Tensor) else self.loss)
        return self._memo["loss_value"]

    def reevaluate(self, deltas: Sequence[Tensor | None]) -> tuple[Tensor | float, list[Tensor | None]]:
        """Loss and gradients at ``x + δ`` (``deltas[i]`` for ``ctx.params[i]``; None: not moved).

        The parameters are restored from a copy (bit-identical, not by subtracting δ), and each
        ``p.grad`` is restored to the very tensor it was: the gradients at the perturbed point are
        returned, never left in ``.grad``.
        """
        if "reevaluate" not in self.needs:
            raise RuntimeError(f"{self.name}: reevaluate() used by a recipe that does not declare "
                               f"needs={{'reevaluate'}}")
        if len(deltas) != len(self.params):
            raise ValueError(f"{self.name}: reevaluate() takes one delta per parameter ({len(self.params)}), "
                             f"got {len(deltas)}")
        moved = [(p, d) for p, d in zip(self.params, deltas) if d is not None]
        saved = [p.detach().clone() for p, _ in moved]
        grads = [p.grad for p in self.params]
        for p in self.params:
            p.grad = None
        try:
            if moved:
                torch._foreach_add_([p for p, _ in moved], [d for _, d in moved])
            loss = self._call(self.closure, "the closure, called by reevaluate(),")
            new = [p.grad for p in self.params]
            if self.opt.nonfinite != "ignore":
                self._check_second_point(loss, new)
        finally:
            for (p, _), s in zip(moved, saved):
                p.copy_(s)
            for p, g in zip(self.params, grads):
                p.grad = g
        return loss, new

    def _check_second_point(self, loss: Any, grads: Sequence[Tensor | None]) -> None:
        from . import finite

        value = float(loss.detach() if isinstance(loss, Tensor) else loss)
        present = [g for g in grads if g is not None]
        bad = not math.isfinite(value) or (present and finite.first_nonfinite(present) is not None)
        if not bad:
            return
        if self.opt.nonfinite == "skip":
            raise SkipStep()
        what = f"loss {value}" if not math.isfinite(value) else "gradient has NaN or Inf"
        raise FloatingPointError(f"{self.name}: at the re-evaluated point the closure's {what}; nothing was updated "
                                 f"(nonfinite='error'; 'skip' skips such steps, 'ignore' checks nothing)")
    def value(self) -> Tensor | float:
        """The closure's loss at the current parameters, under ``torch.no_grad()`` (need ``"value"``): no
        graph and no ``.grad`` is created, so the memory is that of inference. Counted like every call."""
        if "value" not in self.needs:
            raise RuntimeError(f"{self.name}: value() used by a recipe that does not declare needs={{'value'}}")
        try:
            return self._call(self.closure, "the closure", grad=False)
        except RuntimeError as err:
            if "does not require grad" not in str(err):
                raise
            raise TypeError(f"{self.name}: a zeroth-order method evaluates the loss only: the closure must "
                            f"compute and return the loss without calling backward() (it is called under "
                            f"torch.no_grad())") from err

    # -- Hessian-vector products -----------------------------------------------------------------
    def hvp(self, vectors: Sequence[Tensor]) -> list[Tensor]:
        """``H v`` (one tensor per parameter of ``ctx.params``) by double backward through the gradients."""
        if "hvp" not in self.needs:
            raise RuntimeError(f"{self.name}: hvp() used by a recipe that does not declare needs={{'hvp'}}")
        pairs = [(i, p) for i, p in enumerate(self.params) if p.grad is not None and p.grad.requires_grad]
        try:
            with torch.enable_grad():
                out = torch.autograd.grad([p.grad for _, p in pairs], self.params,
                                          grad_outputs=[vectors[i] for i, _ in pairs], retain_graph=True,
                                          allow_unused=True)
        except RuntimeError as err:
            why = ("a tensor the closure's graph saved was modified in place after backward (take HVPs in the "
                   "recipe's prepare pre-pass, before any parameter is written)") if "inplace" in str(err) \
                else "the model has no second derivatives"
            raise ValueError(f"{self.name}: needs Hessian-vector products, but {why} "
                             f"(double backward failed: {err})") from err
        return [torch.zeros_like(p) if h is None else h for h, p in zip(out, self.params)]

    def jvp(self, vectors: Sequence[Tensor | None]) -> tuple[Tensor, Tensor]:
        """``(J v, outputs)``: the outputs' directional derivative along ``vectors`` (one per parameter of
        ``ctx.params``; None: zero) and the outputs, from ``closure.outputs`` (one forward, two backward)."""
        if "jvp" not in self.needs:
            raise RuntimeError(f"{self.name}: jvp() used by a recipe that does not declare needs={{'jvp'}}")
        from ..diagnostics.operators import output_jvp  # lazy: diagnostics sits above core

        versions = [p._version for p in self.params]
        try:
            out = output_jvp(self.closure.outputs, self.params, vectors)
        except RuntimeError as err:
            raise ValueError(f"{self.name}: needs Jacobian-vector products of the outputs, but double backward "
                             f"through closure.outputs failed: {err}") from err
        self._count()
        if any(p._version != v for p, v in zip(self.params, versions)):
            raise ValueError(f"{self.name}: closure.outputs modified a parameter in place")
        return out

    def model(self) -> Any:
        """The step's :class:`~optimlab.core.model_batch.OutputCurvature` (need ``"outputs"``): built on first
        use (one forward pass through ``closure.batch.outputs``, counted), its loss checked against the
        closure's; shared by every bucket of the step."""
        if "outputs" not in self.needs:
            raise RuntimeError(f"{self.name}: model() used by a recipe that does not declare needs={{'outputs'}}")
        if "model" not in self._memo:
            from .model_batch import OutputCurvature

            curv = OutputCurvature(self.name, self.closure.batch, self.params, self._count)
            curv.check_loss(self.loss_value)
            self._memo["model"] = curv
        return self._memo["model"]

    def hessian_operator(self) -> Any:
        """The Hessian at this step as a flat ``CurvatureOperator`` (for diagnostics' Lanczos etc.)."""
        from ..diagnostics.operators import CurvatureOperator, flatten, unflatten  # lazy: diagnostics sits above core

        ctx = self

        class _StepHessian(CurvatureOperator):
            def __init__(self) -> None:
                self.dim = sum(p.numel() for p in ctx.params)
                self.dtype, self.device = ctx.params[0].dtype, ctx.params[0].device
                self.num_matvecs = 0

            def matvec(self, v: Tensor) -> Tensor:
                self.num_matvecs += 1
                hv = ctx.hvp(unflatten(self._check_vector(v), ctx.params))
                return flatten(hv, ctx.params, self.dtype)

        return _StepHessian()

    # -- global reductions -----------------------------------------------------------------------
    def add(self, key: str, value: Tensor, op: str = "sum") -> None:
        """Add one bucket's partial ``value`` (a 0-d tensor) to the reduction ``key`` (``sum`` or ``max``)."""
        entry = self._partials.setdefault(key, (op, []))
        if entry[0] != op:
            raise RuntimeError(f"{self.name}: reduction {key!r} used with both {entry[0]!r} and {op!r}")
        entry[1].append(value)

    def total(self, key: str) -> Tensor:
        """The reduction ``key`` over every bucket of the step (computed once, on first read)."""
        if key not in self._totals:
            if key not in self._partials:
                raise KeyError(f"{self.name}: no partial sums for global reduction {key!r}; the pre-pass "
                               f"(a transform's prepare()) must add them")
            op, parts = self._partials[key]
            stacked = torch.stack([x.to(parts[0].dtype) for x in parts])
            self._totals[key] = stacked.sum() if op == "sum" else stacked.max()
        return self._totals[key]

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per step (e.g. a global step size read by every bucket)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def finish(self, jobs: Sequence[tuple[Any, Any]]) -> None:
        """The post-pass: every chain's ``finish`` hooks on every bucket, after every chain has stepped."""
        for c, b in jobs:
            for hook in c.finishes:
                hook(b)

    def prepare(self, jobs: Sequence[tuple[Any, Any]], fresh: Sequence[dict]) -> None:
        """The pre-pass: every chain's ``prepare`` hooks on every bucket, before any chain steps.

        ``jobs``: (chain, bucket) pairs; ``fresh``: state dicts created this step. If a hook refuses,
        the step counts are taken back and the fresh states emptied, so the state is as it was.
        """
        hooks = [(h, b) for c, b in jobs for h in c.prepares]
        self._partials.clear()  # a step whose buckets are rebuilt (a false non-finite alarm) prepares again
        self._totals.clear()
        if not hooks:
            return
        try:
            for hook, b in hooks:
                hook(b)
        except BaseException:
            for _, b in jobs:
                for st in b.states:
                    st["step"] -= 1
            for st in fresh:
                st.clear()
            for p in [p for p, st in self.opt.state.items() if not st]:
                del self.opt.state[p]  # no empty entries left behind: state_dict() stays as it was
            raise
