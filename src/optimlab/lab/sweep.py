"""sweep(): an Optuna study over an optimizer's hyperparameters on one task.

Each trial samples hyperparameters from ``space``, trains one run per seed with
:func:`optimlab.lab.runner.run` into the lab's run store (so every trial's runs are visible to
reports, and a configuration that was already run is reused instead of trained again), and reports
the mean over the seeds of the task's final primary metric (or ``metric``) to Optuna. The direction
follows the task (``TaskSpec.maximize``).

A run that fails (divergence: a non-finite loss or gradient) makes its trial ``pruned``, with the
reason kept in the trial; any other exception in a trial makes it ``fail``. Neither stops the sweep.

Where things are stored:

* runs (metrics, checkpoints, code version): the :class:`~optimlab.lab.store.RunStore` at
  ``store`` (default ``optimlab-runs/runs.db``);
* the study (trials, sampled values, objective values, states, the run ids of each trial as the
  trial attribute ``run_ids``): Optuna's storage ``study_storage``, by default the SQLite file
  ``sweeps.db`` next to the run store. Any SQLAlchemy URL works, e.g.
  ``postgresql://user:password@host/db``: workers on several machines that pass the same URL and
  study name share one study (each worker then needs its own run store, or a shared file system).

Calling ``sweep`` again with the same study name continues the study (``load_if_exists``): the
trial counts add up. The study remembers what its objective is (task, task options, optimizer,
steps, seeds, metric, fixed hyperparameters) and refuses to be continued with a different one.

Sampling: Optuna's TPE sampler (``constant_liar`` on, so parallel workers avoid the points others
are evaluating), with the random state of trial ``n`` seeded from ``(sampler_seed, n)``. A sweep
run by one process is reproducible, and parallel workers draw different points, because trial
numbers are handed out by the storage and never repeat.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from ..core.registry import get_recipe
from .runner import run
from .store import RunStore, canonical_json
from .tasks import get_task
from .tasks.base import derive_seed

__all__ = ["sweep", "parse_space", "check_space", "SweepResult", "SweepTrial", "KINDS",
           "default_study_storage"]

#: The kinds of a search-space entry: ``(kind, low, high)`` for the numeric ones,
#: ``("choice", [values...])`` for a categorical one.
KINDS = ("log", "float", "int", "choice")

_PRIMITIVE = (type(None), bool, int, float, str)


# ---------------------------------------------------------------------------- the search space

@dataclass(frozen=True)
class _Param:
    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple = ()
    codes: tuple = ()  # what Optuna sees for each choice (the choice itself, or its repr)

    def spec(self) -> tuple:
        return ("choice", list(self.choices)) if self.kind == "choice" else (self.kind, self.low, self.high)

    def decode(self, value: Any) -> Any:
        if self.kind == "choice" and self.codes != self.choices:
            return self.choices[self.codes.index(value)]
        return value

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "log":
            if isinstance(self.low, int) and isinstance(self.high, int):
                return trial.suggest_int(self.name, self.low, self.high, log=True)
            return trial.suggest_float(self.name, self.low, self.high, log=True)
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high)
        return self.decode(trial.suggest_categorical(self.name, list(self.codes)))


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as polar_express or bfloat16


def _parse_entry(name: str, text: str) -> tuple:
    usage = (f"sweep space: {name}={text!r}: expected KIND:LOW:HIGH with KIND log, float or int "
             f"(e.g. lr=log:1e-4:1e-1), or choice:V1,V2,... (e.g. nesterov=choice:True,False)")
    kind, sep, rest = text.strip().partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in KINDS or not rest.strip():
        raise ValueError(usage)
    if kind == "choice":
        try:
            values = ast.literal_eval("[" + rest + "]")
        except (ValueError, SyntaxError):
            values = [_literal(v.strip()) for v in rest.split(",")]
        if any(v == "" for v in values):
            raise ValueError(usage)
        return ("choice", values)
    parts = rest.split(":")
    if len(parts) != 2:
        raise ValueError(usage)
    bounds = []
    for part in parts:
        try:
            number = float(part)
        except ValueError:
            raise ValueError(f"{usage}; {part.strip()!r} is not a number") from None
        if kind == "int" or (kind == "log" and number.is_integer() and
                             all(_looks_int(p) for p in parts)):
            if not number.is_integer():
                raise ValueError(f"{usage}; {part.strip()!r} is not an integer")
            number = int(number)
        bounds.append(number)
    return (kind, bounds[0], bounds[1])


def _looks_int(text: str) -> bool:
    text = text.strip().lstrip("+-")
    return text.isdigit()


def parse_space(items: Sequence[str]) -> dict[str, tuple]:
    """A search space from command-line strings ``NAME=KIND:LOW:HIGH`` (KIND ``log``, ``float``,
    ``int``) or ``NAME=choice:V1,V2,...`` (values read as Python literals, else as bare words).

    ``parse_space(["lr=log:1e-4:1e-1", "momentum=choice:0.0,0.9"])`` ->
    ``{"lr": ("log", 0.0001, 0.1), "momentum": ("choice", [0.0, 0.9])}``. A ``log`` range whose
    bounds are both written as integers (``ns_steps=log:1:16``) samples integers. Malformed text
    or a repeated name: ValueError naming the entry.
    """
    if isinstance(items, str):
        items = [items]
    out: dict[str, tuple] = {}
    for item in items or []:
        if not isinstance(item, str):
            raise ValueError(f"sweep space: expected NAME=SPEC strings, got {item!r}")
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name or not name.isidentifier():
            raise ValueError(f"sweep space: {item!r} must be NAME=SPEC, e.g. lr=log:1e-4:1e-1 or "
                             f"nesterov=choice:True,False")
        if name in out:
            raise ValueError(f"sweep space: {name!r} is given twice")
        out[name] = _parse_entry(name, text)
    return out


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_value(optimizer: str, name: str, spec: Any, value: Any, what: str) -> None:
    try:
        spec.check(optimizer, name, value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"sweep space for {optimizer}: {what} is outside what {name} accepts: "
                         f"{e}") from None


def _normalize(optimizer: str, name: str, entry: Any, hspec: Any) -> _Param:
    if isinstance(entry, str):
        entry = _parse_entry(name, entry)
    if isinstance(entry, list) and (not entry or entry[0] not in KINDS):
        entry = ("choice", entry)  # a bare list of values
    if not isinstance(entry, (tuple, list)) or not entry or entry[0] not in KINDS:
        raise ValueError(f"sweep space for {optimizer}: {name}: expected (kind, low, high) with kind "
                         f"log, float or int, or ('choice', [values]); got {entry!r}")
    kind = entry[0]
    if kind == "choice":
        if len(entry) != 2 or not isinstance(entry[1], (list, tuple)) or len(entry[1]) == 0:
            raise ValueError(f"sweep space for {optimizer}: {name}: expected ('choice', [v1, v2, ...]) "
                             f"with at least one value, got {entry!r}")
        choices = tuple(entry[1])
        for c in choices:
            _check_value(optimizer, name, hspec, c, f"{name}=choice value {c!r}")
        try:
            canonical_json(list(choices))
        except TypeError as e:
            raise ValueError(f"sweep space for {optimizer}: {name}: choices must be JSON-friendly "
                             f"values ({e})") from None
        if all(isinstance(c, _PRIMITIVE) for c in choices):
            codes = choices
        else:
            codes = tuple(repr(c) for c in choices)
        if len(set(codes)) != len(codes):
            raise ValueError(f"sweep space for {optimizer}: {name}: repeated choice in {list(choices)!r}")
        return _Param(name, "choice", choices=choices, codes=codes)
    if len(entry) != 3:
        raise ValueError(f"sweep space for {optimizer}: {name}: expected ({kind!r}, low, high), "
                         f"got {entry!r}")
    low, high = entry[1], entry[2]
    if not (_is_number(low) and _is_number(high)):
        raise ValueError(f"sweep space for {optimizer}: {name}: low and high must be finite numbers, "
                         f"got {low!r}, {high!r}")
    if not low < high:
        raise ValueError(f"sweep space for {optimizer}: {name}: low must be below high, "
                         f"got {kind}:{low!r}:{high!r}")
    allowed = {"float": ("log", "float"), "int": ("log", "int")}.get(hspec.kind, ())
    if kind not in allowed:
        hint = (f"use one of {', '.join(allowed)}" if allowed else "use ('choice', [values])")
        raise ValueError(f"sweep space for {optimizer}: {name} is a {hspec.kind} hyperparameter; "
                         f"a {kind!r} range does not fit it ({hint})")
    if kind == "log" and low <= 0:
        raise ValueError(f"sweep space for {optimizer}: {name}: a log range needs low > 0, "
                         f"got {kind}:{low!r}:{high!r}")
    if hspec.kind == "int" or kind == "int":
        if not (float(low).is_integer() and float(high).is_integer()):
            raise ValueError(f"sweep space for {optimizer}: {name}: an integer range needs integer "
                             f"bounds, got {kind}:{low!r}:{high!r}")
        low, high = int(low), int(high)
    else:
        low, high = float(low), float(high)
    for bound, value in (("low", low), ("high", high)):
        _check_value(optimizer, name, hspec, value, f"{name}={kind}:{entry[1]!r}:{entry[2]!r} ({bound})")
    return _Param(name, kind, low=low, high=high)


def check_space(optimizer: str, space: Mapping[str, Any]) -> dict[str, tuple]:
    """Validate ``space`` for ``optimizer`` and return it normalised (name -> spec tuple).

    Each name must be a hyperparameter that ``optimlab.create(model, optimizer, name=...)``
    accepts (``get_recipe(optimizer).main_specs()``), and both ends of a range, and every choice,
    must lie in that hyperparameter's valid range. Errors: ValueError naming the optimizer, the
    hyperparameter and the value.
    """
    return {p.name: p.spec() for p in _params(optimizer, space)}


def _params(optimizer: str, space: Mapping[str, Any]) -> list[_Param]:
    if isinstance(space, (list, tuple)):
        space = parse_space(space)
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"sweep: the search space must be a non-empty dict name -> spec, got {space!r}")
    specs = get_recipe(optimizer).main_specs()  # unknown optimizer: ValueError with close matches
    out = []
    for name, entry in space.items():
        if name not in specs:
            close = difflib.get_close_matches(str(name), list(specs), n=3)
            hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
            raise ValueError(f"sweep space: {name!r} is not a hyperparameter of optimizer "
                             f"{optimizer!r}; {hint}its hyperparameters are {', '.join(sorted(specs))}")
        out.append(_normalize(optimizer, name, entry, specs[name]))
    return out


# ---------------------------------------------------------------------------- storage, sampler

def default_study_storage(store: str | os.PathLike) -> str:
    """``sqlite:///<folder of the run store>/sweeps.db``."""
    folder = os.path.dirname(os.path.abspath(os.fspath(store)))
    return "sqlite:///" + os.path.join(folder, "sweeps.db")


