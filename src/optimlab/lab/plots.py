"""Figure helpers of the report: fixed-margin Agg figures with the legend outside the axes, curves
drawn as one thin line per seed under the mean, log axes that always carry tick labels, accuracy
axes zoomed to the data, and the x axis in steps, wall time or evaluations.

Figures are ``matplotlib.figure.Figure`` objects on the Agg canvas, never pyplot, so no global
figure or backend state is touched. Layout engines (constrained / tight) are not used: they double
the drawing time; margins are fixed in inches instead.
"""

from __future__ import annotations

import math
import textwrap
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from .stats import fmt_value

X_AXES = {"step": "step", "time": "wall time (s, summed step times)",
          "evals": "evaluations (loss and gradient)"}
LEGEND_IN = 3.0  # inches kept right of the axes for the legend


def figure(nrows: int = 1, ncols: int = 1, w: float = 6.0, h: float = 3.6,
           legend: bool = True) -> tuple[Any, np.ndarray]:
    """A Figure and its flat array of axes; ``legend`` reserves a column on the right for it."""
    from matplotlib.figure import Figure
    extra = LEGEND_IN if legend else 0.0
    total_w, total_h = w * ncols + extra, h * nrows
    fig = Figure(figsize=(total_w, total_h))
    fig.subplots_adjust(left=0.85 / total_w, right=1 - (extra + 0.2) / total_w,
                        bottom=0.6 / total_h, top=1 - 0.45 / total_h, wspace=0.32, hspace=0.55)
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def legend_outside(fig: Any, axes: Sequence[Any]) -> None:
    """One legend for the figure, right of the axes (curves are never covered)."""
    handles, labels, seen = [], [], set()
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in seen:
                seen.add(lab)
                handles.append(h)
                labels.append(lab)
    if handles:
        w = fig.get_figwidth()
        labels = [textwrap.fill(lab, 40, break_on_hyphens=False, subsequent_indent="  ")
                  for lab in labels]  # long labels wrap instead of running off the figure
        fig.legend(handles, labels, loc="upper left", fontsize=8, frameon=False,
                   bbox_to_anchor=(1 - LEGEND_IN / w + 0.05 / w, 1 - 0.4 / fig.get_figheight()))


def x_of(r: dict, steps: Sequence[int], x: str) -> np.ndarray:
    """The x coordinate of ``steps`` of run ``r``: the step, the summed step wall time up to it
    (seconds), or the cumulative number of evaluations (an ``evals`` series when the run logged
    one; otherwise one loss-and-gradient evaluation per step, as the runner's loop does)."""
    steps = np.asarray(steps, dtype=float)
    if x == "step":
        return steps
    name, scale = ("step_ms", 1e-3) if x == "time" else ("evals", 1.0)
    series = r["metrics"].get(name)
    if not series:
        return steps if x == "evals" else np.full(steps.shape, np.nan)
    s = np.array([p[0] for p in series], dtype=float)
    v = np.array([p[1] for p in series], dtype=float) * scale
    cum = np.cumsum(v) if x == "time" else v
    idx = np.searchsorted(s, steps, side="right") - 1  # value at the last logged step <= step
    return np.where(idx >= 0, cum[np.clip(idx, 0, None)], 0.0)


def curves(ax: Any, rows: Sequence[tuple[str, list[dict]]], colors: Mapping[str, str], name: str,
           x: str = "step", marker: str | None = None) -> np.ndarray:
    """Each seed as a thin line, the mean over seeds as a thick one (labelled ``label (n=k)``);
    returns every finite value drawn."""
    drawn = []
    for label, rs in rows:
        rs = [r for r in rs if r["metrics"].get(name)]
        if not rs:
            continue
        series = [dict(r["metrics"][name]) for r in rs]
        steps = sorted(set().union(*series))
        arr = np.array([[s.get(k, np.nan) for k in steps] for s in series], dtype=float)
        arr[~np.isfinite(arr)] = np.nan
        xs = np.array([x_of(r, steps, x) for r in rs])
        for xi, yi in zip(xs, arr):
            if len(rs) > 1:
                ax.plot(xi, yi, color=colors[label], lw=0.6, alpha=0.45)
        with warnings.catch_warnings():  # all-NaN columns (a step no seed has a finite value at)
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, mean_x = np.nanmean(arr, 0), np.nanmean(xs, 0)
        ax.plot(mean_x, mean, color=colors[label], lw=1.8, label=f"{label} (n={len(rs)})",
                marker=marker if len(steps) <= 40 else None, ms=3.5)
        drawn.append(arr[np.isfinite(arr)])
    return np.concatenate(drawn) if drawn else np.array([])


def late_values(rows: Sequence[tuple[str, list[dict]]], name: str, start: float = 0.2) -> np.ndarray:
    """Values of ``name`` from ``start`` (a fraction of the last step) on: what an accuracy axis is
    zoomed to, so chance-level first evaluations do not squash the part where runs differ."""
    out = []
    for _, rs in rows:
        for r in rs:
            series = r["metrics"].get(name) or []
            if series:
                last = series[-1][0]
                out += [v for s, v in series if s >= start * last]
    arr = np.array(out, dtype=float)
    return arr[np.isfinite(arr)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Tick positions for a log axis over [lo, hi]: decades, else 1-2-5, else 1..9 per decade,
    so a range inside one decade still gets at least two labelled ticks."""
    for mantissas in ((1.0,), (1.0, 2.0, 5.0), tuple(float(m) for m in range(1, 10)),
                      tuple(m / 2 for m in range(2, 20))):
        ticks = [m * 10.0 ** k for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
                 for m in mantissas if lo <= m * 10.0 ** k <= hi]
        if len(ticks) >= 3:
            return ticks
    return [lo, math.sqrt(lo * hi), hi]


def set_y(ax: Any, values: np.ndarray, log: bool | None = None, zoom: bool = False) -> None:
    """Log y (with labelled ticks) when ``log`` is True, or, when it is None, when every value is
    positive and spans over a factor of 20; ``zoom``: a linear axis fitted to the data range."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
    values = values[np.isfinite(values)] if values.size else values
    if not values.size:
        return
    lo, hi = float(values.min()), float(values.max())
    if log is None:
        log = lo > 0 and hi / lo > 20
    if log and lo > 0:
        pad = (hi / lo) ** 0.04 if hi > lo else 1.1
        ax.set_yscale("log")
        ax.set_ylim(lo / pad, hi * pad)
        ax.yaxis.set_major_locator(FixedLocator(log_ticks(lo / pad, hi * pad)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_value(v, 2)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    elif zoom:
        pad = 0.05 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1e-3)
        ax.set_ylim(lo - pad, hi + pad)


def finish(ax: Any) -> None:
    ax.grid(alpha=0.3, which="major", lw=0.5)


def positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0
