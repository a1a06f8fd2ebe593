"""The task contract: a Task is configured by options and builds a TaskInstance from a seed.

A :class:`Task` subclass is a frozen, keyword-only dataclass whose fields are its options; it
validates them in ``__post_init__`` (``ValueError`` naming the option and the value). ``build(seed)``
returns a :class:`TaskInstance` that owns the model, the data stream, the loss and the evaluation.

Determinism: everything random in a task comes from ``torch.Generator`` objects seeded by
:func:`derive_seed` from the build seed and a stream name (and the step, for batches). Nothing reads
or advances the global torch / numpy / ``random`` generators.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "TaskSpec", "Task", "AccuracyTask", "TaskInstance", "derive_seed", "generator", "init_module_",
    "check_int", "check_float", "check_choice", "check_bool", "preserve_global_rng",
    "singular_value_metrics", "singular_value_names", "log_spaced_singular_values",
]


@dataclass(frozen=True)
class TaskSpec:
    """What a runner needs to know about a configured task.

    name: registry name. description: one line.
    default_steps: the default budget in optimizer steps (a few minutes at most on 2 CPU cores
        with AdamW at ``adamw`` hyperparameters).
    default_batch_size: examples per step; ``None`` means full batch (every step sees the same data).
    metrics: the keys ``evaluate`` returns. primary_metric: the one to compare runs on.
    maximize: whether a larger primary metric is better.
    adamw: AdamW hyperparameters that make progress within the default budget (a reference
        point for smoke runs, not a tuned optimum).
    options: the option values of the task. references: papers the setting follows.
    targets: metric -> target value that a well-tuned optimizer reaches within the default budget
        (``<=`` for losses, ``>=`` for accuracies: a metric whose name contains "acc"); steps-, evaluations- and
        time-to-target are measured against these, never against the optimizers in a table.
    """

    name: str
    description: str
    default_steps: int
    default_batch_size: int | None
    metrics: tuple[str, ...]
    primary_metric: str = "eval_loss"
    maximize: bool = False
    adamw: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    references: tuple[str, ...] = ()
    targets: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Task:
    """Base class of all tasks. Subclasses declare their options as dataclass fields."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    references: ClassVar[tuple[str, ...]] = ()
    #: time of one ``evaluate()`` in units of one AdamW training step at the default options
    #: (measured once on CPU, 1 thread; rounded up): the runner's default evaluation period keeps
    #: evaluation under 10% of training time from it (``optimlab.lab.steplog.default_eval_every``)
    eval_cost: ClassVar[float] = 1.0

    @property
    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(
            name=self.name, description=self.description, default_steps=self._default_steps(),
            default_batch_size=self._default_batch_size(), metrics=tuple(self._metrics()),
            primary_metric=self._primary_metric(), maximize=self._maximize(),
            adamw=dict(self._adamw()), options=self.options, references=self.references,
            targets=dict(self._targets()))

    def build(self, seed: int, device: str | torch.device = "cpu") -> "TaskInstance":
        """The model, data and evaluation for ``seed``; data is generated on CPU, then moved."""
        seed = check_int(self.name, "seed", seed, minimum=0)
        # Module constructors draw their default init from the global RNG; we overwrite every
        # parameter from our own generator, and fork the global RNG so building leaves no trace.
        with preserve_global_rng():
            instance = self._build(seed)
        return instance.to(device)

    # -- hooks for subclasses --
    def _targets(self) -> Mapping[str, float]:
        """Per-metric targets (see :class:`TaskSpec`); tasks override this."""
        return {}

    def _build(self, seed: int) -> "TaskInstance":
        raise NotImplementedError

    def _metrics(self) -> Sequence[str]:
        raise NotImplementedError

    def _default_steps(self) -> int:
        raise NotImplementedError

    def _default_batch_size(self) -> int | None:
        return getattr(self, "batch_size", None)

    def _primary_metric(self) -> str:
        return "eval_loss"

    def _maximize(self) -> bool:
        return False

    def _adamw(self) -> dict[str, Any]:
        return {"lr": 1e-3, "weight_decay": 0.0}


