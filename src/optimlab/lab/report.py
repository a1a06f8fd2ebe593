"""Reports: one self-contained HTML page (matplotlib figures inlined as PNG), the same figures as
PNG files, and a terminal table, from the finished runs of a :class:`RunStore`.

Runs are grouped by task (name and options), then by label -- the optimizer and its
hyperparameters, as in :func:`optimlab.lab.compare.compare`, with the step budget appended when
a label's runs differ in it -- and the seeds of a label are aggregated (a configuration and seed
recorded more than once: the newest run). Per task:

* loss curves: per-step training loss, mean over seeds with a min-max band (log y when positive);
* eval-metric curves (the task's ``spec.metrics``), the same way;
* steps and time to target: the first evaluated step at which the primary metric reaches the
  target (``<=``, or ``>=`` when maximised) and the wall time spent to get there (cumulative
  ``step_ms``); the target is given, else the median final primary metric of the best label;
* final metrics: mean ± sample std over seeds (n seeds) of the loss (mean of the last 10% of
  steps), each eval metric at the end, the median ms per step and optimizer state bytes per
  parameter;
* LR sensitivity, when labels of one optimizer differ only in ``lr``: final primary metric vs lr
  (log x), mean with min-max bars and each seed as a cross;
* sharpness, when runs recorded a ``sharpness`` series: mean over seeds with a min-max band, and
  2/lr (gradient descent's edge of stability) dashed where the label has an ``lr``.

The page ends with the provenance of the runs (code, torch and Python versions, machine, threads).
Figures are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas, never through pyplot, so
no global figure or backend state is touched and nothing stays open.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .compare import _label, _mean_std
from .plots import _curves, _figure, _finish, _lr_groups, _positive, _set_log
from .runner import summarize
from .store import RunStore, canonical_json
from .tasks import get_task

__all__ = ["ReportPaths", "write_report"]

_NOT_EVAL = {"loss", "step_ms", "opt_ms", "state_bytes", "n_params", "sharpness"}
_PROVENANCE = ("code_version", "torch_version", "python_version", "machine", "threads")
_CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:2em}h3{font-size:1.05em;margin-top:1.4em}table{border-collapse:collapse;font-size:.85em;
margin:.5em 0}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}tr.best td{font-weight:bold}img{max-width:100%;
height:auto}.meta{color:#666;font-size:.85em}"""


@dataclass
class ReportPaths:
    """What :func:`write_report` wrote: ``html`` (the page), ``figures`` (the PNG files, in page
    order), ``table`` (the terminal table), ``tasks`` (the section titles), ``runs`` (runs read)."""

    html: Path
    figures: list[Path]
    table: str
    tasks: list[str] = field(default_factory=list)
    runs: int = 0

    def __str__(self) -> str:
        return self.table


@dataclass
class _Section:
    title: str
    options: dict[str, Any]
    groups: dict[str, list[dict[str, Any]]]  # label -> runs (seeds)
    primary: str
    maximize: bool
    evals: list[str]
    target: float = math.nan
    given: bool = False
    best: str | None = None
    stats: dict[str, tuple[dict[str, tuple[float, float]], int]] = field(default_factory=dict)


