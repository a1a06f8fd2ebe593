"""The Transform contract, the Bucket a transform works on, and ``chain()``.

A *transform* is one named building block of an update rule (momentum, Adam moments, Newton–Schulz,
weight decay...). It declares the hyperparameters it reads from the param group, creates its state
for a parameter, and rewrites the *update* of a whole bucket at once. A *chain* threads the update
through its transforms and then applies it to the parameters.

The update of a bucket may be held in two deferred forms so that elementwise rules cost no more
memory passes than torch.optim's fused formulas:

* ``ratio``: ``u = num / den`` (Adam-type rules); applied with a single ``addcdiv``;
* ``scale``: a per-parameter scalar multiplier (bias correction, shape scaling).

Reading ``bucket.updates`` materialises ``u``. Transforms must never write into ``p.grad`` nor into
another transform's state; a transform that writes ``u`` in place asks ``bucket.writable()``, which
copies the update first if it still aliases a gradient or a state tensor (torch.optim.Muon
normalises its own bf16 momentum buffer for lack of exactly this rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from .hparams import HParam

__all__ = ["Transform", "Bucket", "Chain", "chain"]


class Bucket:
    """Parameters of one param group that share shape (when the chain needs it), dtype and device.

    Attributes: ``params``, ``grads`` (never written), ``states`` (the optimizer's per-parameter
    state dicts), ``steps`` (per-parameter step counts, already incremented for this step) and
    ``group`` (the param group, from which hyperparameters are read at step time), and ``ctx``, the step's
    :class:`~optimlab.core.context.StepContext` (closure loss, re-evaluation, global reductions).
    """

    __slots__ = ("params", "grads", "states", "steps", "group", "_u", "_num", "_den", "scale", "_owned",
                 "found_inf", "ctx")

    def __init__(self, params: list[Tensor], grads: list[Tensor], states: list[dict], steps: list[int],
                 group: dict[str, Any]):
        self.params = params
        self.grads = grads
        self.states = states
        self.steps = steps
        self.group = group
        self._u: list[Tensor] | None = grads
        self._num: list[Tensor] | None = None
        self._den: list[Tensor] | None = None
        self.scale: list[float] | None = None
        self._owned = False
        # set by the engine for a fused kernel: a 0-d tensor, 1.0 when some gradient is not finite (skip)
        self.found_inf: Tensor | None = None
        self.ctx: Any = None  # set by the engine

    # -- state access -------------------------------------------------------------------------
    def state(self, t: Transform, key: str) -> list[Tensor]:
        """The state tensors ``"<t.name>.<key>"`` of every parameter in the bucket."""
        k = f"{t.name}.{key}"
        return [s[k] for s in self.states]

    # -- the update ---------------------------------------------------------------------------
    @property
    def updates(self) -> list[Tensor]:
        """The update tensors, with any deferred ratio and scale materialised."""
        if self._num is not None:
            self._u = torch._foreach_div(self._num, self._den)
            self._num = self._den = None
            self._owned = True
        if self.scale is not None:
            if self._owned:
                torch._foreach_mul_(self._u, self.scale)
            else:
                self._u = torch._foreach_mul(self._u, self.scale)
                self._owned = True
            self.scale = None
        return self._u

    def set_updates(self, updates: list[Tensor], *, owned: bool) -> None:
        """Replace the update. ``owned=False`` when the tensors alias gradients or state."""
        self._u, self._num, self._den, self._owned = updates, None, None, owned

    def set_ratio(self, num: list[Tensor], den: list[Tensor]) -> None:
        """Set the update to ``num / den`` without materialising it (``den`` must be owned)."""
        self._u, self._num, self._den = None, num, den

    def scale_by(self, factors: Sequence[float]) -> None:
        """Multiply each parameter's update by a scalar, deferred to the apply step."""
        self.scale = list(factors) if self.scale is None else [a * b for a, b in zip(self.scale, factors)]

    def writable(self) -> list[Tensor]:
        """The update as tensors that may be written in place (copied if they alias anything)."""
        u = self.updates
        if not self._owned:
            self._u = [x.clone() for x in u]
            self._owned = True
        return self._u

    def descend(self, lr: float) -> None:
        """``p <- p - lr * scale * u``: the default way a chain applies its update."""
        if lr == 0:
            return
        scale = self.scale or [1.0] * len(self.params)
        if self._num is not None:
            torch._foreach_addcdiv_(self.params, self._num, self._den, [-lr * s for s in scale])
            return
        u = self._u
        if u[0].dtype != self.params[0].dtype:
            u = [x.to(self.params[0].dtype) for x in u]
        if all(s == scale[0] for s in scale):
            torch._foreach_add_(self.params, u, alpha=-lr * scale[0])
        else:
            for p, x, s in zip(self.params, u, scale):
                p.add_(x, alpha=-lr * s)


