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

import contextlib
import json
import math
import os
import statistics
import time
from typing import Any, Iterator, Mapping, Sequence

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from ..core.registry import get_recipe
from .runner import run
from .space import KINDS, _check_value, _params, check_space, parse_space
from .sweep_result import SweepResult, SweepTrial, _trial_result
from .store import RunStore, canonical_json
from .tasks import get_task
from .tasks.base import derive_seed

__all__ = ["sweep", "parse_space", "check_space", "SweepResult", "SweepTrial", "KINDS",
           "default_study_storage"]

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


# ---------------------------------------------------------------------------- sweep

_COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)


def sweep(task: str, optimizer: str, space: Mapping[str, Any] | Sequence[str], *, trials: int = 20,
          seeds: int | Sequence[int] = 1, steps: int | None = None,
          store: RunStore | str | os.PathLike | None = "optimlab-runs/runs.db",
          study_storage: str | optuna.storages.BaseStorage | None = None,
          study_name: str | None = None, metric: str | None = None, maximize: bool | None = None,
          fixed: Mapping[str, Any] | None = None, task_options: Mapping[str, Any] | None = None,
          total_trials: int | None = None, threads: int = 1, sampler_seed: int = 0,
          sampler: BaseSampler | None = None, progress: bool = False, restart: bool = False) -> SweepResult:
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
    restart: an interrupted run of a trial is trained again from step 0 instead of resuming its
        checkpoint (:func:`~optimlab.lab.runner.run`'s ``restart``; e.g. after a refused checkpoint).

    Returns a :class:`SweepResult` for the whole study. Errors (ValueError), all before anything
    runs: unknown task, optimizer or metric; a bad space; a study created for another objective.
    """
    for label, value, minimum in (("trials", trials, 0), ("threads", threads, 1),
                                  ("sampler_seed", sampler_seed, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"sweep: {label} must be an int >= {minimum}, got {value!r}")
    if not isinstance(restart, bool):
        raise TypeError(f"sweep: restart must be a bool, got {restart!r}")
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
                              task_options=options, store=db, threads=threads, resume=resume,
                              restart=restart)
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
