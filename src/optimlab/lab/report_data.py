"""What a report shows, before any drawing: runs read from the store, grouped into task sections,
labels with rounded hyperparameters, one-hyperparameter sweeps folded into sensitivity curves, and
per-row statistics over seeds (mean with a 95% t interval, steps to the task's targets).

Grouping. Runs are grouped by task (name and options), then by configuration -- the optimizer and
its exact hyperparameters (the budget appended when seeds of one configuration differ in it); the
seeds of a configuration are aggregated (a configuration and seed recorded twice: the newest run).

Sweeps. Configurations of one optimizer whose hyperparameters agree except for one numeric
hyperparameter, tried at three or more values, are one *sweep* (tuning trials are ordinary runs):
the report shows them as one sensitivity curve and one table row -- the best value's -- instead of a
row per trial. Three or more remaining configurations of one optimizer with the same hyperparameter
names that differ in several numeric ones (a random or Optuna search) are one *search*, shown the
same way with one panel per hyperparameter. A best value at the smallest or largest value tried is
flagged ("best at grid edge"): the grid did not bracket the optimum.

Targets. Steps to target are measured against the task's own targets (``TaskSpec.targets``) or a
target the caller gives for the primary metric -- never against a value derived from the optimizers
being compared, which would move with the set of optimizers in the table.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .compare import _label
from .runner import summarize
from .stats import Interval, fmt_value, mean_ci
from .store import RunStore, canonical_json
from .tasks import get_task

NOT_EVAL = {"loss", "step_ms", "opt_ms", "state_bytes", "n_params", "sharpness", "lr", "grad_norm",
            "update_norm", "eval_ms", "evals"}
MIN_SWEEP = 3  # values of one hyperparameter that make a sensitivity curve


def fmt_hparam(value: Any) -> str:
    """A hyperparameter value as a label shows it: floats to 2 significant digits, no quotes."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        text = fmt_value(value, 2)
        if "e" in text:  # 1e+03 -> 1e3, 3.3e-04 -> 3.3e-4
            mantissa, exp = text.split("e")
            if "." in mantissa:
                mantissa = mantissa.rstrip("0").rstrip(".")
            text = f"{mantissa}e{int(exp)}"
        return text
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(fmt_hparam(v) for v in value) + ")"
    return str(value)


def short_label(optimizer: str, hparams: Mapping[str, Any]) -> str:
    """``lion(lr=3.3e-4)``: the optimizer and its hyperparameters, rounded for reading."""
    if not hparams:
        return optimizer
    return f"{optimizer}(" + ", ".join(f"{k}={fmt_hparam(v)}" for k, v in sorted(hparams.items())) + ")"


@dataclass
class Target:
    """A metric, its target value, whether larger is better, and where the value came from."""

    metric: str
    value: float
    maximize: bool
    source: str  # "task" or "given"

    def __str__(self) -> str:
        return f"{self.metric} {'≥' if self.maximize else '≤'} {fmt_value(self.value)}"


@dataclass
class Sweep:
    """Configurations of one optimizer that differ only in the numeric hyperparameters ``params``
    (one: a sweep; several: a search such as an Optuna study). ``points`` = [(values, key)],
    ``values`` one per param, sorted; ``best`` the key with the best mean final primary metric;
    ``edge`` the params whose best value is the smallest or largest value tried."""

    optimizer: str
    params: list[str]
    others: dict[str, Any]
    points: list[tuple[tuple[float, ...], str]]
    best: str | None = None
    edge: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return short_label(self.optimizer, self.others)

    def values(self, key: str) -> dict[str, float]:
        return dict(zip(self.params, next(v for v, k in self.points if k == key)))

    def note(self) -> str:
        """``best of 4 lr; at grid edge`` or ``best of 12 (lr, momentum); lr at grid edge``."""
        what = self.params[0] if len(self.params) == 1 else "(" + ", ".join(self.params) + ")"
        text = f"best of {len(self.points)} {what}"
        if self.edge:
            text += "; " + ("" if len(self.params) == 1 else ", ".join(self.edge) + " ") + "at grid edge"
        return text


@dataclass
class Row:
    """One table row and one curve: a configuration, or a sweep shown through its best one."""

    key: str  # the configuration drawn (a sweep's best)
    label: str
    runs: list[dict]
    sweep: Sweep | None = None


@dataclass
class Section:
    title: str
    options: dict[str, Any]
    groups: dict[str, list[dict]]  # configuration key -> runs (seeds)
    labels: dict[str, str]  # configuration key -> display label
    primary: str
    maximize: bool
    evals: list[str]
    targets: list[Target] = field(default_factory=list)
    sweeps: list[Sweep] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    def finals(self, key: str, metric: str | None = None) -> list[float]:
        """Finite final values of ``metric`` (default: the primary) over a configuration's seeds."""
        metric = metric or self.primary
        values = (r["final"].get(metric, math.nan) for r in self.groups[key])
        return [v for v in values if math.isfinite(v)]

    def better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b