def write_report(store: RunStore | str | os.PathLike, out_dir: str | os.PathLike, *,
                 task: str | None = None, optimizers: str | Sequence[str] | None = None,
                 title: str | None = None,
                 target: float | Mapping[str, float] | None = None) -> ReportPaths:
    """Write ``out_dir/report.html`` and one PNG per figure from the store's finished runs.

    store: a :class:`RunStore` or the path of one (which must exist). out_dir: created if missing.
    task: only this task. optimizers: only these optimizer names or labels (``"sgd(lr=0.1)"``);
    every one given must match a run. title: the page title. target: the primary-metric target
    for steps/time to target, one number for every task or ``{task: value}`` (default: the
    median final primary metric of the best label). No matching run: ValueError naming the store
    path and the filter.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:  # an optional dependency: the lab extra
        raise ImportError("write_report needs matplotlib: pip install 'optimlab[lab]'") from e
    own = not isinstance(store, RunStore)
    if own:
        path = os.fspath(store)
        if not os.path.isfile(path):
            raise ValueError(f"write_report: no run store at {path!r} "
                             f"(filter task={task!r}, optimizers={optimizers!r})")
        store = RunStore(path)
    try:
        runs = _load(store, task, optimizers)
        store_path = store.path
    finally:
        if own:
            store.close()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = _sections(runs, target)
    figures: list[Path] = []
    body, text, slugs = [], [], []
    for sec in sections:
        slug = re.sub(r"[^A-Za-z0-9]+", "_", sec.title).strip("_") or "task"
        while slug in slugs or slug == "provenance":
            slug += "_"
        slugs.append(slug)
        body.append(_section_html(sec, slug, out, figures))
        text.append(_section_text(sec))
    title = title or "optimlab report"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = " · ".join(f'<a href="#{s}">{html.escape(t)}</a>' for s, t in
                     [*zip(slugs, (sec.title for sec in sections)), ("provenance", "Provenance")])
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            f"<h1>{html.escape(title)}</h1>\n<p class=\"meta\">{len(runs)} finished runs from "
            f"<code>{html.escape(str(store_path))}</code>; filter task={html.escape(repr(task))}, "
            f"optimizers={html.escape(repr(optimizers))}; generated {now}.</p>\n<p>{nav}</p>\n"
            + "\n".join(body) + "\n<h2 id=\"provenance\">Provenance</h2>\n"
            + _provenance(runs) + "\n</body></html>\n")
    page_path = out / "report.html"
    page_path.write_text(page, encoding="utf-8")
    return ReportPaths(html=page_path, figures=figures, table="\n\n".join(text),
                       tasks=[s.title for s in sections], runs=len(runs))


# ---------------------------------------------------------------- reading and aggregating

def _load(db: RunStore, task: str | None, optimizers: str | Sequence[str] | None) -> list[dict]:
    wanted = None if optimizers is None else (
        [optimizers] if isinstance(optimizers, str) else list(optimizers))
    if wanted is not None and (not wanted or not all(isinstance(w, str) for w in wanted)):
        raise ValueError(f"write_report: store {db.path!r}: optimizers must be a name or a list "
                         f"of names or labels, got {optimizers!r} (filter task={task!r})")
    latest: dict[tuple, tuple[dict, str]] = {}
    matched: set[str] = set()
    for row in db.find_runs(task=task, status="finished"):
        label = _label(row["optimizer"], row["hparams"])
        if wanted is not None:
            hits = {w for w in wanted if w in (row["optimizer"], label)}
            if not hits:
                continue
            matched |= hits
        # The same configuration and seed recorded twice (resume=False): the newest counts.
        latest[(row["task"], canonical_json(row["task_options"]), label, row["seed"],
                row["steps"])] = (row, label)
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
    for row, label in latest.values():
        metrics = db.metrics(row["id"])
        runs.append({"row": row, "label": label, "metrics": metrics,
                     "final": summarize(metrics, row["steps"])})
    return runs


def _sections(runs: list[dict], target: float | Mapping[str, float] | None) -> list[_Section]:
    by_task: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for r in runs:
        key = (r["row"]["task"], canonical_json(r["row"]["task_options"]))
        by_task.setdefault(key, {}).setdefault(r["label"], []).append(r)
    for groups in by_task.values():  # seeds of one label with different budgets: apart
        for label in [k for k, rs in groups.items() if len({r["row"]["steps"] for r in rs}) > 1]:
            for r in groups.pop(label):
                groups.setdefault(f"{label} [{r['row']['steps']} steps]", []).append(r)
    names = [k[0] for k in by_task]
    sections = []
    for (task, opts), groups in by_task.items():
        options = json.loads(opts)
        present = {n for rs in groups.values() for r in rs for n in r["metrics"]}
        try:
            spec = get_task(task, **options).spec
            primary, maximize, evals = spec.primary_metric, spec.maximize, list(spec.metrics)
        except (ValueError, TypeError):  # a task (or option) this version of optimlab lacks
            evals = sorted(present - _NOT_EVAL)
            primary, maximize = ("eval_loss" if "eval_loss" in present else "loss"), False
        title = task
        if names.count(task) > 1:  # name the options that tell this configuration apart
            others = [json.loads(k[1]) for k in by_task if k[0] == task]
            title += " (" + ", ".join(f"{k}={v!r}" for k, v in options.items()
                                      if any(o.get(k) != v for o in others)) + ")"
        sec = _Section(title, options, groups, primary, maximize, [m for m in evals if m in present])
        given = target.get(task, target.get(title)) if isinstance(target, Mapping) else target
        if given is not None:
            sec.target, sec.given = float(given), True
        else:
            scored = [(statistics.fmean(v), label) for label in groups if (v := _finals(sec, label))]
            if scored:
                sec.best = (max if maximize else min)(scored)[1]
                sec.target = statistics.median(_finals(sec, sec.best))
        sec.stats = {label: _stats(sec, label) for label in groups}
        sections.append(sec)
    return sections


def _finals(sec: _Section, label: str) -> list[float]:
    """Finite final primary-metric values of a label's seeds."""
    values = (r["final"].get(sec.primary, math.nan) for r in sec.groups[label])
    return [v for v in values if math.isfinite(v)]


