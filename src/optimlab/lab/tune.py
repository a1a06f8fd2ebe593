"""Grid tuning of one hyperparameter per optimizer, on a reserved seed, before a comparison.

``tune(task, optimizer, param, grid)`` trains one run per grid value on the tuning seed
``TUNE_SEED`` (1000: never one of a comparison's seeds ``0..n-1``, so the value is chosen on another
model initialisation and batch order than the ones it is then reported on), scores each run by the
task's primary metric at the end (or ``metric=``), and picks the best. A run that fails (divergence)
scores worst. Ties go to the run with the lower final training loss, then to the earlier grid value.

Grid-edge rule: when the chosen value is the first or last of an ordered (numeric) grid, the optimum
may lie outside the grid: :attr:`TuneResult.at_edge` says ``"low"`` or ``"high"``, and a comparison
or claim that rests on it reports that instead of a verdict.

Where it is stored: the trials are ordinary runs in the run store (``seed == TUNE_SEED``; their
hyperparameters are the optimizer's fixed ones plus ``param`` set to the grid value). The decision
(grid, scores, chosen value, edge flag, run ids) is a :class:`TuneResult`; :func:`save_decisions`
writes a list of them, as plain JSON, to ``<run store path>.tuning.json`` (see
:func:`decisions_path`), replacing an earlier decision for the same (task, options, optimizer, fixed
hyperparameters, param, steps).

Grid syntax (:func:`parse_grid`): ``log:LOW:HIGH:N`` (N values evenly spaced in log, rounded to 3
significant digits), ``lin:LOW:HIGH:N``, or a comma list ``V1,V2,...`` (``choice:V1,V2`` also: an
unordered grid, no edge rule).
"""

from __future__ import annotations

import ast
import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from .runner import RunResult, run
from .store import RunStore
from .tasks import get_task

__all__ = ["TUNE_SEED", "Grid", "TuneResult", "parse_grid", "tune", "decisions_path",
           "save_decisions", "load_decisions"]

#: the seed of every tuning trial (comparisons report seeds 0..n-1)
TUNE_SEED = 1000


@dataclass(frozen=True)
class Grid:
    """The values tried for one hyperparameter; ``ordered``: numeric and sorted (the edge rule applies)."""

    values: tuple[Any, ...]
    ordered: bool
    text: str = ""


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _round(x: float) -> float:
    return float(f"{x:.3g}")


def parse_grid(name: str, text: str) -> Grid:
    """The grid for ``name`` from ``log:LOW:HIGH:N``, ``lin:LOW:HIGH:N``, ``choice:V1,V2`` or ``V1,V2,...``.

    ``parse_grid("lr", "log:1e-4:1e-1:7")`` -> values 1e-4, 3.16e-4, 1e-3, ..., 0.1. Malformed text:
    ValueError naming the hyperparameter and the text.
    """
    kind, sep, rest = text.partition(":")
    try:
        if sep and kind in ("log", "lin"):
            parts = rest.split(":")
            if len(parts) != 3:
                raise ValueError("needs LOW:HIGH:N")
            low, high, n = float(parts[0]), float(parts[1]), int(parts[2])
            if not (math.isfinite(low) and math.isfinite(high)) or not low < high or n < 2:
                raise ValueError("needs finite LOW < HIGH and N >= 2")
            if kind == "log":
                if low <= 0:
                    raise ValueError("log grid needs LOW > 0")
                a, b = math.log10(low), math.log10(high)
                values = [_round(10 ** (a + (b - a) * i / (n - 1))) for i in range(n)]
            else:
                values = [_round(low + (high - low) * i / (n - 1)) for i in range(n)]
            return Grid(tuple(values), True, text)
        items = rest if (sep and kind == "choice") else text
        values = [_literal(v.strip()) for v in items.split(",") if v.strip()]
        if not values:
            raise ValueError("no values")
        if len(set(map(repr, values))) != len(values):
            raise ValueError("a value is repeated")
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        ordered = numeric and not (sep and kind == "choice") and len(values) >= 2
        return Grid(tuple(sorted(values) if ordered else values), ordered, text)
    except ValueError as e:
        raise ValueError(f"tune: grid for {name!r} must be log:LOW:HIGH:N, lin:LOW:HIGH:N, choice:V1,V2 "
                         f"or V1,V2,...; got {text!r} ({e})") from None


@dataclass
class TuneResult:
    """One optimizer's tuning of ``param`` on ``task``: ``grid`` values, ``scores`` (the final
    ``metric`` of each trial; NaN for a failed one), the chosen ``best`` value, ``at_edge``
    (``"low"``, ``"high"`` or None), and the trial ``run_ids`` in grid order."""

    task: str
    task_options: dict[str, Any]
    optimizer: str
    hparams: dict[str, Any]
    param: str
    grid: list[Any]
    ordered: bool
    metric: str
    maximize: bool
    steps: int
    seed: int
    scores: list[float]
    best: Any
    at_edge: str | None
    run_ids: list[int] = field(default_factory=list)

    @property
    def edge_note(self) -> str:
        """``"muon lr=0.1 at the high edge of its grid [0.001 .. 0.1]"`` or ``""``."""
        if self.at_edge is None:
            return ""
        return (f"{self.optimizer} {self.param}={self.best!r} at the {self.at_edge} edge of its grid "
                f"[{self.grid[0]!r} .. {self.grid[-1]!r}]")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _score(res: RunResult, metric: str, maximize: bool) -> tuple[float, float]:
    """(sort key of the final metric, final training loss); failed runs sort last."""
    value = res.final.get(metric, math.nan) if res.ok else math.nan
    if not math.isfinite(value):
        return math.inf, math.inf
    loss = res.final.get("loss", math.inf)
    return (-value if maximize else value), (loss if math.isfinite(loss) else math.inf)