def load(db: RunStore, task: str | None, optimizers: str | Sequence[str] | None) -> list[dict]:
    """The newest finished run of every (task, options, configuration, seed, budget) matching the
    filters, with its metric series and summary; ValueError naming the store and the filter."""
    wanted = None if optimizers is None else (
        [optimizers] if isinstance(optimizers, str) else list(optimizers))
    if wanted is not None and (not wanted or not all(isinstance(w, str) for w in wanted)):
        raise ValueError(f"write_report: store {db.path!r}: optimizers must be a name or a list "
                         f"of names or labels, got {optimizers!r} (filter task={task!r})")
    latest: dict[tuple, tuple[dict, str]] = {}
    matched: set[str] = set()
    for row in db.find_runs(task=task, status="finished"):
        key = _label(row["optimizer"], row["hparams"])
        if wanted is not None:
            names = (row["optimizer"], key, short_label(row["optimizer"], row["hparams"]))
            hits = {w for w in wanted if w in names}
            if not hits:
                continue
            matched |= hits
        latest[(row["task"], canonical_json(row["task_options"]), key, row["seed"],
                row["steps"])] = (row, key)
    missing = [w for w in wanted or () if w not in matched]
    if not latest or missing:
        have = db.find_runs(status="finished")
        held = (f"{len(have)} finished runs of tasks {sorted({r['task'] for r in have})} and "
                f"optimizers {sorted({r['optimizer'] for r in have})}") if have else "no finished runs"
        what = (f"no finished runs match task={task!r}, optimizers={optimizers!r}" if not latest else
                f"no finished runs of {', '.join(map(repr, missing))} (filter task={task!r}, "
                f"optimizers={optimizers!r})")
        raise ValueError(f"write_report: store {db.path!r}: {what}; it holds {held}")
    runs = []
    for row, key in latest.values():
        metrics = db.metrics(row["id"])
        runs.append({"row": row, "key": key, "metrics": metrics,
                     "final": summarize(metrics, row["steps"])})
    return runs


def sections(runs: list[dict], target: float | Mapping[str, float] | None) -> list[Section]:
    """One :class:`Section` per task configuration, in the order first seen."""
    by_task: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for r in runs:
        key = (r["row"]["task"], canonical_json(r["row"]["task_options"]))
        by_task.setdefault(key, {}).setdefault(r["key"], []).append(r)
    for groups in by_task.values():  # seeds of one configuration with different budgets: apart
        for key in [k for k, rs in groups.items() if len({r["row"]["steps"] for r in rs}) > 1]:
            for r in groups.pop(key):
                groups.setdefault(f"{key} [{r['row']['steps']} steps]", []).append(r)
    names = [k[0] for k in by_task]
    out = []
    for (task, opts), groups in by_task.items():
        options = json.loads(opts)
        present = {n for rs in groups.values() for r in rs for n in r["metrics"]}
        try:
            spec = get_task(task, **options).spec
            primary, maximize, evals = spec.primary_metric, spec.maximize, list(spec.metrics)
            task_targets = dict(spec.targets)
        except (ValueError, TypeError):  # a task (or option) this version of optimlab lacks
            evals = sorted(present - NOT_EVAL)
            primary, maximize = ("eval_loss" if "eval_loss" in present else "loss"), False
            task_targets = {}
        title = task
        if names.count(task) > 1:  # name the options that tell this configuration apart
            others = [json.loads(k[1]) for k in by_task if k[0] == task]
            title += " (" + ", ".join(f"{k}={fmt_hparam(v)}" for k, v in options.items()
                                      if any(o.get(k) != v for o in others)) + ")"
        sec = Section(title, options, groups, _display_labels(groups), primary, maximize,
                      [m for m in evals if m in present])
        given = target.get(task, target.get(title)) if isinstance(target, Mapping) else target
        if given is not None:
            sec.targets.append(Target(primary, float(given), maximize, "given"))
        for metric, value in task_targets.items():
            if metric in present and not any(t.metric == metric for t in sec.targets):
                up = maximize if metric == primary else "acc" in metric
                sec.targets.append(Target(metric, float(value), up, "task"))
        sec.sweeps = _sweeps(sec)
        sec.rows = _rows(sec)
        out.append(sec)
    return out


def _display_labels(groups: Mapping[str, list[dict]]) -> dict[str, str]:
    labels = {}
    for key, rs in groups.items():
        row = rs[0]["row"]
        label = short_label(row["optimizer"], row["hparams"])
        if key.endswith(" steps]"):
            label += key[key.rindex(" ["):]
        labels[key] = label
    counts = {v: list(labels.values()).count(v) for v in labels.values()}
    # Two configurations that round to one label: show them exactly.
    return {k: (v if counts[v] == 1 else k) for k, v in labels.items()}


