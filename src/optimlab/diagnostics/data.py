"""Data, loss and module-mode conventions shared by every curvature measurement.

**Loss convention.** A loss function is called as ``loss_fn(model, batch) -> Tensor`` and returns
the *mean* loss over the examples of ``batch`` as a 0-dim tensor (like ``reduction="mean"``).
``supervised_loss(criterion)`` builds one from an ``(output, target)`` criterion such as
``torch.nn.functional.mse_loss``; it also exposes the split into ``forward`` and ``output_loss``
that Gauss–Newton products need.

**Data convention.** ``data`` is either one batch or an iterable of batches:

- one batch: a tensor, a mapping (dict), or a tuple/list whose items are all tensors, e.g. ``(x, y)``;
- otherwise ``data`` is iterated (a list of batches, a ``DataLoader``, a generator) and each item is
  a batch. ``max_batches`` keeps only the first ones.

The batches are materialized once (references, not copies), so every Hessian-vector product of a
measurement sees exactly the same examples. The measured function is the example-weighted mean

    L(θ) = Σ_b n_b · L_b(θ) / Σ_b n_b,

with n_b the leading dimension of the first tensor in batch b. Every result carries a
``DataInfo`` that states how many batches and examples were used.

**Module modes (BatchNorm, dropout).** Curvature is measured under an explicit ``ModePolicy``;
nothing is switched silently, and the model is left exactly as it was found:

- ``bn="batch"`` (default): BatchNorm-type layers normalize with the statistics of the batch in
  hand, as in a training step, so the Hessian is that of the training loss. They update scratch
  copies of their running statistics, so measuring never moves the model's own buffers.
- ``bn="running"``: BatchNorm-type layers use their stored running statistics (eval behaviour).
- ``dropout="off"`` (default): dropout layers are the identity (eval behaviour); the Hessian is that
  of the deterministic network.
- ``dropout="fixed"``: dropout layers stay active, with one mask per batch drawn from
  ``seed + batch_index`` and reused for every product, so the operator is one fixed symmetric
  matrix (Lanczos needs that) — the Hessian of one dropout realization.

Other modules keep their ``training`` flag. Every forward pass runs under a forked random-number
generator seeded with ``seed + batch_index``, so any randomness inside the model is also fixed
per batch, and the caller's random stream is not consumed. All flags are restored afterwards.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.dropout import _DropoutNd

Batch = Any
LossFn = Callable[[nn.Module, Batch], torch.Tensor]

BN_MODES = ("batch", "running")
DROPOUT_MODES = ("off", "fixed")


@dataclass(frozen=True)
class DataInfo:
    """Which data a measurement used: number of batches and of examples (leading dimensions)."""

    num_batches: int
    num_examples: int

    def __str__(self) -> str:
        return f"{self.num_examples} examples in {self.num_batches} batch(es)"


def _is_single_batch(data: Any) -> bool:
    if isinstance(data, (torch.Tensor, Mapping)):
        return True
    if isinstance(data, (tuple, list)):
        return len(data) > 0 and all(isinstance(item, torch.Tensor) for item in data)
    return False


def _first_tensor(batch: Batch) -> torch.Tensor | None:
    if isinstance(batch, torch.Tensor):
        return batch
    items = batch.values() if isinstance(batch, Mapping) else batch
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        return None
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


def batch_size(batch: Batch) -> int:
    """Number of examples in ``batch``: the leading dimension of its first tensor (1 if none)."""
    first = _first_tensor(batch)
    if first is None or first.dim() == 0:
        return 1
    return int(first.shape[0])


def as_batches(data: Any, max_batches: int | None = None) -> tuple[list[Batch], list[float], DataInfo]:
    """Normalize ``data`` to a list of batches, their weights n_b / N, and a ``DataInfo``."""
    if max_batches is not None and (not isinstance(max_batches, int) or max_batches < 1):
        raise ValueError(f"max_batches must be a positive int or None, got {max_batches!r}")
    if data is None or isinstance(data, (str, bytes)):
        raise ValueError(f"data must be a batch or an iterable of batches, got {data!r}")
    if _is_single_batch(data):
        batches = [data]
    else:
        if not isinstance(data, Iterable):
            raise ValueError(f"data must be a batch or an iterable of batches, got {type(data).__name__}")
        batches = []
        for batch in data:
            if max_batches is not None and len(batches) >= max_batches:
                break
            batches.append(batch)
    if not batches:
        raise ValueError("data: the iterable yielded no batches")
    sizes = [batch_size(b) for b in batches]
    total = sum(sizes)
    if total <= 0:
        raise ValueError(f"data: batches hold no examples (sizes {sizes})")
    return batches, [s / total for s in sizes], DataInfo(len(batches), total)


def check_loss(value: Any, where: str = "loss_fn") -> torch.Tensor:
    """Raise a ValueError unless ``value`` is a 0-dim (or one-element) floating tensor."""
    if not isinstance(value, torch.Tensor) or value.numel() != 1 or not value.is_floating_point():
        got = f"shape {tuple(value.shape)}, dtype {value.dtype}" if isinstance(value, torch.Tensor) else repr(type(value))
        raise ValueError(f"{where} must return a scalar floating tensor (mean loss over the batch), got {got}")
    return value.reshape(())


class SupervisedLoss:
    """``loss_fn(model, batch) = criterion(model(batch[input_key]), batch[target_key])``.

    Also exposes ``forward(model, batch)`` (the network output) and ``output_loss(output, batch)``
    (the loss as a function of that output), which Gauss–Newton products need.
    """

    def __init__(self, criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 input_key: Any = 0, target_key: Any = 1) -> None:
        if not callable(criterion):
            raise ValueError(f"criterion must be callable, got {criterion!r}")
        self.criterion = criterion
        self.input_key = input_key
        self.target_key = target_key

    def forward(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(batch[self.input_key])

    def output_loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return check_loss(self.criterion(output, batch[self.target_key]), "criterion")

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.output_loss(self.forward(model, batch), batch)

    def __repr__(self) -> str:
        name = getattr(self.criterion, "__name__", type(self.criterion).__name__)
        return f"supervised_loss({name})"


def supervised_loss(criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    input_key: Any = 0, target_key: Any = 1) -> SupervisedLoss:
    """Wrap an ``(output, target) -> mean loss`` criterion into the ``loss_fn(model, batch)`` convention."""
    return SupervisedLoss(criterion, input_key, target_key)


@dataclass(frozen=True)
class ModePolicy:
    """How BatchNorm and dropout behave while curvature is measured (see the module docstring).

    bn: ``"batch"`` (batch statistics, running statistics restored) or ``"running"``.
    dropout: ``"off"`` (identity) or ``"fixed"`` (active, one fixed mask per batch).
    seed: base seed of the per-batch random stream (batch b uses ``seed + b``).
    """

    bn: str = "batch"
    dropout: str = "off"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.bn not in BN_MODES:
            raise ValueError(f"bn must be one of {BN_MODES}, got {self.bn!r}")
        if self.dropout not in DROPOUT_MODES:
            raise ValueError(f"dropout must be one of {DROPOUT_MODES}, got {self.dropout!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")

    def describe(self) -> str:
        bn = "batch statistics (running stats restored)" if self.bn == "batch" else "running statistics"
        dropout = "off" if self.dropout == "off" else f"fixed masks (seed {self.seed} + batch index)"
        return f"BatchNorm: {bn}; dropout: {dropout}"

    @contextlib.contextmanager
    def applied(self, model: nn.Module, batch_index: int = 0, plan: "ModulePlan | None" = None) -> Iterator[None]:
        """Set the documented modes, fix the random stream, and restore everything on exit.

        plan: ``ModulePlan(model)``, precomputed by callers that enter this often.
        """
        plan = ModulePlan(model) if plan is None else plan
        flags = [m.training for m in plan.modules]
        # Batch-statistics mode updates the running buffers in place: hand the layers scratch
        # clones and put the original tensors back afterwards. (Copying values back instead would
        # bump versions of tensors the autograd graph saved, and break later backward passes.)
        saved = [dict(m._buffers) if self.bn == "batch" else {} for m in plan.norms]
        for m, buffers in zip(plan.norms, saved):
            for name, value in buffers.items():
                if value is not None:
                    m._buffers[name] = value.clone()
            m.training = self.bn == "batch"
        for m in plan.dropouts:
            m.training = self.dropout == "fixed"
        # Fork the generators by hand: torch.random.fork_rng + manual_seed cost ~0.5 ms per call,
        # a third of a small model's gradient; saving and reseeding the generators in use is ~10 µs.
        states = [g.get_state() for g in plan.generators]
        try:
            for g in plan.generators:
                g.manual_seed(self.seed + batch_index)
            yield
        finally:
            for g, state in zip(plan.generators, states):
                g.set_state(state)
            for m, buffers in zip(plan.norms, saved):
                m._buffers.update(buffers)
            for m, flag in zip(plan.modules, flags):
                m.training = flag


class ModulePlan:
    """The modules a ``ModePolicy`` touches, found once per model: all, norm layers, dropout layers,
    and the random generators of the devices the parameters live on."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = list(model.modules())
        self.norms = [m for m in self.modules if isinstance(m, _NormBase)]
        self.dropouts = [m for m in self.modules if isinstance(m, _DropoutNd)]
        cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
        self.generators = [torch.default_generator] + [torch.cuda.default_generators[i] for i in cuda]
