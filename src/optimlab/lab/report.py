"""Reports: one self-contained HTML page (matplotlib figures inlined as PNG), the same figures as
PNG files, and a terminal table, from the finished runs of a :class:`RunStore`.

What is grouped how (task sections, configurations, one-hyperparameter sweeps folded into
sensitivity curves, targets from the task) is :mod:`optimlab.lab.report_data`; the figures and
tables of a section are :mod:`optimlab.lab.report_html`; the terminal table (at most 120 columns)
is :mod:`optimlab.lab.report_text`. Numbers over seeds are means with the half-width of their 95%
Student-t interval; a single seed says ``n = 1``.

The page ends with the provenance of the runs (code, torch and Python versions, machine, threads).
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from .plots import X_AXES
from .report_data import load, sections
from .report_html import section_html, table
from .report_text import section_text
from .store import RunStore

__all__ = ["ReportPaths", "write_report"]

_PROVENANCE = ("code_version", "torch_version", "python_version", "machine", "threads")
_CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:2em}h3{font-size:1.05em;margin-top:1.4em}table{border-collapse:collapse;font-size:.85em;
margin:.5em 0}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f4f4f4}
td{white-space:nowrap}td:first-child,th:first-child{text-align:left;white-space:normal}tr.best td{font-weight:bold}img{max-width:100%;
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


def write_report(store: RunStore | str | os.PathLike, out_dir: str | os.PathLike, *,
                 task: str | None = None, optimizers: str | Sequence[str] | None = None,
                 title: str | None = None, target: float | Mapping[str, float] | None = None,
                 x: str = "step") -> ReportPaths:
    """Write ``out_dir/report.html`` and one PNG per figure from the store's finished runs.

    store: a :class:`RunStore` or the path of one (which must exist). out_dir: created if missing.
    task: only this task. optimizers: only these optimizer names or labels (``"sgd(lr=0.1)"``, exact
    or rounded as the report shows them); every one given must match a run. title: the page title.
    target: a target for the primary metric, one number for every task or ``{task: value}``
    (default: the task's own ``spec.targets``). x: the curves' x axis, ``"step"``, ``"time"``
    (summed step wall time) or ``"evals"`` (loss-and-gradient evaluations). No matching run:
    ValueError naming the store path and the filter.
    """
    if x not in X_AXES:
        raise ValueError(f"write_report: x must be one of {sorted(X_AXES)}, got {x!r}")
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
        runs = load(store, task, optimizers)
        store_path = store.path
    finally:
        if own:
            store.close()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    secs = sections(runs, target)
    figures: list[Path] = []
    body, text, slugs = [], [], []
    for sec in secs:
        slug = re.sub(r"[^A-Za-z0-9]+", "_", sec.title).strip("_") or "task"
        while slug in slugs or slug == "provenance":
            slug += "_"
        slugs.append(slug)
        body.append(section_html(sec, slug, out, figures, x))
        text.append(section_text(sec))
    title = title or "optimlab report"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = " · ".join(f'<a href="#{s}">{html.escape(t)}</a>' for s, t in
                     [*zip(slugs, (sec.title for sec in secs)), ("provenance", "Provenance")])
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            f"<h1>{html.escape(title)}</h1>\n<p class=\"meta\">{html.escape(_header(runs, store_path, task, optimizers, x))}"
            f"; generated {now}.</p>\n<p>{nav}</p>\n"
            + "\n".join(body) + "\n<h2 id=\"provenance\">Provenance</h2>\n"
            + _provenance(runs) + "\n</body></html>\n")
    page_path = out / "report.html"
    page_path.write_text(page, encoding="utf-8")
    return ReportPaths(html=page_path, figures=figures, table="\n\n".join(text),
                       tasks=[s.title for s in secs], runs=len(runs))


def _header(runs: list[dict], store_path: str, task: str | None,
            optimizers: str | Sequence[str] | None, x: str) -> str:
    """Plain words for what was selected (never a raw Python value such as ``task=None``)."""
    which = "all tasks" if task is None else f"task {task}"
    if optimizers is None:
        opts = "all optimizers"
    else:
        opts = "optimizers " + ", ".join([optimizers] if isinstance(optimizers, str) else optimizers)
    return (f"{len(runs)} finished runs from {store_path}; {which}, {opts}; "
            f"x axis: {X_AXES[x]}")


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
    return table(["code version", "torch", "python", "machine", "threads", "runs", "run ids",
                  "recorded"], rows)
