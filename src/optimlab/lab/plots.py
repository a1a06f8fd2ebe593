"""Figure helpers of the report: fixed-margin Agg figures, seed-band curves, log axes, LR groups."""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np

from .store import canonical_json


def _figure(nrows: int = 1, ncols: int = 1, w: float = 7.5, h: float = 4.2) -> tuple[Any, Any]:
    """A Figure and its axes (one, or a flat array) with fixed margins in inches: a layout
    engine (constrained / tight) would double the drawing time."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(w, h))
    fig.subplots_adjust(left=0.8 / w, right=1 - 0.15 / w, bottom=0.55 / h, top=1 - 0.35 / h,
                        wspace=0.25, hspace=0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    return fig, axes[0] if axes.size == 1 else axes


def _curves(ax: Any, groups: Mapping[str, list[dict]], colors: Mapping[str, str], name: str,
            marker: str | None = None) -> np.ndarray:
    """Plot each label's mean over seeds with a min-max band; return every finite value drawn."""
    drawn = []
    for label, rs in groups.items():
        series = [dict(r["metrics"][name]) for r in rs if r["metrics"].get(name)]
        if not series:
            continue
        steps = sorted(set().union(*series))
        arr = np.array([[s.get(k, np.nan) for k in steps] for s in series], dtype=float)
        arr[~np.isfinite(arr)] = np.nan
        with warnings.catch_warnings():  # all-NaN columns (a step no seed has a finite value at)
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, lo, hi = np.nanmean(arr, 0), np.nanmin(arr, 0), np.nanmax(arr, 0)
        ax.plot(steps, mean, color=colors[label], lw=1.4, label=f"{label} (n={len(series)})",
                marker=marker if len(steps) <= 60 else None, ms=4)
        if len(series) > 1:
            ax.fill_between(steps, lo, hi, color=colors[label], alpha=0.18, lw=0)
        drawn.append(arr[np.isfinite(arr)])
    return np.concatenate(drawn) if drawn else np.array([])


def _set_log(ax: Any, values: np.ndarray, always: bool = False) -> None:
    """Log y when every value is positive (and, unless ``always``, spans over a factor of 20)."""
    if values.size and values.min() > 0 and (always or values.max() / values.min() > 20):
        from matplotlib.ticker import NullFormatter
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())  # "4×10⁰ 3×10⁰..." crowds the axis


def _finish(ax: Any, legend: bool = True) -> None:
    ax.grid(alpha=0.3, which="both", lw=0.5)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _lr_groups(groups: Mapping[str, list[dict]]) -> dict[tuple[str, str], list[tuple[float, str]]]:
    """(optimizer, other hparams) -> [(lr, label)] sorted, where at least two lrs differ."""
    out: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for label, rs in groups.items():
        hp = rs[0]["row"]["hparams"]
        if _positive(hp.get("lr")):
            key = (rs[0]["row"]["optimizer"], canonical_json({k: v for k, v in hp.items() if k != "lr"}))
            out.setdefault(key, []).append((float(hp["lr"]), label))
    return {k: sorted(v) for k, v in out.items() if len({lr for lr, _ in v}) >= 2}


