"""The report's terminal table: one row per configuration (a sweep: its best value), at most
``WIDTH`` columns wide -- long labels are shortened in the middle, never wrapped."""

from __future__ import annotations

from .report_data import Section, final_ci, targets_note, to_target
from .stats import fmt_interval

WIDTH = 120


def _fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    keep = width - 1
    return text[: keep - keep // 3] + "…" + text[len(text) - keep // 3:]


def section_text(sec: Section, width: int = WIDTH) -> str:
    """Label, seeds, final loss, final primary metric, ms/step and steps to the first target
    ("k/n" seeds reached), each as mean ± half-width of the 95% t interval (or ``n = 1``)."""
    cols = ["loss"] + ([sec.primary] if sec.primary != "loss" else []) + ["ms_per_step"]
    head = ["label", "n"] + ["ms/step" if c == "ms_per_step" else c for c in cols]
    t = sec.targets[0] if sec.targets else None
    if t is not None:
        head += [f"steps→{t.metric}", "reached"]
    rows = []
    for row in sec.rows:
        cells = [row.label, str(len(row.runs))] + [fmt_interval(final_ci(sec, row, c)) for c in cols]
        if t is not None:
            steps, _, k = to_target(row, t)
            cells += [fmt_interval(steps), f"{k}/{len(row.runs)}"]
        rows.append(cells)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    over = sum(widths) + 2 * (len(widths) - 1) - width
    if over > 0:  # the label column gives way (down to 16 characters)
        widths[0] = max(16, widths[0] - over)
        rows = [[_fit(r[0], widths[0])] + r[1:] for r in rows]
        head[0] = _fit(head[0], widths[0])
        widths = [max(len(x) for x in col) for col in zip(head, *rows)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    arrow = "max" if sec.maximize else "min"
    lines = [f"task {sec.title}: primary metric {sec.primary} ({arrow}); {targets_note(sec)}",
             "mean ± half-width of the 95% t interval over seeds (n = 1: a single seed)",
             fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    return "\n".join(_fit(line, width) if i < 2 else line for i, line in enumerate(lines))