def _to_target(r: dict, sec: _Section) -> tuple[int, float] | None:
    """(step, wall ms up to and including that step) where the primary metric reaches the target."""
    if not math.isfinite(sec.target):
        return None
    for step, v in r["metrics"].get(sec.primary, []):
        if (v >= sec.target) if sec.maximize else (v <= sec.target):
            return step, sum(ms for s, ms in r["metrics"].get("step_ms", []) if s <= step)
    return None


def _stats(sec: _Section, label: str) -> tuple[dict[str, tuple[float, float]], int]:
    rs = sec.groups[label]
    cols = {c: _mean_std([r["final"][c] for r in rs if c in r["final"]])
            for c in ("loss", *sec.evals, "ms_per_step")}
    cols["B/param"] = _mean_std([r["final"]["state_bytes"] / r["final"]["n_params"]
                                 for r in rs if r["final"].get("n_params")])
    hits = [h for h in (_to_target(r, sec) for r in rs) if h is not None]
    cols["steps→target"] = _mean_std([h[0] for h in hits])
    cols["time→target"] = _mean_std([h[1] for h in hits])
    return cols, len(hits)


def _pm(mean: float, std: float, ms: bool = False) -> str:
    if not math.isfinite(mean):
        return "-"
    if ms:  # a duration in milliseconds
        return f"{mean:.4g} ± {std:.2g} ms" if mean < 1e3 else f"{mean / 1e3:.4g} ± {std / 1e3:.2g} s"
    return f"{mean:.4g} ± {std:.2g}"


def _target_note(sec: _Section) -> str:
    arrow = "max" if sec.maximize else "min"
    how = ("given" if sec.given else f"median final of best label {sec.best}" if sec.best
           else "no finite final values")
    return f"primary metric {sec.primary} ({arrow}); target {sec.target:.4g} ({how})"


# ---------------------------------------------------------------- text

