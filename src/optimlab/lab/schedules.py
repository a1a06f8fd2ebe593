"""Learning-rate schedules as LambdaLR-compatible multipliers, the square-root scaling rule, a norm-test batch controller.

Every schedule is a callable ``f(step) -> multiplier`` of the base learning rate (``step`` counts optimizer
steps from 0), so it plugs into ``torch.optim.lr_scheduler.LambdaLR(opt, f)`` or into the lab runner:
``hparams={"lr": 0.02, "schedule": "wsd(decay=0.1)"}`` (CLI: ``--hp "schedule=wsd(decay=0.1,warmup=0.02)"``).
The runner sets every group's lr to ``base_lr · f(step)`` before each step; the multiplier depends on the step
alone, so a run resumed from a checkpoint continues on the same schedule.

- ``wsd(total, warmup, decay, shape)``: warmup–stable–decay (Hu et al., MiniCPM; Wen et al., "Understanding
  Warmup-Stable-Decay Learning Rates: A River Valley Loss Landscape Perspective", arXiv:2410.05192): linear
  warmup over ``warmup·total`` steps, constant, then a decay to 0 over the last ``decay·total`` steps
  (``shape`` "linear", "cosine" or "sqrt": 1 − sqrt(progress)).
- ``wsd_s(budgets, warmup, decay, shape)``: WSD-S (Wen et al.): one run that decays before each budget
  B_i over ``decay·B_i`` steps and then resumes at the peak lr *from the decayed weights* (WSD instead
  branches each decay off the stable run's checkpoint; :func:`wsd_branches` gives the budgets' branches).
- ``cyclic_cosine(period, min_ratio)``: cosine from 1 to ``min_ratio`` over each period, restarting at 1.
- ``cosine(total, min_ratio)``, ``constant()``.
- ``sqrt_scaling(hparams, kappa)``: the square-root scaling rule for Adam/RMSprop when the batch grows by κ
  (Malladi, Lyu, Panigrahi, Arora, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms",
  arXiv:2205.10287): lr·√κ, 1 − β → κ(1 − β), ε/√κ.
- ``NormTest``: the adaptive batch size of AdAdaGrad (Lau, Liu, Kolar, "AdAdaGrad: Adaptive Batch Size
  Schemes for Adaptive Gradient Methods", arXiv:2402.11215): grow the batch while the sample variance of the
  per-example gradients exceeds η²‖g‖²·b (the norm test of Byrd et al. 2012).
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

Schedule = Callable[[int], float]


def _decay_shape(progress: float, shape: str) -> float:
    progress = min(max(progress, 0.0), 1.0)
    if shape == "linear":
        return 1.0 - progress
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if shape == "sqrt":
        return 1.0 - math.sqrt(progress)
    raise ValueError(f"decay shape must be 'linear', 'cosine' or 'sqrt', got {shape!r}")


def _fraction(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")
    return float(value)


def constant() -> Schedule:
    return lambda step: 1.0


def wsd(total: int, warmup: float = 0.0, decay: float = 0.1, shape: str = "linear") -> Schedule:
    """Warmup (fraction ``warmup`` of ``total``) – stable at 1 – decay to 0 over the last ``decay·total`` steps."""
    warm, dec = _fraction("warmup", warmup), _fraction("decay", decay)
    _decay_shape(0.0, shape)
    n_warm, n_dec = int(round(warm * total)), int(round(dec * total))

    def f(step: int) -> float:
        if step < n_warm:
            return (step + 1) / n_warm
        if n_dec and step >= total - n_dec:
            return _decay_shape((step - (total - n_dec) + 1) / n_dec, shape)
        return 1.0

    return f


def wsd_s(budgets: Sequence[int], warmup: float = 0.0, decay: float = 0.1, shape: str = "linear") -> Schedule:
    """WSD-S: decay before each budget B_i (over ``decay·B_i`` steps), then resume at 1 from the decayed weights."""
    ends = sorted(int(b) for b in budgets)
    if not ends or ends[0] < 1:
        raise ValueError(f"budgets must be positive step counts, got {budgets!r}")
    warm, dec = _fraction("warmup", warmup), _fraction("decay", decay)
    _decay_shape(0.0, shape)
    n_warm = int(round(warm * ends[0]))
    windows = [(b - int(round(dec * b)), b) for b in ends]

    def f(step: int) -> float:
        if step < n_warm:
            return (step + 1) / n_warm
        for start, end in windows:
            if start <= step < end:
                return _decay_shape((step - start + 1) / (end - start), shape)
        return 1.0

    return f


def wsd_branches(budgets: Sequence[int], decay: float = 0.1) -> list[tuple[int, int]]:
    """WSD's branches: (checkpoint step of the stable run, decay steps) per budget; branch i loads the stable
    run's checkpoint at B_i − decay·B_i and decays for decay·B_i steps."""
    dec = _fraction("decay", decay)
    return [(int(b) - int(round(dec * b)), int(round(dec * b))) for b in sorted(budgets)]


def cosine(total: int, min_ratio: float = 0.0) -> Schedule:
    return lambda step: min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(step + 1, total) / total))


def cyclic_cosine(period: int, min_ratio: float = 0.0) -> Schedule:
    """Cosine from 1 down to ``min_ratio`` over each ``period`` steps, then back to 1 (warm restarts)."""
    if not isinstance(period, int) or period < 1:
        raise ValueError(f"period must be an int >= 1, got {period!r}")
    return lambda step: min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * ((step % period) + 1) / period))


