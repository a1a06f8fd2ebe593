"""One task section of the HTML report: its figures (saved as PNG and inlined) and tables.

Figures, each skipped when its data are absent (older runs logged fewer series):

* training loss vs the chosen x axis (log y with labelled ticks);
* eval metrics (the task's ``spec.metrics``): log y for losses spanning over a factor of 20,
  accuracies on a linear axis zoomed to the data;
* optimizer dynamics: ``lr``, ``grad_norm``, ``update_norm`` and ``eval_ms`` as the runner logs them;
* sensitivity: per sweep (or search) and hyperparameter, the final primary metric vs the value
  tried (log x over a decade), the mean, each seed as a point, the best value starred and "best at
  grid edge" flagged;
* sharpness, when runs recorded it, with 2/lr (gradient descent's edge of stability) dashed.

Curves show each seed as a thin line and the mean over seeds as a thick one; sweeps are drawn
through their best value only. Legends sit right of the axes.
"""

from __future__ import annotations

import base64
import html
import io
import math
import statistics
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import plots
from .report_data import Section, final_ci, fmt_hparam, targets_note, to_target
from .stats import fmt_interval, fmt_value, mean_ci

DYNAMICS = (("lr", "learning rate"), ("grad_norm", "gradient norm"), ("update_norm", "update norm"),
            ("eval_ms", "evaluation time (ms)"))


def table(head: Sequence[Any], rows: Sequence[Sequence[Any]], marked: Sequence[int] = ()) -> str:
    th = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    trs = "".join(("<tr class=\"best\">" if i in marked else "<tr>")
                  + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                  for i, row in enumerate(rows))
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def fmt_ms(ci: Any) -> str:
    """A duration interval in ms, shown in s from one second up."""
    if ci.n == 0:
        return "-"
    if abs(ci.mean) < 1e3:
        return f"{fmt_interval(ci)} ms"
    scaled = type(ci)(ci.mean / 1e3, ci.low / 1e3, ci.high / 1e3, ci.n)
    return f"{fmt_interval(scaled)} s"