def _section_text(sec: _Section) -> str:
    cols = ["loss", *sec.evals, "ms_per_step", "steps→target"]
    head = ["label", "n"] + ["ms/step" if c == "ms_per_step" else c for c in cols] + ["reached"]
    rows = [[label, str(len(rs))] + [_pm(*sec.stats[label][0][c]) for c in cols]
            + [f"{sec.stats[label][1]}/{len(rs)}"] for label, rs in sec.groups.items()]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([f"task {sec.title}: {_target_note(sec)}; mean ± std over seeds",
                      fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


# ---------------------------------------------------------------- html

def _table(head: Sequence[Any], rows: Sequence[Sequence[Any]], best: int | None = None) -> str:
    th = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    trs = "".join(("<tr class=\"best\">" if i == best else "<tr>")
                  + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                  for i, row in enumerate(rows))
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _section_html(sec: _Section, slug: str, out: Path, figures: list[Path]) -> str:
    colors = {label: f"C{i % 10}" for i, label in enumerate(sec.groups)}
    labels = list(sec.groups)
    best = labels.index(sec.best) if sec.best in labels else None
    steps = sorted({r["row"]["steps"] for rs in sec.groups.values() for r in rs})

    def save(fig: Any, name: str) -> str:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        fig.clear()
        path = out / f"{slug}_{name}.png"
        path.write_bytes(buf.getvalue())
        figures.append(path)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        return f'<img alt="{html.escape(sec.title)}: {name}" src="data:image/png;base64,{data}">'

    parts = [f'<h2 id="{slug}">Task: {html.escape(sec.title)}</h2>',
             f'<p class="meta">options {html.escape(canonical_json(sec.options))}; '
             f"{html.escape(_target_note(sec))}; steps {steps}</p>"]

    fig, ax = _figure()
    _set_log(ax, _curves(ax, sec.groups, colors, "loss"), always=True)
    ax.set(xlabel="step", ylabel="training loss", title="training loss (mean over seeds, min–max)")
    _finish(ax)
    parts += ["<h3>Loss curves</h3>", save(fig, "loss")]

    parts.append("<h3>Eval metrics</h3>")
    if sec.evals:
        ncols = min(3, len(sec.evals))
        nrows = math.ceil(len(sec.evals) / ncols)
        fig, axes = _figure(nrows, ncols, 4.2 * ncols, 3.2 * nrows)
        axes = np.atleast_1d(axes)
        for i, (ax, name) in enumerate(zip(axes, sec.evals)):
            values = _curves(ax, sec.groups, colors, name, marker=".")
            if "acc" not in name:  # accuracies read best on a linear axis
                _set_log(ax, values)
            ax.set(xlabel="step", title=name)
            _finish(ax, legend=i == 0)
        for ax in axes[len(sec.evals):]:
            ax.set_visible(False)
        parts.append(save(fig, "eval"))
    else:
        parts.append("<p>No eval metrics recorded.</p>")

    parts.append(f"<h3>Steps and time to target</h3><p class=\"meta\">{html.escape(_target_note(sec))}"
                 "; time is the summed wall time of the steps up to that point.</p>")
    parts.append(_table(["label", "reached", "steps to target", "time to target"],
                        [[label, f"{sec.stats[label][1]}/{len(rs)}",
                          _pm(*sec.stats[label][0]["steps→target"]),
                          _pm(*sec.stats[label][0]["time→target"], ms=True)]
                         for label, rs in sec.groups.items()], best))

    cols = ["loss", *sec.evals, "ms_per_step", "B/param"]
    parts.append("<h3>Final metrics</h3><p class=\"meta\">mean ± sample std over seeds; loss is "
                 "the mean of the last 10% of steps; ms/step the median.</p>")
    parts.append(_table(["label", "n seeds"] + ["ms/step" if c == "ms_per_step" else c for c in cols],
                        [[label, len(rs)] + [_pm(*sec.stats[label][0][c]) for c in cols]
                         for label, rs in sec.groups.items()], best))

    lr_groups = _lr_groups(sec.groups)
    if lr_groups:
        fig, ax = _figure()
        values = []
        for (opt, other), items in lr_groups.items():
            pts = [(lr, v) for lr, label in items if (v := _finals(sec, label))]
            if not pts:
                continue
            means = np.array([statistics.fmean(v) for _, v in pts])
            lo = means - np.array([min(v) for _, v in pts])
            hi = np.array([max(v) for _, v in pts]) - means
            eb = ax.errorbar([lr for lr, _ in pts], means, yerr=[lo, hi], marker="o", capsize=3,
                             label=opt if other == "{}" else f"{opt} {other}")
            for lr, v in pts:
                ax.scatter([lr] * len(v), v, s=25, marker="x", zorder=3, color=eb[0].get_color())
                values += v
        ax.set_xscale("log")
        _set_log(ax, np.array(values))
        ax.set(xlabel="lr", ylabel=f"final {sec.primary}",
               title=f"LR sensitivity: final {sec.primary} (mean, min–max bars, seeds as ×)")
        _finish(ax)
        parts += ["<h3>LR sensitivity</h3>", save(fig, "lr")]

    sharp = {label: rs for label, rs in sec.groups.items()
             if any(r["metrics"].get("sharpness") for r in rs)}
    if sharp:
        fig, ax = _figure()
        _curves(ax, sharp, colors, "sharpness", marker=".")  # linear y, as edge-of-stability plots
        for label, rs in sharp.items():
            lr = rs[0]["row"]["hparams"].get("lr")
            if _positive(lr):
                ax.axhline(2 / lr, color=colors[label], ls="--", lw=1, label=f"2/lr = {2 / lr:.3g}")
        ax.set(xlabel="step", ylabel="sharpness", title="sharpness (mean over seeds, min–max)")
        _finish(ax)
        parts += ["<h3>Sharpness</h3>", save(fig, "sharpness")]
    return "\n".join(parts)


def _provenance(runs: list[dict]) -> str:
    combos: dict[tuple, list[dict]] = {}
    for r in runs:
        combos.setdefault(tuple(r["row"].get(k) for k in _PROVENANCE), []).append(r["row"])
    def when(t: float | None) -> str:
        return "-" if t is None else _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M")
    rows = []
    for key, rs in combos.items():
        ids = sorted(r["id"] for r in rs)
        spans, start = [], ids[0]
        for a, b in zip(ids, ids[1:] + [None]):
            if b != a + 1:
                spans.append(str(a) if a == start else f"{start}–{a}")
                start = b
        rows.append(["-" if v is None else v for v in key]
                    + [len(rs), ", ".join(spans), f"{when(min(r['created'] for r in rs))} – "
                       f"{when(max((r['finished'] or r['created']) for r in rs))} UTC"])
    return _table(["code version", "torch", "python", "machine", "threads", "runs", "run ids",
                   "recorded"], rows)