@dataclass(frozen=True, kw_only=True)
class AccuracyTask(Task):
    """A classification-style task: train and test loss and accuracy, compared on test accuracy (higher is
    better)."""

    def _metrics(self) -> Sequence[str]:
        return ("train_loss", "train_accuracy", "eval_loss", "test_accuracy")

    def _primary_metric(self) -> str:
        return "test_accuracy"

    def _maximize(self) -> bool:
        return True


class PDETask(Task):
    """A physics-informed task: eval loss, relative L2 and max error against the solution, compared on relative
    L2 (lower is better), 3000 steps by default, AdamW at lr 3e-3 without weight decay."""

    def _metrics(self) -> Sequence[str]:
        return ("eval_loss", "rel_l2", "max_error")

    def _primary_metric(self) -> str:
        return "rel_l2"

    def _default_steps(self) -> int:
        return 3000

    def _adamw(self):
        return {"lr": 3e-3, "weight_decay": 0.0}


class TaskInstance:
    """A built task: ``model``, ``batch(step)``, ``loss(model, batch)``, ``evaluate(model)``.

    ``role_hints`` are keyword arguments for optimlab's role assignment,
    ``assign_roles(instance.model, **instance.role_hints)``: the head and embedding module names
    (``{"head": "lm_head", "embedding": "tok_emb"}``), ``"head": None`` where the model has no
    output head (every weight matrix is a trained matrix, e.g. the associative memory), and
    ``"roles": {name: role}`` for bare parameters (the quadratic's matrix form).
    Subclasses implement ``_make_batch(step)``, ``loss`` and ``_evaluate``; tensors the instance
    keeps outside the model are listed in ``_tensor_attrs`` so ``to(device)`` moves them.
    """

    _tensor_attrs: tuple[str, ...] = ()
    full_batch: bool = False

    def __init__(self, task: Task, seed: int, model: nn.Module,
                 role_hints: dict[str, Any] | None = None) -> None:
        self.task = task
        self.spec = task.spec
        self.seed = seed
        self.model = model
        self.role_hints: dict[str, Any] = dict(role_hints or {})
        self.device = torch.device("cpu")
        self._full_batch_cache: tuple | None = None

    def to(self, device: str | torch.device) -> "TaskInstance":
        self.device = torch.device(device)
        self.model.to(self.device)
        for attr in self._tensor_attrs:
            value = getattr(self, attr)
            if value is not None:
                setattr(self, attr, value.to(self.device))
        self._full_batch_cache = None
        return self

    def batch(self, step: int) -> tuple:
        """The training batch for ``step`` (deterministic in (seed, step)); full-batch tasks
        return the same tuple every step."""
        if self.full_batch:
            if self._full_batch_cache is None:
                self._full_batch_cache = tuple(_to(t, self.device) for t in self._make_batch(0))
            return self._full_batch_cache
        return tuple(_to(t, self.device) for t in self._make_batch(step))

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        raise NotImplementedError

    def model_batch(self, model: nn.Module, batch: tuple) -> Any:
        """The batch as an :class:`optimlab.core.ModelBatch` (outputs, targets, loss kind) for Gauss–Newton
        recipes (need ``"outputs"``), or None when the task's loss is not one of its kinds."""
        return None

    def evaluate(self, model: nn.Module | None = None) -> dict[str, float]:
        """The metrics of ``spec.metrics`` as floats, computed under ``torch.no_grad`` in eval
        mode; the model's train/eval mode is restored afterwards."""
        model = self.model if model is None else model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = self._evaluate(model)
        finally:
            model.train(was_training)
        return {k: float(v) for k, v in out.items()}

    def _make_batch(self, step: int) -> tuple:
        raise NotImplementedError

    def _evaluate(self, model: nn.Module) -> dict[str, float | Tensor]:
        raise NotImplementedError

    def batch_generator(self, step: int) -> torch.Generator:
        return generator(self.seed, "batch", step)


def _to(t: Any, device: torch.device) -> Any:
    return t.to(device) if isinstance(t, Tensor) else t


# ---------------------------------------------------------------- randomness