def tune(task: str, optimizer: str, param: str, grid: Grid | Sequence[Any], *,
         hparams: Mapping[str, Any] | None = None, steps: int | None = None,
         task_options: Mapping[str, Any] | None = None, store: RunStore | str | None = None,
         metric: str | None = None, seed: int = TUNE_SEED, **run_options: Any) -> TuneResult:
    """Train ``optimizer`` with ``param`` at each grid value on ``seed`` and pick the best value.

    hparams: the optimizer's other (fixed) hyperparameters. metric: default the task's primary
    metric (its direction follows ``spec.maximize``). run_options: passed to
    :func:`optimlab.lab.runner.run` (eval_every, checkpoint_every, threads, progress, nonfinite...).
    A hyperparameter the optimizer does not take, or a grid value it refuses, raises before any
    run is stored (TypeError / ValueError from :func:`optimlab.create`).
    """
    if not isinstance(grid, Grid):
        values = tuple(grid)
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        grid = Grid(tuple(sorted(values)) if numeric else values, numeric and len(values) >= 2)
    if not grid.values:
        raise ValueError(f"tune: empty grid for {param!r}")
    spec = get_task(task, **dict(task_options or {})).spec
    metric = metric or spec.primary_metric
    if metric not in spec.metrics:
        raise ValueError(f"tune: {task} has no metric {metric!r}; it has {', '.join(spec.metrics)}")
    fixed = dict(hparams or {})
    if param in fixed:
        raise ValueError(f"tune: {param!r} is both fixed ({fixed[param]!r}) and tuned")
    import optimlab, torch  # validate every grid value before anything is trained or stored

    probe = [torch.zeros(2, 2, requires_grad=True)]
    for value in grid.values:
        optimlab.create(probe, optimizer, **{**fixed, param: value})
    results = [run(task, optimizer, hparams={**fixed, param: value}, seed=seed, steps=steps,
                   task_options=task_options, store=store, **run_options) for value in grid.values]
    keys = [_score(r, metric, spec.maximize) for r in results]
    best_i = min(range(len(keys)), key=lambda i: (keys[i], i))
    at_edge = None
    if grid.ordered and len(grid.values) >= 2:
        at_edge = "low" if best_i == 0 else ("high" if best_i == len(grid.values) - 1 else None)
    scores = [r.final.get(metric, math.nan) if r.ok else math.nan for r in results]
    return TuneResult(task=task, task_options=dict(results[0].task_options), optimizer=optimizer,
                      hparams=fixed, param=param, grid=list(grid.values), ordered=grid.ordered,
                      metric=metric, maximize=spec.maximize, steps=results[0].steps, seed=seed,
                      scores=scores, best=grid.values[best_i], at_edge=at_edge,
                      run_ids=[r.run_id for r in results])


# ---------------------------------------------------------------- decisions beside the run store

def decisions_path(store_path: str | os.PathLike) -> str:
    """``<run store path>.tuning.json``: where the tuning decisions of that store are kept."""
    return os.fspath(store_path) + ".tuning.json"


def _key(d: Mapping[str, Any]) -> str:
    return json.dumps([d["task"], d["task_options"], d["optimizer"], d["hparams"], d["param"], d["steps"]],
                      sort_keys=True, default=repr)


def load_decisions(store_path: str | os.PathLike) -> list[dict[str, Any]]:
    """The decisions saved beside the run store at ``store_path`` (``[]`` when there are none).
    Each is :meth:`TuneResult.as_dict`. A file that is not such a JSON list: ValueError naming it."""
    path = decisions_path(store_path)
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"tuning decisions {path!r}: not readable JSON ({e})") from None
    if not isinstance(data, list) or not all(isinstance(d, dict) and "param" in d for d in data):
        raise ValueError(f"tuning decisions {path!r}: expected a JSON list of decisions")
    return data


def save_decisions(store_path: str | os.PathLike, results: Sequence[TuneResult]) -> str:
    """Merge ``results`` into ``<store_path>.tuning.json`` (same key: replaced); returns the path."""
    merged = {_key(d): d for d in load_decisions(store_path)}
    for r in results:
        d = json.loads(json.dumps(r.as_dict(), default=repr))
        merged[_key(d)] = d
    path = decisions_path(store_path)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(list(merged.values()), fh, indent=1, allow_nan=True)
    os.replace(tmp, path)
    return path
