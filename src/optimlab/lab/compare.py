"""compare(): tune, then run several optimizers over several seeds on one task, and tabulate the outcome.

Protocol, per optimizer (one row):

1. Tuning (optional, ``tune={"lr": grid}``; per optimizer with ``{"muon": {"lr": grid}}``): a grid over
   one hyperparameter on the reserved seed ``TUNE_SEED`` = 1000, scored by the task's primary metric
   at the end (:func:`optimlab.lab.tune.tune`); the best value is then run on the requested seeds.
   Tuning trials are ordinary runs in the store: **a run with seed 1000 is a tuning trial**; its
   hyperparameters are the row's fixed ones plus the tuned value. The decision (grid, scores,
   chosen value, edge flag, run ids) is in ``table.tuning[label]`` and, when the store is a file,
   in ``<store path>.tuning.json`` (:func:`optimlab.lab.tune.save_decisions`). A chosen value at
   the edge of its grid is flagged ("edge" in the table, and a note under it).
2. Runs on seeds ``0..seeds-1``, the same budget and batches for every optimizer. ``adamw`` rows
   start from the task's AdamW settings (``spec.adamw``); given or tuned values override them.

Statistics over the seeds whose run finished (failed runs are counted, never averaged): the mean
with a two-sided 95% Student-t confidence interval (:func:`optimlab.lab.stats.mean_ci`; one seed is
shown as "n = 1", never as a zero spread) of the final training loss (mean of the last 10% of step
losses), each eval metric at the end, the median ms per step, optimizer state bytes per parameter,
and steps- and time-to-target. A paired t test (:func:`optimlab.lab.stats.paired_test`) compares each
row's final primary metric with the baseline row's (default: the first row) over the seeds both
finished.

Steps-to-target: the first evaluated step at which the primary metric reaches the task's target
(``spec.targets``; ``<=``, or ``>=`` when maximised), or ``target=`` when given. Its resolution is the
run's evaluation period. Time-to-target: the training wall time (sum of ``step_ms``) up to that
step. Both are averaged over the runs that reached the target and shown with how many did ("2/3").
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .runner import RunResult, run
from .stats import Interval, PairedTest, fmt_interval, fmt_value, mean_ci, paired_test
from .store import RunStore
from .tasks import get_task
from .tune import Grid, TuneResult, parse_grid, save_decisions, tune as tune_one

__all__ = ["ComparisonTable", "compare", "steps_to_target", "time_to_target"]

WIDTH = 120  # the terminal table fits this many columns


def _label(name: str, hparams: Mapping[str, Any]) -> str:
    if not hparams:
        return name
    return f"{name}(" + ", ".join(f"{k}={_short(v)}" for k, v in sorted(hparams.items())) + ")"


def _short(v: Any) -> str:
    """``repr``, except a float whose repr is long and whose 4-significant-digit form is exact (labels
    are identities: two settings must never print alike)."""
    text = repr(v)
    if isinstance(v, float) and math.isfinite(v) and len(text) > 10:
        short = fmt_value(v, 4)
        return short if float(short) == v else text
    return text


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample std) -- kept for the report; the table uses :func:`mean_ci`."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def _reached(value: float, target: float, maximize: bool) -> bool:
    return value >= target if maximize else value <= target


def steps_to_target(result: RunResult, metric: str, target: float, maximize: bool) -> int | None:
    """The first recorded step where ``metric`` reaches ``target``, or None."""
    for step, value in result.metrics.get(metric, []):
        if _reached(value, target, maximize):
            return step
    return None


def time_to_target(result: RunResult, step: int) -> float:
    """Training wall time in seconds (sum of ``step_ms``, evaluation excluded) up to ``step``."""
    return sum(v for s, v in result.metrics.get("step_ms", []) if s <= step) / 1e3


@dataclass
class ComparisonTable:
    """The outcome of :func:`compare`.

    ``rows``: one dict per optimizer, in the order given: ``label``, ``optimizer``, ``hparams`` (as
    run), ``seeds``, ``finished``, ``failed``, ``errors``, ``reached`` (runs that reached the
    target), ``stats``: column -> :class:`~optimlab.lab.stats.Interval` (mean, 95% t interval, n),
    ``vs_baseline``: :class:`~optimlab.lab.stats.PairedTest` of the final primary metric against the
    baseline row (None for the baseline itself), ``tuning``: its :class:`TuneResult` or None.
    ``columns``: ``loss``, each eval metric, ``ms_per_step``, ``state_bytes_per_param``,
    ``steps_to_target``, ``time_to_target``. ``runs``: label -> one :class:`RunResult` per seed.
    ``target_source``: "task", "given" or "none" (no target: steps-to-target is not measured).
    """

    task: str
    primary_metric: str
    maximize: bool
    target: float
    columns: list[str]
    rows: list[dict[str, Any]]
    runs: dict[str, list[RunResult]] = field(repr=False, default_factory=dict)
    target_source: str = "task"
    baseline: str = ""
    tuning: dict[str, TuneResult] = field(default_factory=dict)

    def eval_period(self) -> int | None:
        """The largest gap between evaluations of the primary metric in any run (None if unknown)."""
        gaps = [b - a for rs in self.runs.values() for r in rs
                for (a, _), (b, _) in zip(r.metrics.get(self.primary_metric, []),
                                          r.metrics.get(self.primary_metric, [])[1:])]
        return max(gaps) if gaps else None

    def notes(self) -> list[str]:
        """Lines under the table: grid-edge warnings and failures."""
        out = []
        for label, t in self.tuning.items():
            grid = ", ".join(_short(v) if isinstance(v, float) else repr(v) for v in t.grid)
            out.append(f"  {label}: {t.param} tuned on seed {t.seed}, {t.steps} steps, by final {t.metric} "
                       f"over [{grid}]")
            if t.at_edge:
                out.append(f"  ! {label}: best {t.param} at the {t.at_edge} edge of its grid; the optimum may "
                           f"lie outside it: inconclusive")
        for row in self.rows:
            for err in row["errors"]:
                out.append(f"  {row['label']} failed: {err.strip().splitlines()[-1][:100]}")
        return out

    def __str__(self) -> str:
        arrow = "max" if self.maximize else "min"
        if self.target_source == "none":
            tgt = "no target declared"
        else:
            tgt = f"target {fmt_value(self.target)} ({'given' if self.target_source == 'given' else 'the task'}'s)"
        head = [f"{self.task}: {self.primary_metric} ({arrow}); {tgt}",
                "mean ± 95% t interval over seeds [runs that reached the target]",
                f"vs base: paired t test of {self.primary_metric} against {self.baseline}"]
        period = self.eval_period()
        if period and self.target_source != "none":
            head[-1] += f"; steps→target resolution: {period} steps"
        p = self.primary_metric
        cols: list[tuple[str, Any]] = [
            ("optimizer", lambda r: r["label"] + (" [edge]" if r["tuning"] and r["tuning"].at_edge else "")),
            ("ok", lambda r: f"{r['finished']}/{r['seeds']}"),
            ("loss", lambda r: fmt_interval(r["stats"]["loss"])),
            (p, lambda r: fmt_interval(r["stats"][p])),
            ("steps→target", lambda r: _hit(r, "steps_to_target")),
            ("vs base", lambda r: "base" if r["vs_baseline"] is None else _ptest(r["vs_baseline"])),
            ("s→target", lambda r: _hit(r, "time_to_target")),
            ("ms/step", lambda r: fmt_value(r["stats"]["ms_per_step"].mean)),
            ("B/param", lambda r: fmt_value(r["stats"]["state_bytes_per_param"].mean)),
        ]
        if self.target_source == "none":
            cols = [c for c in cols if "target" not in c[0]]
        while True:  # drop the least important columns until the table fits
            lines = _render(cols, self.rows)
            if max(map(len, lines)) <= WIDTH or len(cols) <= 5:
                break
            cols = cols[:-1]
        if max(map(len, lines)) > WIDTH:  # still too wide: shorten the labels
            cut = max(12, WIDTH - (max(map(len, lines)) - max(len(r["label"]) for r in self.rows)))
            short = [{**r, "label": r["label"] if len(r["label"]) <= cut else r["label"][:cut - 1] + "…"}
                     for r in self.rows]
            lines = _render(cols, short)
        return "\n".join(head + lines + self.notes())


def _hit(row: dict, column: str) -> str:
    if not row["finished"]:
        return "-"
    ci: Interval = row["stats"][column]
    frac = f"{row['reached']}/{row['finished']}"
    return f"{frac}" if ci.n == 0 else f"{fmt_interval(ci)} [{frac}]"


def _ptest(t: PairedTest) -> str:
    if t.n < 2:
        return f"n = {t.n}"
    return f"{t.diff.mean:+.2g} p={t.p_value:.2g}"


def _render(cols: list[tuple[str, Any]], rows: list[dict]) -> list[str]:
    table = [[name for name, _ in cols]] + [[str(f(r)) for _, f in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [fmt(table[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in table[1:]]


def _entries(optimizers: Sequence[str | tuple[str, Mapping[str, Any]]]) -> list[tuple[str, dict | None, str]]:
    entries: list[tuple[str, dict[str, Any] | None, str]] = []
    for entry in optimizers:
        if isinstance(entry, str):
            name, hp = entry, None
        elif isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[1], Mapping):
            name, hp = entry[0], dict(entry[1])
        else:
            raise ValueError(f"compare: each optimizer must be a name or a (name, hparams) pair, got {entry!r}")
        label = _label(name, hp or {})
        if label in [e[2] for e in entries]:
            raise ValueError(f"compare: optimizer {label!r} is listed twice")
        entries.append((name, hp, label))
    if not entries:
        raise ValueError("compare: no optimizers given")
    return entries


def _tune_plan(tune: Mapping[str, Any] | None, names: Sequence[str]) -> dict[str, tuple[str, Grid]]:
    """optimizer name -> (param, grid) from ``{"lr": grid}`` (every optimizer) or ``{"muon": {"lr": grid}}``."""
    plan: dict[str, tuple[str, Grid]] = {}
    for key, value in (tune or {}).items():
        targets, spec = (([key], value) if key in names and isinstance(value, Mapping) else (list(names), {key: value}))
        if key in names and not isinstance(value, Mapping):
            raise ValueError(f"compare: tune[{key!r}] must be {{param: grid}}, got {value!r}")
        for pname, grid in spec.items():
            if not isinstance(grid, Grid):
                grid = parse_grid(pname, grid) if isinstance(grid, str) else Grid(tuple(grid), True)
            for name in targets:
                if name in plan and key not in names:
                    continue  # an optimizer-specific grid wins over the shared one
                if name in plan and plan[name][0] != pname:
                    raise ValueError(f"compare: {name} can tune one hyperparameter, got {plan[name][0]!r} and {pname!r}")
                plan[name] = (pname, grid)
    return plan


def compare(task: str, optimizers: Sequence[str | tuple[str, Mapping[str, Any]]], seeds: int = 3,
            steps: int | None = None, store: RunStore | str | None = None, threads: int = 1,
            progress: bool = True, *, task_options: Mapping[str, Any] | None = None,
            eval_every: int | None = None, checkpoint_every: int | None = None, target: float | None = None,
            resume: bool = True, tune: Mapping[str, Any] | None = None, tune_steps: int | None = None,
            baseline: str | None = None, nonfinite: str = "error", sharpness_every: int | None = None,
            keep_checkpoint: bool = False, workers: int = 1, restart: bool = False) -> ComparisonTable:
    """Tune (optionally), run every (optimizer, seed) and tabulate (see the module docstring).

    optimizers: names, or ``(name, hparams)`` pairs (one row each). seeds: how many (>= 1).
    store: a RunStore, a path, or None (in memory); identical finished runs in it are reused.
    tune: ``{param: grid}`` for every optimizer, or ``{optimizer: {param: grid}}``; a grid is
        :func:`optimlab.lab.tune.parse_grid` text (``"log:1e-4:1e-1:7"``) or a list of values.
    tune_steps: the budget of each tuning trial (default: ``steps``).
    baseline: the label (or optimizer name) the paired tests compare against (default: first row).
    target: overrides the task's target for the primary metric.
    workers: run this many (optimizer, seed) runs at once in separate processes (needs a store path).
    eval_every, checkpoint_every, threads, progress, nonfinite, sharpness_every, keep_checkpoint,
    resume, restart: passed to :func:`optimlab.lab.runner.run` for every run and trial (``restart``: an
    interrupted run is trained again from step 0 instead of resuming its checkpoint).
    """
    task_obj = get_task(task, **dict(task_options or {}))
    spec = task_obj.spec
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ValueError(f"compare: seeds must be an int >= 1, got {seeds!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"compare: workers must be an int >= 1, got {workers!r}")
    entries = _entries(optimizers)
    plan = _tune_plan(tune, [n for n, _, _ in entries])
    labels = [label for _, _, label in entries]
    base = baseline if baseline is not None else labels[0]
    if base not in labels:
        by_name = [label for (n, _, label) in entries if n == base]
        if len(by_name) != 1:
            raise ValueError(f"compare: baseline {baseline!r} is not one of the rows: {', '.join(labels)}")
        base = by_name[0]
    if workers > 1 and not isinstance(store, (str, os.PathLike)):
        raise ValueError("compare: workers > 1 needs the store as a file path (each process opens it)")

    run_opts = dict(eval_every=eval_every, checkpoint_every=checkpoint_every, threads=threads,
                    progress=progress, nonfinite=nonfinite, sharpness_every=sharpness_every,
                    keep_checkpoint=keep_checkpoint, resume=resume, restart=restart)
    own_store = isinstance(store, (str, os.PathLike))
    db = RunStore(store) if own_store else (store if store is not None else RunStore(":memory:"))
    runs: dict[str, list[RunResult]] = {}
    tuned: dict[str, TuneResult] = {}
    import optimlab
    import torch

    for name, hp, _ in entries:  # refuse a bad name or hyperparameter before anything is trained
        fixed = {**spec.adamw, **(hp or {})} if name == "adamw" else dict(hp or {})
        if name in plan:
            fixed.pop(plan[name][0], None)
        optimlab.create([torch.zeros(2, 2, requires_grad=True)], name, **fixed)
    try:
        final_entries = []
        for name, hp, label in entries:
            hp_run = {**spec.adamw, **(hp or {})} if name == "adamw" else dict(hp or {})
            if name in plan:
                param, grid = plan[name]
                hp_run.pop(param, None)
                t = tune_one(task, name, param, grid, hparams=hp_run, steps=tune_steps or steps,
                             task_options=task_options, store=db, **run_opts)
                hp_run[param] = t.best
                label = _label(name, {**(hp or {}), param: t.best})  # the row shows the chosen value
                tuned[label] = t
            final_entries.append((name, hp_run, label))
        if len({label for _, _, label in final_entries}) < len(final_entries):
            raise ValueError(f"compare: two rows ended with the same settings: "
                             f"{', '.join(label for _, _, label in final_entries)}")
        if base not in [label for _, _, label in final_entries]:
            base = final_entries[labels.index(base)][2]
        if workers > 1:
            _run_parallel(final_entries, seeds, workers, task=task, steps=steps, task_options=task_options,
                          store=os.fspath(store), **run_opts)
            run_opts["resume"] = True  # read the runs the workers just stored
        for name, hp_run, label in final_entries:
            runs[label] = [run(task, name, hparams=hp_run, seed=seed, steps=steps, task_options=task_options,
                               store=db, **run_opts) for seed in range(seeds)]
    finally:
        if own_store:
            db.close()
    if own_store and tuned:
        save_decisions(store, list(tuned.values()))
    return _table(task, spec, final_entries, runs, tuned, base, target)


def _run_parallel(entries: Sequence[tuple[str, dict, str]], seeds: int, workers: int, **common: Any) -> None:
    """Train every (entry, seed) in ``workers`` processes (:func:`optimlab.lab.parallel.run_many`)."""
    from .parallel import run_many

    task = common.pop("task")
    run_many([dict(task=task, optimizer=name, hparams=hp, seed=seed, **common)
              for name, hp, _ in entries for seed in range(seeds)], workers)


def _table(task: str, spec: Any, entries: Sequence[tuple[str, Any, str]], runs: Mapping[str, list[RunResult]],
           tuned: Mapping[str, TuneResult], base: str, target: float | None) -> ComparisonTable:
    primary, maximize = spec.primary_metric, spec.maximize
    if target is not None:
        source = "given"
    elif primary in spec.targets:
        target, source = float(spec.targets[primary]), "task"
    else:
        target, source = math.nan, "none"
    columns = ["loss", *spec.metrics, "ms_per_step", "state_bytes_per_param", "steps_to_target", "time_to_target"]
    base_finals = {r.seed: r.final.get(primary) for r in runs[base] if r.ok}
    rows = []
    for name, _, label in entries:
        rs = runs[label]
        ok = [r for r in rs if r.ok]
        stats: dict[str, Interval] = {}
        for c in ("loss", *spec.metrics, "ms_per_step"):
            stats[c] = mean_ci([r.final[c] for r in ok if c in r.final and not math.isnan(r.final[c])])
        stats["state_bytes_per_param"] = mean_ci(
            [r.final["state_bytes"] / r.final["n_params"] for r in ok if r.final.get("n_params")])
        hits = []
        if source != "none":
            for r in ok:
                step = steps_to_target(r, primary, target, maximize)
                if step is not None:
                    hits.append((step, time_to_target(r, step)))
        stats["steps_to_target"] = mean_ci([h[0] for h in hits])
        stats["time_to_target"] = mean_ci([h[1] for h in hits])
        versus = None
        if label != base:
            pairs = [(r.final.get(primary), base_finals[r.seed]) for r in ok if r.seed in base_finals]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None
                     and math.isfinite(a) and math.isfinite(b)]
            versus = paired_test([a for a, _ in pairs], [b for _, b in pairs])
        rows.append({"label": label, "optimizer": name, "hparams": rs[0].hparams if rs else {},
                     "seeds": len(rs), "finished": len(ok), "failed": len(rs) - len(ok),
                     "errors": [r.error or "" for r in rs if not r.ok], "reached": len(hits),
                     "stats": stats, "vs_baseline": versus, "tuning": tuned.get(label)})
    return ComparisonTable(task=task, primary_metric=primary, maximize=maximize, target=target,
                           columns=columns, rows=rows, runs=dict(runs), target_source=source,
                           baseline=base, tuning=dict(tuned))