def _display_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 -- only for display
        return url


def _open_storage(url: str) -> optuna.storages.BaseStorage:
    """An RDBStorage for ``url``; SQLite files wait for locks (several local workers) and the
    first creation of the schema is retried when two processes race to create it."""
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return _retry(lambda: optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs))


def _retry(fn: Any, attempts: int = 8) -> Any:
    from sqlalchemy.exc import SQLAlchemyError
    for i in range(attempts):
        try:
            return fn()
        except SQLAlchemyError:
            if i == attempts - 1:
                raise
            time.sleep(0.1 * (i + 1))


def _open_run_store(path: str, attempts: int = 10) -> RunStore:
    """RunStore(path), retried a few times: when several workers start on a new file at once,
    one may see the schema half created by another (a ValueError) until that one commits."""
    for i in range(attempts):
        try:
            return RunStore(path)
        except ValueError:
            if i == attempts - 1:
                raise
            time.sleep(0.1 * (i + 1))
    raise AssertionError("unreachable")


class _TrialSeededTPE(BaseSampler):
    """TPE whose random state for trial ``n`` is seeded from ``(seed, n)``: reproducible in one
    process, and parallel workers (which get distinct trial numbers) draw different points."""

    def __init__(self, seed: int, **tpe_kwargs: Any) -> None:
        self._seed = int(seed)
        self._kwargs = {"constant_liar": True, **tpe_kwargs}
        self._current: tuple[int, TPESampler] | None = None

    def _for(self, trial: FrozenTrial) -> TPESampler:
        if self._current is None or self._current[0] != trial.number:
            seed = derive_seed(self._seed, "sweep-sampler", trial.number) % 2**32
            self._current = (trial.number, TPESampler(seed=seed, **self._kwargs))
        return self._current[1]

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._for(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:  # n_jobs > 1 within one process: keep per-trial seeding
        pass


@contextlib.contextmanager
def _optuna_quiet(quiet: bool) -> Iterator[None]:
    if not quiet:
        yield
        return
    old = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(old)


# ---------------------------------------------------------------------------- results

@dataclass
class SweepTrial:
    """One trial of the study. ``state``: ``complete``, ``pruned`` (a run diverged or gave a
    non-finite metric), ``fail`` (an exception), ``running`` or ``waiting``. ``value``: the mean
    over seeds of the metric (None unless complete). ``params``: the sampled hyperparameters
    (without the fixed ones). ``run_ids``: the runs in the run store, one per seed tried.
    ``seed_values``: the metric of each seed."""

    number: int
    state: str
    params: dict[str, Any]
    value: float | None
    run_ids: list[int] = field(default_factory=list)
    seed_values: list[float] = field(default_factory=list)
    error: str | None = None


@dataclass
class SweepResult:
    """The outcome of :func:`sweep`: the whole study, including trials of earlier calls and of
    other workers. ``best_params``: the fixed hyperparameters plus the best trial's sampled ones
    (None when no trial completed); ``best_value``: its objective (NaN when none);
    ``new_trials``: how many trials this call ran. ``str()`` gives a table, best first."""

    study_name: str
    storage: str
    store: str
    task: str
    optimizer: str
    metric: str
    maximize: bool
    steps: int
    seeds: list[int]
    fixed: dict[str, Any]
    space: dict[str, tuple]
    trials: list[SweepTrial]
    new_trials: int = 0

    @property
    def complete(self) -> list[SweepTrial]:
        return [t for t in self.trials if t.state == "complete" and t.value is not None]

    @property
    def best_trial(self) -> SweepTrial | None:
        done = self.complete
        if not done:
            return None
        key = (lambda t: -t.value) if self.maximize else (lambda t: t.value)
        return min(done, key=lambda t: (key(t), t.number))

    @property
    def best_params(self) -> dict[str, Any] | None:
        best = self.best_trial
        return None if best is None else {**self.fixed, **best.params}

    @property
    def best_value(self) -> float:
        best = self.best_trial
        return math.nan if best is None else float(best.value)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def __str__(self) -> str:
        direction = "maximize" if self.maximize else "minimize"
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items())) or "none"
        lines = [
            f"sweep {self.task} x {self.optimizer}: study {self.study_name!r} in {self.storage}",
            f"objective: {self.metric} ({direction}), mean over seeds {self.seeds}, {self.steps} steps"
            + (f"; fixed {_fmt_params(self.fixed)}" if self.fixed else ""),
            f"trials: {len(self.trials)} ({counts}); {self.new_trials} run by this call; "
            f"runs in {self.store}",
        ]
        best = self.best_trial
        if best is not None:
            lines.append(f"best: trial {best.number}  {self.metric}={best.value:.6g}  "
                         f"{_fmt_params(best.params)}")
        else:
            lines.append("best: none (no trial completed)")
        names = list(self.space)
        order = sorted(self.complete, key=lambda t: ((-t.value if self.maximize else t.value), t.number))
        order += sorted((t for t in self.trials if t not in order), key=lambda t: t.number)
        header = ["trial", "state", self.metric] + names + ["runs", "note"]
        rows = []
        for t in order:
            row = [str(t.number), t.state, "-" if t.value is None else f"{t.value:.6g}"]
            row += [_fmt(t.params[n]) if n in t.params else "-" for n in names]
            row += [",".join(map(str, t.run_ids)) or "-", _short(t.error)]
            rows.append(row)
        widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i])
                  for i in range(len(header))]
        fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        lines.append(fmt(header))
        lines += [fmt(r) for r in rows]
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else repr(v) if isinstance(v, str) else str(v)