def derive_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed from a build seed and a path of keys (stream names, step numbers)."""
    text = "/".join([str(int(seed))] + [str(k) for k in keys])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def generator(seed: int, *keys: int | str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *keys))


@contextlib.contextmanager
def preserve_global_rng() -> Iterator[None]:
    """Restore the global torch (CPU), numpy and ``random`` states on exit: third-party data
    generators (mnist1d) reseed them, and module constructors advance torch's."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def init_module_(module: nn.Module, gen: torch.Generator, *, std: float | None = None) -> None:
    """Re-initialise every parameter of ``module`` from ``gen``.

    Linear / Conv1d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias (the bound of torch's
    default init), or N(0, std^2) weights and zero biases when ``std`` is given. Embedding:
    N(0, 1), or N(0, std^2). LayerNorm: ones and zeros. Other parameterised modules: an error,
    so no parameter silently keeps a global-RNG init.
    """
    for name, sub in module.named_modules():
        own = list(sub.named_parameters(recurse=False))
        if not own:
            continue
        if isinstance(sub, (nn.Linear, nn.Conv1d)):
            fan_in = sub.weight[0].numel()
            with torch.no_grad():
                if std is None:
                    bound = 1.0 / math.sqrt(fan_in)
                    sub.weight.uniform_(-bound, bound, generator=gen)
                    if sub.bias is not None:
                        sub.bias.uniform_(-bound, bound, generator=gen)
                else:
                    sub.weight.normal_(0.0, std, generator=gen)
                    if sub.bias is not None:
                        sub.bias.zero_()
        elif isinstance(sub, nn.Embedding):
            with torch.no_grad():
                sub.weight.normal_(0.0, 1.0 if std is None else std, generator=gen)
        elif isinstance(sub, nn.LayerNorm):
            with torch.no_grad():
                if sub.weight is not None:
                    sub.weight.fill_(1.0)
                if sub.bias is not None:
                    sub.bias.zero_()
        else:
            raise TypeError(f"init_module_: no initialisation rule for {name or 'module'} "
                            f"({type(sub).__name__})")


# ---------------------------------------------------------------- option validation

def check_int(task: str, option: str, value: Any, minimum: int | None = None,
              maximum: int | None = None) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        lo = "-inf" if minimum is None else minimum
        hi = "inf" if maximum is None else maximum
        raise ValueError(f"{task}: {option} must be an int in [{lo}, {hi}], got {value!r}")
    return int(value)


def check_float(task: str, option: str, value: Any, minimum: float | None = None,
                maximum: float | None = None, *, strict_min: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if strict_min else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        lo = "-inf" if minimum is None else minimum
        hi = "inf" if maximum is None else maximum
        bracket = "(" if strict_min else "["
        raise ValueError(f"{task}: {option} must be a number in {bracket}{lo}, {hi}], "
                         f"got {value!r}")
    return float(value)


def check_choice(task: str, option: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise ValueError(f"{task}: {option} must be one of {list(choices)}, got {value!r}")
    return value


def check_bool(task: str, option: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{task}: {option} must be True or False, got {value!r}")
    return value


def log_spaced_singular_values(rank: int, condition: float) -> Tensor:
    """``rank`` singular values from 1 down to 1/condition, evenly spaced in log scale (float64): a low-rank
    teacher's spectrum with condition number ``condition``."""
    return torch.logspace(0.0, -torch.log10(torch.tensor(condition)).item(), rank, dtype=torch.float64)


def singular_value_names(count: int) -> tuple[str, ...]:
    """The metric names :func:`singular_value_metrics` returns: ``sv_1..sv_count`` and ``rank``."""
    return tuple(f"sv_{i + 1}" for i in range(count)) + ("rank",)


def singular_value_metrics(matrix: Tensor, count: int, threshold: float) -> dict[str, float]:
    """``sv_1..sv_count`` (descending singular values of ``matrix``, zero-padded) and ``rank``:
    how many exceed ``threshold`` (the learned rank, for incremental-learning plots)."""
    s = torch.linalg.svdvals(matrix.detach().double().cpu())
    out = {f"sv_{i + 1}": float(s[i]) if i < s.numel() else 0.0 for i in range(count)}
    out["rank"] = float((s > threshold).sum())
    return out