class Transform:
    """One building block of an update rule.

    Subclasses set ``name`` (the stable state prefix), ``hparams`` (the specs of the group
    hyperparameters they read), optionally ``same_shape = True`` (the bucket must hold parameters of
    one shape, e.g. to stack them for a batched matrix op), and implement ``update``.
    A transform that owns how the update is applied (e.g. schedule-free) implements ``apply``.
    A transform that needs a reduction over all parameters (DoG's ‖g‖², ‖x − x₀‖²) implements
    ``prepare(bucket)``: the engine calls it on every bucket before any chain steps (the pre-pass), and it
    adds its bucket's partial sums with ``bucket.ctx.add(key, value)``; ``update`` reads ``ctx.total(key)``.
    A transform that must act after every chain has stepped (the ghosts-of-softmax controller applies a step
    scaled by one factor over all parameters) implements ``finish(bucket)``, the post-pass.
    A transform may offer ``fuse(transforms) -> kernel | None``: a single fused kernel for a whole
    chain it recognises (e.g. torch's fused AdamW); the kernel returns False for a bucket it cannot
    take (device, dtype), which then runs through the transforms one by one.
    """

    name: ClassVar[str] = ""
    hparams: ClassVar[dict[str, HParam]] = {}
    same_shape: ClassVar[bool] = False
    rule: ClassVar[str] = ""  # one line of maths for describe()

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        """The state of this transform for one parameter (names without the prefix)."""
        return {}

    def check(self, group: dict[str, Any], owner: str) -> None:
        """Validate combinations of hyperparameters (single values are checked by their specs)."""

    def update(self, b: Bucket) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define update()")

    def __repr__(self) -> str:
        return self.name


class Chain:
    """Transforms applied in order; the update is then applied by the last transform's ``apply``
    if it has one, else by ``p <- p - lr * u``."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = tuple(transforms)
        names = [t.name for t in self.transforms]
        dup = {n for n in names if names.count(n) > 1}
        if dup or not all(names):
            raise ValueError(f"chain: transform names must be unique and non-empty, got {names}")
        specs: dict[str, HParam] = {"lr": LR}
        for t in self.transforms:
            for k, spec in t.hparams.items():
                if k in specs and specs[k] != spec:
                    raise ValueError(f"chain: hyperparameter {k!r} is declared differently by two transforms")
                specs[k] = spec
        self.hparams = specs
        self.same_shape = any(t.same_shape for t in self.transforms)
        last = self.transforms[-1] if self.transforms else None
        self._apply = getattr(last, "apply", None)
        self._fused = None
        for t in self.transforms:
            fuse = getattr(t, "fuse", None)
            self._fused = self._fused or (fuse(self.transforms) if fuse else None)
        self.fused = self._fused is not None  # whether a fused kernel may serve this chain
        self.prepares = tuple(t.prepare for t in self.transforms if hasattr(t, "prepare"))  # the pre-pass
        self.finishes = tuple(t.finish for t in self.transforms if hasattr(t, "finish"))  # the post-pass

    def init(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        state: dict[str, Tensor] = {}
        for t in self.transforms:
            for k, v in t.init(p, group).items():
                state[f"{t.name}.{k}"] = v
        return state

    def check(self, group: dict[str, Any], owner: str) -> None:
        for t in self.transforms:
            t.check(group, owner)

    def step_fused(self, b: Bucket) -> bool:
        """Run the chain's fused kernel on the bucket; False (nothing done) when it has none or declines."""
        return self._fused is not None and self._fused(b)

    def step(self, b: Bucket, *, fused: bool = True) -> None:
        if fused and self.step_fused(b):
            return
        for t in self.transforms:
            t.update(b)
        if self._apply is not None:
            self._apply(b)
        else:
            b.descend(b.group["lr"])

    def __repr__(self) -> str:
        return " → ".join(t.name for t in self.transforms) or "identity"


LR = HParam("float", 1e-3, "learning rate (units set by the chain: parameter units per step)", low=0.0)


def chain(*transforms: Transform) -> Chain:
    """Compose transforms into one update rule."""
    return Chain(transforms)