def _fmt_params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _short(text: str | None, n: int = 60) -> str:
    if not text:
        return ""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _trial_result(t: FrozenTrial, params: Mapping[str, _Param]) -> SweepTrial:
    decoded = {k: (params[k].decode(v) if k in params else v) for k, v in t.params.items()}
    value = t.value if t.state == TrialState.COMPLETE else None
    return SweepTrial(number=t.number, state=t.state.name.lower(), params=decoded,
                      value=None if value is None else float(value),
                      run_ids=list(t.user_attrs.get("run_ids", [])),
                      seed_values=list(t.user_attrs.get("seed_values", [])),
                      error=t.user_attrs.get("error"))


# ---------------------------------------------------------------------------- sweep

_COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)


def sweep(task: str, optimizer: str, space: Mapping[str, Any] | Sequence[str], *, trials: int = 20,
          seeds: int | Sequence[int] = 1, steps: int | None = None,
          store: RunStore | str | os.PathLike | None = "optimlab-runs/runs.db",
          study_storage: str | optuna.storages.BaseStorage | None = None,
          study_name: str | None = None, metric: str | None = None, maximize: bool | None = None,
          fixed: Mapping[str, Any] | None = None, task_options: Mapping[str, Any] | None = None,
          total_trials: int | None = None, threads: int = 1, sampler_seed: int = 0,
          sampler: BaseSampler | None = None, progress: bool = False) -> SweepResult:
    """Run ``trials`` more trials of the Optuna study over ``space`` for ``optimizer`` on ``task``.

    space: name -> ``("log", low, high)`` | ``("float", low, high)`` | ``("int", low, high)`` |
        ``("choice", [values])`` (a bare list is a choice; a string such as ``"log:1e-4:1e-1"``
        is parsed), or a list of ``NAME=SPEC`` strings (:func:`parse_space`). Validated against
        the optimizer's hyperparameter specs (:func:`check_space`) before anything runs.
    trials: trials this call runs (added to the study). total_trials: also stop once the study
        holds this many trials (complete, pruned, failed, or running on another worker), so
        several workers can share one budget (they may overshoot by at most one trial each).
    seeds: a count (seeds 0..n-1) or a list of seeds; the objective is the mean over them.
    steps: the run budget (default: the task's). task_options: passed to the task.
    fixed: hyperparameters held constant in every trial. For ``adamw``, the task's reference
        AdamW settings (``spec.adamw``) fill in the hyperparameters neither swept nor fixed, as
        in :func:`~optimlab.lab.runner.run`.
    store: the run store (a path, a RunStore, or None for an in-memory one).
    study_storage: an Optuna storage or an SQLAlchemy URL (``sqlite:///path``,
        ``postgresql://user:pw@host/db``...); default ``sweeps.db`` next to the run store
        (in memory when the run store is). study_name: default ``"{task}-{optimizer}"``.
    metric: the final metric to optimise (default the task's primary metric). maximize: its
        direction; default the task's for the primary metric, minimise for a metric whose name
        contains "loss"; any other metric needs it explicitly.
    threads: torch threads per run. sampler_seed: seeds the default TPE sampler (per trial);
        sampler: any Optuna sampler instead. progress: Optuna's progress bar and trial log.

    Returns a :class:`SweepResult` for the whole study. Errors (ValueError), all before anything
    runs: unknown task, optimizer or metric; a bad space; a study created for another objective.
    """
    for label, value, minimum in (("trials", trials, 0), ("threads", threads, 1),
                                  ("sampler_seed", sampler_seed, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"sweep: {label} must be an int >= {minimum}, got {value!r}")
    if total_trials is not None and (not isinstance(total_trials, int) or isinstance(total_trials, bool)
                                     or total_trials < 1):
        raise ValueError(f"sweep: total_trials must be an int >= 1 or None, got {total_trials!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list, tuple, range)):
        raise ValueError(f"sweep: seeds must be a count or a list of seeds, got {seeds!r}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                for s in seed_list) or len(set(seed_list)) != len(seed_list):
        raise ValueError(f"sweep: seeds must be a count >= 1 or distinct ints >= 0, got {seeds!r}")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise ValueError(f"sweep: steps must be an int >= 1, got {steps!r}")

    task_obj = get_task(task, **dict(task_options or {}))
    spec = task_obj.spec
    options = task_obj.options
    steps = spec.default_steps if steps is None else steps
    params = _params(optimizer, space)
    by_name = {p.name: p for p in params}

    metric = spec.primary_metric if metric is None else metric
    known = set(spec.metrics) | {"loss"}
    if metric not in known:
        raise ValueError(f"sweep: task {task!r} has no final metric {metric!r}; "
                         f"choose from {', '.join(sorted(known))}")
    if maximize is None:
        if metric == spec.primary_metric:
            maximize = spec.maximize
        elif "loss" in metric:
            maximize = False
        else:
            raise ValueError(f"sweep: say whether {metric!r} is to be maximised (maximize=True "
                             f"or False); only the primary metric {spec.primary_metric!r} has a "
                             f"known direction")

    specs = get_recipe(optimizer).main_specs()
    fixed = dict(fixed or {})
    both = sorted(set(fixed) & set(by_name))
    if both:
        raise ValueError(f"sweep: {', '.join(map(repr, both))} both swept and fixed")
    for name, value in fixed.items():
        if name not in specs:
            raise ValueError(f"sweep: fixed {name!r} is not a hyperparameter of optimizer "
                             f"{optimizer!r}; its hyperparameters are {', '.join(sorted(specs))}")
        _check_value(optimizer, name, specs[name], value, f"fixed {name}={value!r}")
    if optimizer == "adamw":
        fixed = {**{k: v for k, v in spec.adamw.items() if k not in by_name}, **fixed}
    try:
        canonical_json(fixed)
    except TypeError as e:
        raise ValueError(f"sweep: fixed hyperparameters must be JSON-friendly ({e})") from None

    if isinstance(store, RunStore):
        db, owned, store_path = store, False, store.path
    elif store is None:
        db, owned, store_path = RunStore(":memory:"), True, ":memory:"
    else:
        store_path = os.fspath(store)
        db, owned = _open_run_store(store_path), True
    try:
        if study_storage is None:
            storage_obj = (optuna.storages.InMemoryStorage() if store_path == ":memory:"
                           else _open_storage(default_study_storage(store_path)))
            shown = "memory" if store_path == ":memory:" else default_study_storage(store_path)
        elif isinstance(study_storage, str):
            storage_obj, shown = _open_storage(study_storage), _display_url(study_storage)
        else:
            storage_obj, shown = study_storage, type(study_storage).__name__
        study_name = f"{task}-{optimizer}" if study_name is None else study_name
        direction = "maximize" if maximize else "minimize"
        config = json.loads(canonical_json({
            "task": task, "task_options": options, "optimizer": optimizer, "steps": steps,
            "seeds": seed_list, "metric": metric, "maximize": maximize, "fixed": fixed}))
        with _optuna_quiet(not progress):
            study = _retry(lambda: optuna.create_study(
                storage=storage_obj, study_name=study_name, direction=direction,
                load_if_exists=True,
                sampler=sampler if sampler is not None else _TrialSeededTPE(sampler_seed)))
        if study.direction.name.lower() != direction:
            raise ValueError(f"sweep: study {study_name!r} in {shown} is set to "
                             f"{study.direction.name.lower()}, not {direction}")
        previous = study.user_attrs.get("optimlab")
        if previous is None:
            study.set_user_attr("optimlab", config)
        elif previous != config:
            diff = ", ".join(f"{k}: study {previous.get(k)!r} vs now {config.get(k)!r}"
                             for k in sorted(set(previous) | set(config))
                             if previous.get(k) != config.get(k))
            raise ValueError(f"sweep: study {study_name!r} in {shown} was created for another "
                             f"objective ({diff}); use another study_name")

        def count() -> int:
            return len(study.get_trials(deepcopy=False, states=_COUNTED))

        def objective(trial: optuna.Trial) -> float:
            hp = {**fixed, **{p.name: p.suggest(trial) for p in params}}
            run_ids: list[int] = []
            values: list[float] = []
            try:
                for seed in seed_list:
                    # A run "running" in the store belongs to another worker right now: train our
                    # own copy rather than resume the same row from two processes.
                    prev = db.find_matching(task, options, optimizer, hp, seed, steps)
                    resume = prev is None or prev["status"] != "running"
                    res = run(task, optimizer, hparams=hp, seed=seed, steps=steps,
                              task_options=options, store=db, threads=threads, resume=resume)
                    run_ids.append(res.run_id)
                    trial.set_user_attr("run_ids", run_ids)
                    if not res.ok:
                        raise optuna.TrialPruned(f"seed {seed}: run {res.run_id} {res.status}: "
                                                 f"{res.error}")
                    value = res.final.get(metric)
                    if value is None or not math.isfinite(value):
                        raise optuna.TrialPruned(f"seed {seed}: run {res.run_id}: final {metric} "
                                                 f"is {value!r}")
                    values.append(float(value))
                    trial.set_user_attr("seed_values", values)
            except optuna.TrialPruned as e:
                trial.set_user_attr("error", str(e))
                raise
            except Exception as e:  # recorded in the trial, which optuna marks failed
                trial.set_user_attr("error", f"{type(e).__name__}: {e}")
                raise
            return statistics.fmean(values)

        ran: list[int] = []

        def stop_at_total(study: optuna.Study, trial: FrozenTrial) -> None:
            ran.append(trial.number)
            if total_trials is not None and count() >= total_trials:
                study.stop()

        n = trials
        if total_trials is not None:
            n = min(n, max(0, total_trials - count()))
        if n > 0:
            with _optuna_quiet(not progress):
                study.optimize(objective, n_trials=n, catch=(Exception,), callbacks=[stop_at_total],
                               show_progress_bar=progress)
        frozen = study.get_trials(deepcopy=False)
        return SweepResult(
            study_name=study_name, storage=shown, store=store_path, task=task,
            optimizer=optimizer, metric=metric, maximize=bool(maximize), steps=steps,
            seeds=seed_list, fixed=fixed, space={p.name: p.spec() for p in params},
            trials=[_trial_result(t, by_name) for t in frozen], new_trials=len(ran))
    finally:
        if owned:
            db.close()
