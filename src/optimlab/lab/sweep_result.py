"""What a sweep returns: each trial's values, objective and runs, and the study's summary table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from optuna.trial import FrozenTrial, TrialState

from .space import _Param

__all__ = ["SweepTrial", "SweepResult"]


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