SCHEDULES: dict[str, Callable[..., Schedule]] = {"constant": constant, "wsd": wsd, "wsd_s": wsd_s,
                                                 "cosine": cosine, "cyclic_cosine": cyclic_cosine}
_NEEDS_TOTAL = ("wsd", "cosine")


def parse_spec(spec: Any, what: str, example: str) -> tuple[str, dict[str, Any]]:
    """``"name(key=literal, ...)"`` → (name, {key: value}); TypeError/ValueError naming ``what`` otherwise."""
    if not isinstance(spec, str):
        raise TypeError(f"{what} must be a string such as {example!r}, got {spec!r}")
    name, _, rest = spec.strip().partition("(")
    kwargs: dict[str, Any] = {}
    if rest:
        if not rest.endswith(")"):
            raise ValueError(f"{what} {spec!r}: missing ')'")
        try:
            call = ast.parse(f"f({rest}", mode="eval").body
            if call.args:  # type: ignore[attr-defined]
                raise ValueError(f"{what} {spec!r}: pass options by keyword")
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}  # type: ignore[attr-defined]
        except (SyntaxError, ValueError) as e:
            raise ValueError(f"{what} {spec!r}: options must be keyword literals ({e})") from e
    return name.strip(), kwargs


def from_spec(spec: str, total: int) -> Schedule:
    """``"wsd(decay=0.1, warmup=0.02)"`` → the schedule; ``total`` (the run's steps) fills in where needed."""
    name, kwargs = parse_spec(spec, "schedule", "wsd(decay=0.1)")
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose from {sorted(SCHEDULES)}")
    if name in _NEEDS_TOTAL:
        kwargs.setdefault("total", total)
    return SCHEDULES[name](**kwargs)


class Scheduled:
    """The runner's per-step callback for a schedule: ``at(step)`` sets every group's lr to base · f(step)
    (the lr of step ``step + 1``); calling it after a step does that and chains the user's ``on_step``."""

    def __init__(self, opt: torch.optim.Optimizer, f: Schedule, on_step: Callable[[int, float], None] | None):
        self.opt, self.f, self.on_step = opt, f, on_step
        self.base = [g["lr"] for g in opt.param_groups]
        self.at(0)

    def at(self, step: int) -> None:
        for g, lr in zip(self.opt.param_groups, self.base):
            g["lr"] = lr * self.f(step)

    def __call__(self, step: int, loss: float) -> None:
        self.at(step)
        if self.on_step is not None:
            self.on_step(step, loss)


def attach(opt: torch.optim.Optimizer, spec: str, total: int,
           on_step: Callable[[int, float], None] | None = None) -> Scheduled:
    """Set every group's lr to base · f(0) now and to base · f(step) after each step (a stateless LambdaLR: the
    multiplier depends on the step alone, so resuming from a checkpoint keeps the schedule). Returns the
    ``on_step`` callback the runner calls after each step (chaining ``on_step``)."""
    return Scheduled(opt, from_spec(spec, total), on_step)


def sqrt_scaling(hparams: Mapping[str, Any], kappa: float) -> dict[str, Any]:
    """Adam/RMSprop hyperparameters for a batch κ times larger under the square-root scaling rule (Malladi et
    al. 2022): lr → lr·√κ, β_i → 1 − κ(1 − β_i) (``betas`` pair or ``beta1``/``beta2``/``alpha``), eps → eps/√κ.
    Keys it does not know are copied. κ < 1 shrinks the batch. β leaving [0, 1): ValueError."""
    if not kappa > 0:
        raise ValueError(f"kappa must be > 0, got {kappa!r}")
    root = math.sqrt(kappa)
    out = dict(hparams)

    def beta(b: float) -> float:
        new = 1.0 - kappa * (1.0 - b)
        if not 0.0 <= new < 1.0:
            raise ValueError(f"square-root rule: β = {b} at κ = {kappa} gives {new}, outside [0, 1)")
        return new

    if "lr" in out:
        out["lr"] = out["lr"] * root
    if "betas" in out:
        out["betas"] = tuple(beta(b) for b in out["betas"])
    for key in ("beta1", "beta2", "alpha"):  # alpha: torch RMSprop's smoothing constant
        if key in out:
            out[key] = beta(out[key])
    if "eps" in out:
        out["eps"] = out["eps"] / root
    return out


@dataclass
class NormTest:
    """Adaptive batch size by the norm test (AdAdaGrad): after a step with batch b, if
    Var_i(∇f_i) / b > η²‖ḡ‖² (per-example gradients, unbiased variance summed over coordinates), the next
    batch is ⌈Var / (η²‖ḡ‖²)⌉ (never smaller than now, at most ``max_batch``)."""

    eta: float = 0.5
    batch: int = 8
    max_batch: int = 4096

    def update(self, per_example: torch.Tensor) -> int:
        """``per_example``: (b, d) flattened per-example gradients of the current batch; returns the next batch."""
        b = per_example.shape[0]
        if b < 2:
            return self.batch
        mean = per_example.mean(0)
        var = float(((per_example - mean) ** 2).sum() / (b - 1))
        g2 = float(mean @ mean)
        if g2 > 0 and var / b > self.eta ** 2 * g2:
            self.batch = min(self.max_batch, max(self.batch, math.ceil(var / (self.eta ** 2 * g2))))
        return self.batch