def options_text(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={'-' if v is None else fmt_hparam(v)}" for k, v in options.items()) or "none"


def section_html(sec: Section, slug: str, out: Path, figures: list[Path], x: str = "step") -> str:
    colors = {row.label: f"C{i % 10}" for i, row in enumerate(sec.rows)}
    curves = [(row.label, row.runs) for row in sec.rows]
    best = _best_rows(sec)
    steps = sorted({r["row"]["steps"] for rs in sec.groups.values() for r in rs})
    xlabel = plots.X_AXES[x]

    def save(fig: Any, name: str) -> str:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        fig.clear()
        path = out / f"{slug}_{name}.png"
        path.write_bytes(buf.getvalue())
        figures.append(path)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        return f'<img alt="{html.escape(sec.title)}: {name}" src="data:image/png;base64,{data}">'

    parts = [f'<h2 id="{slug}">Task: {html.escape(sec.title)}</h2>',
             f'<p class="meta">options: {html.escape(options_text(sec.options))}; primary metric '
             f"{html.escape(sec.primary)} ({'max' if sec.maximize else 'min'}); "
             f"{html.escape(targets_note(sec))}; budget {', '.join(map(str, steps))} steps</p>"]

    fig, axes = plots.figure(w=7.0, h=4.0)
    plots.set_y(axes[0], plots.curves(axes[0], curves, colors, "loss", x), log=True)
    axes[0].set(xlabel=xlabel, ylabel="training loss", title="training loss (thin: seeds; thick: mean)")
    plots.finish(axes[0])
    plots.legend_outside(fig, axes)
    parts += ["<h3>Loss curves</h3>", save(fig, "loss")]

    parts.append("<h3>Eval metrics</h3>")
    if sec.evals:
        ncols = min(2, len(sec.evals))
        fig, axes = plots.figure(math.ceil(len(sec.evals) / ncols), ncols, w=4.6, h=3.2)
        for ax, name in zip(axes, sec.evals):
            values = plots.curves(ax, curves, colors, name, x, marker=".")
            if "acc" in name:  # linear, zoomed to where the runs differ
                plots.set_y(ax, plots.late_values(curves, name), log=False, zoom=True)
                ax.set_title(f"{name} (y zoomed to the last 80% of steps)", fontsize=10)
            else:
                plots.set_y(ax, values, zoom=True)
            for t in sec.targets:
                if t.metric == name:
                    ax.axhline(t.value, color="k", ls=":", lw=1, label=f"target {t}")
            ax.set_xlabel(xlabel)
            if not ax.get_title():
                ax.set_title(name)
            plots.finish(ax)
        for ax in axes[len(sec.evals):]:
            ax.set_visible(False)
        plots.legend_outside(fig, axes)
        parts.append(save(fig, "eval"))
    else:
        parts.append("<p>No eval metrics recorded.</p>")

    # A task eval metric of the same name (quadratic's grad_norm) is drawn with the eval metrics.
    dyn = [(n, t) for n, t in DYNAMICS if n not in sec.evals
           and any(r["metrics"].get(n) for _, rs in curves for r in rs)]
    if dyn:
        ncols = min(2, len(dyn))
        fig, axes = plots.figure(math.ceil(len(dyn) / ncols), ncols, w=4.6, h=3.2)
        for ax, (name, title) in zip(axes, dyn):
            plots.set_y(ax, plots.curves(ax, curves, colors, name, x))
            ax.set(xlabel=xlabel, title=title)
            plots.finish(ax)
        for ax in axes[len(dyn):]:
            ax.set_visible(False)
        plots.legend_outside(fig, axes)
        parts += ["<h3>Optimizer dynamics</h3>", save(fig, "dynamics")]

    parts.append(f'<h3>Steps and time to target</h3><p class="meta">{html.escape(targets_note(sec))}'
                 "; mean ± half-width of the 95% t interval over the seeds that reached it; time is "
                 "the summed wall time of the steps up to that point.</p>")
    if sec.targets:
        head, rows = ["label"], [[row.label] for row in sec.rows]
        for t in sec.targets:
            head += [f"reached {t}", "steps", "time"]
            for cells, row in zip(rows, sec.rows):
                steps_ci, ms_ci, k = to_target(row, t)
                cells += [f"{k}/{len(row.runs)}", fmt_interval(steps_ci), fmt_ms(ms_ci)]
        parts.append(table(head, rows, best))

    cols = ["loss", *sec.evals, "ms_per_step", "B/param"]
    parts.append('<h3>Final metrics</h3><p class="meta">mean ± half-width of the 95% t interval over '
                 "seeds (n = 1: one seed, no interval); loss is the mean of the last 10% of steps; "
                 "ms/step the median. A sweep is one row: its best value.</p>")
    parts.append(table(["label", "n seeds"] + ["ms/step" if c == "ms_per_step" else c for c in cols],
                       [[row.label, len(row.runs)] + [fmt_interval(final_ci(sec, row, c)) for c in cols]
                        for row in sec.rows], best))

    if sec.sweeps:
        parts += ["<h3>Sensitivity</h3>", save(_sensitivity(sec), "sensitivity"), _sweep_tables(sec)]

    # Every configuration with a sharpness series, sweeps included: edge-of-stability runs are
    # usually a set of step sizes, each with its own 2/lr line.
    sharp = [(sec.labels[k], rs) for k, rs in sec.groups.items()
             if any(r["metrics"].get("sharpness") for r in rs)]
    if sharp:
        colors = {lab: f"C{i % 10}" for i, (lab, _) in enumerate(sharp)}
        fig, axes = plots.figure()
        plots.curves(axes[0], sharp, colors, "sharpness", x, marker=".")  # linear y, as EoS plots
        for (label, rs) in sharp:
            lr = rs[0]["row"]["hparams"].get("lr")
            if plots.positive(lr):
                axes[0].axhline(2 / lr, color=colors[label], ls="--", lw=1,
                                label=f"2/lr = {fmt_value(2 / lr)}")
        axes[0].set(xlabel=xlabel, ylabel="sharpness", title="sharpness (thin: seeds; thick: mean)")
        plots.finish(axes[0])
        plots.legend_outside(fig, axes)
        parts += ["<h3>Sharpness</h3>", save(fig, "sharpness")]
    return "\n".join(parts)


def _best_rows(sec: Section) -> list[int]:
    scored = [(statistics.fmean(v), i) for i, row in enumerate(sec.rows)
              if (v := sec.finals(row.key))]
    if not scored:
        return []
    return [(max if sec.maximize else min)(scored)[1]]


def _sensitivity(sec: Section) -> Any:
    """One panel per (sweep, hyperparameter): final primary metric vs the value tried."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    panels = [(sw, i) for sw in sec.sweeps for i in range(len(sw.params))]
    ncols = min(2, len(panels))
    w = 6.0 if ncols == 1 else 4.6
    fig, axes = plots.figure(math.ceil(len(panels) / ncols), ncols, w=w, h=3.6, legend=False)
    for ax, (sw, i) in zip(axes, panels):
        param = sw.params[i]
        xs, means, seeds = [], [], []
        for values, key in sw.points:
            v = sec.finals(key)
            if v:
                xs.append(values[i])
                means.append(statistics.fmean(v))
                seeds += [(values[i], y) for y in v]
        # A one-hyperparameter sweep is a curve; a search over several is a scatter (its other
        # hyperparameters differ from point to point).
        ax.plot(xs, means, "o-" if len(sw.params) == 1 else "o", color="C0", lw=1.6, ms=4)
        if seeds:
            ax.scatter(*zip(*seeds), s=18, marker="x", color="C0", alpha=0.6, zorder=3)
        if sw.best is not None:
            ax.scatter([sw.values(sw.best)[param]], [statistics.fmean(sec.finals(sw.best))], s=160,
                       marker="*", color="C3", zorder=4)
        tried = sorted({v[i] for v, _ in sw.points})
        if tried[0] > 0 and tried[-1] / tried[0] > 10:
            ax.set_xscale("log")
            ax.xaxis.set_minor_locator(NullLocator())
        if len(tried) <= 8:  # ticks at the values tried, rounded as in the labels
            ax.xaxis.set_major_locator(FixedLocator(tried))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_value(v, 2)))
        values = np.array([y for _, y in seeds])
        plots.set_y(ax, values, log=False if "acc" in sec.primary else None, zoom=True)
        ax.set(xlabel=param, ylabel=f"final {sec.primary}")
        if param in sw.edge:  # in the title, where it cannot cover a point
            ax.set_title(f"{sw.name}: {param}\nbest at grid edge: widen the grid", color="C3",
                         fontsize=10, fontweight="bold")
        else:
            ax.set_title(f"{sw.name}: {param}", fontsize=10)
        plots.finish(ax)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return fig


def _sweep_tables(sec: Section) -> str:
    parts = ['<p class="meta">Line: mean over seeds; ×: each seed; ★: best value. A best value at '
             "the smallest or largest value tried is flagged: the optimum may lie outside the grid."
             "</p>"]
    for sw in sec.sweeps:
        flag = f" — <b>best at grid edge</b> ({html.escape(', '.join(sw.edge))})" if sw.edge else ""
        what = (f"{sw.params[0]} at {len(sw.points)} values" if len(sw.params) == 1 else
                f"{len(sw.points)} configurations over {', '.join(sw.params)}")
        parts.append(f"<p>{html.escape(sw.name)}: {html.escape(what)}{flag}</p>")
        rows, marked = [], []
        for i, (values, key) in enumerate(sw.points):
            rows.append([fmt_value(v, 2) for v in values]
                        + [len(sec.groups[key]), fmt_interval(mean_ci(sec.finals(key)))])
            if key == sw.best:
                marked.append(i)
        parts.append(table([*sw.params, "n seeds", f"final {sec.primary}"], rows, marked))
    return "\n".join(parts)