def _numeric(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _sweeps(sec: Section) -> list[Sweep]:
    """Fold configurations into one-hyperparameter sweeps (greedily, the largest first), then the
    rest of each optimizer's configurations sharing their hyperparameter names and differing in
    several numeric ones into one search."""
    free = {k for k in sec.groups if not k.endswith(" steps]")}
    found = []
    while True:
        candidates: dict[tuple[str, str, str], list[tuple[tuple[float, ...], str]]] = {}
        for key in free:
            row = sec.groups[key][0]["row"]
            hp = row["hparams"]
            for p, v in hp.items():
                if _numeric(v):
                    rest = canonical_json({k: x for k, x in hp.items() if k != p})
                    candidates.setdefault((row["optimizer"], p, rest), []).append(((float(v),), key))
        good = [(len({v for v, _ in pts}), c, pts) for c, pts in candidates.items()
                if len({v for v, _ in pts}) >= MIN_SWEEP]
        if not good:
            break
        _, (opt, param, rest), pts = max(good, key=lambda g: (g[0], g[1]))
        found.append(_scored(sec, Sweep(opt, [param], json.loads(rest), sorted(pts))))
        free -= {k for _, k in pts}
    searches: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for key in sorted(free):
        row = sec.groups[key][0]["row"]
        searches.setdefault((row["optimizer"], tuple(sorted(row["hparams"]))), []).append(key)
    for (opt, names), keys in searches.items():
        if len(keys) < MIN_SWEEP:
            continue
        hps = [sec.groups[k][0]["row"]["hparams"] for k in keys]
        varying = [n for n in names if len({canonical_json(h[n]) for h in hps}) > 1]
        if len(varying) < 2 or not all(_numeric(h[n]) for h in hps for n in varying):
            continue
        others = {n: hps[0][n] for n in names if n not in varying}
        pts = sorted((tuple(float(h[n]) for n in varying), k) for h, k in zip(hps, keys))
        found.append(_scored(sec, Sweep(opt, varying, others, pts)))
    return found


def _scored(sec: Section, sw: Sweep) -> Sweep:
    scored = [(statistics.fmean(v), key) for _, key in sw.points if (v := sec.finals(key))]
    if scored:
        sw.best = (max if sec.maximize else min)(scored)[1]
        best = sw.values(sw.best)
        for i, p in enumerate(sw.params):
            tried = [v[i] for v, _ in sw.points]
            if best[p] in (min(tried), max(tried)):
                sw.edge.append(p)
    return sw


def _rows(sec: Section) -> list[Row]:
    in_sweep = {k: sw for sw in sec.sweeps for _, k in sw.points}
    rows, done = [], set()
    for key, rs in sec.groups.items():
        sw = in_sweep.get(key)
        if sw is None:
            rows.append(Row(key, sec.labels[key], rs))
        elif id(sw) not in done:
            done.add(id(sw))
            shown = sw.best or sw.points[0][1]
            label = short_label(sw.optimizer, {**sw.others, **sw.values(shown)}) + f" [{sw.note()}]"
            rows.append(Row(shown, label, sec.groups[shown], sw))
    return rows


# ---------------------------------------------------------------- statistics of a row

def final_ci(sec: Section, row: Row, column: str) -> Interval:
    """Mean and 95% t interval over seeds of a final value (``B/param``: state bytes per parameter)."""
    if column == "B/param":
        values = [r["final"]["state_bytes"] / r["final"]["n_params"]
                  for r in row.runs if r["final"].get("n_params")]
    else:
        values = [r["final"][column] for r in row.runs
                  if column in r["final"] and math.isfinite(r["final"][column])]
    return mean_ci(values)


def reach(r: dict, t: Target) -> tuple[int, float] | None:
    """(step, wall ms of the steps up to it) where ``t.metric`` first reaches the target."""
    for step, v in r["metrics"].get(t.metric, []):
        if (v >= t.value) if t.maximize else (v <= t.value):
            return step, sum(ms for s, ms in r["metrics"].get("step_ms", []) if s <= step)
    return None


def to_target(row: Row, t: Target) -> tuple[Interval, Interval, int]:
    """Steps and ms to target over the seeds that reached it, and how many did."""
    hits = [h for h in (reach(r, t) for r in row.runs) if h is not None]
    return mean_ci([h[0] for h in hits]), mean_ci([h[1] for h in hits]), len(hits)


def targets_note(sec: Section) -> str:
    if not sec.targets:
        return "no target set for this task (steps to target not measured)"
    return "targets: " + "; ".join(f"{t} ({t.source})" for t in sec.targets)
