"""compare(): run several optimizers over several seeds on one task and tabulate the outcome.

Per optimizer (one row), over the seeds whose run finished (failed runs are counted, not
averaged): mean ± sample standard deviation (ddof=1; 0 for one seed) of the final training loss
(mean of the last 10% of step losses), of each eval metric at the end, of the median ms per step,
of optimizer state bytes per parameter, and of steps-to-target.

Steps-to-target: the first evaluated step at which the task's primary metric reaches the target
(``<=`` it, or ``>=`` for metrics that are maximised). The resolution is the run's ``eval_every``.
The target is ``target=`` when given; otherwise the median, over its seeds, of the final primary
metric of the best optimizer (best mean final primary metric), so the best optimizer reaches it on
at least half of its seeds. Runs that never reach it are left out of the mean and counted in
``reached`` ("k/n" in the table; "-" when none did).
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .runner import RunResult, run
from .store import RunStore
from .tasks import get_task

__all__ = ["ComparisonTable", "compare", "steps_to_target"]


def _label(name: str, hparams: Mapping[str, Any]) -> str:
    if not hparams:
        return name
    return f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in sorted(hparams.items())) + ")"


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def steps_to_target(result: RunResult, metric: str, target: float, maximize: bool) -> int | None:
    """The first recorded step where ``metric`` reaches ``target``, or None."""
    for step, value in result.metrics.get(metric, []):
        if (value >= target) if maximize else (value <= target):
            return step
    return None


@dataclass
class ComparisonTable:
    """The outcome of :func:`compare`.

    ``rows``: one dict per optimizer, in the order given: ``label``, ``optimizer``, ``hparams``,
    ``seeds`` (run), ``finished``, ``failed``, ``errors`` (one per failed run), ``reached``
    (runs that reached the target), and ``stats``: column name -> (mean, std). Columns:
    ``loss``, each eval metric, ``ms_per_step``, ``state_bytes_per_param``, ``steps_to_target``.
    ``runs``: label -> list of :class:`RunResult` (one per seed).
    """

    task: str
    primary_metric: str
    maximize: bool
    target: float
    columns: list[str]
    rows: list[dict[str, Any]]
    runs: dict[str, list[RunResult]] = field(repr=False, default_factory=dict)

    def __str__(self) -> str:
        arrow = "max" if self.maximize else "min"
        head = [f"task {self.task}; primary metric {self.primary_metric} ({arrow}); "
                f"target {self.target:.4g}; mean ± std over finished seeds"]
        names = ["optimizer", "ok"] + [
            "steps→target" if c == "steps_to_target" else ("B/param" if c == "state_bytes_per_param"
                                                           else ("ms/step" if c == "ms_per_step" else c))
            for c in self.columns] + ["reached"]
        table = []
        for row in self.rows:
            cells = [row["label"], f"{row['finished']}/{row['seeds']}"]
            for c in self.columns:
                mean, std = row["stats"][c]
                cells.append("-" if math.isnan(mean) else f"{mean:.4g} ± {std:.2g}")
            cells.append(f"{row['reached']}/{row['finished']}" if row["finished"] else "-")
            table.append(cells)
        widths = [max(len(str(x)) for x in col) for col in zip(names, *table)]
        def fmt(cells: Sequence[str]) -> str:
            return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths)))
        lines = head + [fmt(names), "  ".join("-" * w for w in widths)] + [fmt(r) for r in table]
        for row in self.rows:
            for err in row["errors"]:
                lines.append(f"  {row['label']} failed: {err.strip().splitlines()[-1][:160]}")
        return "\n".join(lines)


def compare(task: str, optimizers: Sequence[str | tuple[str, Mapping[str, Any]]], seeds: int = 3,
            steps: int | None = None, store: RunStore | str | None = None, threads: int = 1,
            progress: bool = True, *, task_options: Mapping[str, Any] | None = None,
            eval_every: int | None = None, target: float | None = None,
            resume: bool = True) -> ComparisonTable:
    """Run every (optimizer, seed) with :func:`optimlab.lab.runner.run` (seeds ``0..seeds-1``)
    and tabulate the results (see the module docstring for every column).

    optimizers: names, or ``(name, hparams)`` pairs (the same name may appear with different
    hparams; each entry is one row). seeds: how many seeds (>= 1). store: as for ``run``:
    a RunStore, a path, or None (in memory); identical finished runs in it are reused.
    target: the primary-metric value for steps-to-target (default: see the module docstring).
    """
    task_obj = get_task(task, **dict(task_options or {}))
    spec = task_obj.spec
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ValueError(f"compare: seeds must be an int >= 1, got {seeds!r}")
    entries: list[tuple[str, dict[str, Any] | None, str]] = []
    for entry in optimizers:
        if isinstance(entry, str):
            name, hp = entry, None
        elif isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[1], Mapping):
            name, hp = entry[0], dict(entry[1])
        else:
            raise ValueError(f"compare: each optimizer must be a name or a (name, hparams) pair, "
                             f"got {entry!r}")
        label = _label(name, hp or {})
        if label in [e[2] for e in entries]:
            raise ValueError(f"compare: optimizer {label!r} is listed twice")
        entries.append((name, hp, label))
    if not entries:
        raise ValueError("compare: no optimizers given")

    own_store = isinstance(store, (str, os.PathLike))
    db = RunStore(store) if own_store else (store if store is not None else RunStore(":memory:"))
    runs: dict[str, list[RunResult]] = {}
    try:
        for name, hp, label in entries:
            runs[label] = [
                run(task, name, hparams=hp, seed=seed, steps=steps, task_options=task_options,
                    store=db, eval_every=eval_every, threads=threads, progress=progress,
                    resume=resume)
                for seed in range(seeds)]
    finally:
        if own_store:
            db.close()

    primary, maximize = spec.primary_metric, spec.maximize
    finals = {label: [r.final.get(primary, math.nan) for r in rs if r.ok] for label, rs in runs.items()}
    if target is None:
        scored = [(statistics.fmean(v), label) for label, v in finals.items()
                  if v and all(math.isfinite(x) for x in v)]
        if scored:
            best = (max if maximize else min)(scored)[1]
            target = statistics.median(finals[best])
        else:
            target = math.nan

    columns = ["loss"] + list(spec.metrics) + ["ms_per_step", "state_bytes_per_param",
                                               "steps_to_target"]
    rows = []
    for name, hp, label in entries:
        rs = runs[label]
        ok = [r for r in rs if r.ok]
        stats: dict[str, tuple[float, float]] = {}
        for c in ("loss", *spec.metrics, "ms_per_step"):
            stats[c] = _mean_std([r.final[c] for r in ok if c in r.final])
        stats["state_bytes_per_param"] = _mean_std(
            [r.final["state_bytes"] / r.final["n_params"] for r in ok
             if r.final.get("n_params")])
        hits = [steps_to_target(r, primary, target, maximize) for r in ok] if math.isfinite(target) else []
        hits = [h for h in hits if h is not None]
        stats["steps_to_target"] = _mean_std(hits)
        rows.append({"label": label, "optimizer": name, "hparams": rs[0].hparams if rs else hp,
                     "seeds": len(rs), "finished": len(ok), "failed": len(rs) - len(ok),
                     "errors": [r.error or "" for r in rs if not r.ok], "reached": len(hits),
                     "stats": stats})
    return ComparisonTable(task=task, primary_metric=primary, maximize=maximize, target=target,
                           columns=columns, rows=rows, runs=runs)
