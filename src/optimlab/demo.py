"""``make demo``: adamw, lion, muon and the strongest Muon variants on the digits MLP and the char-level LM, then a report.

Equivalent to ``optimlab compare`` on each task followed by ``optimlab report``. Every run goes to the
SQLite run store (``optimlab-runs/demo.db``; identical runs are reused, so a second ``make demo`` only
re-writes the report). Settings: AdamW at each task's documented AdamW settings; Lion at a third of
AdamW's lr (the Lion paper advises a 3–10× smaller lr); Muon at its defaults (lr 0.02 on hidden
matrices, AdamW 3e-4 on embeddings, head and vectors) and the Muon variants in ``VARIANTS`` at theirs.
Three seeds, the same steps and batches for all.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from optimlab.lab.compare import compare
from optimlab.lab.report import write_report
from optimlab.lab.tasks import get_task

TASKS = {"digits_mlp": None, "char_lm": 200}  # task -> steps (None: the task's default budget)


#: The Muon variants in the demo: the two with the best mean test accuracy at their defaults in the
#: family comparison on digits_mlp (BENCHMARKS.md, "The Muon family at defaults").
VARIANTS = ("trust_region", "kaon")


def optimizers_for(task: str) -> list[tuple[str, dict]]:
    adamw = dict(get_task(task).spec.adamw)
    return [("adamw", adamw), ("lion", {"lr": adamw["lr"] / 3}), ("muon", {})] + [(v, {}) for v in VARIANTS]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--steps", type=int, default=None, help="override every task's budget (for a quick look)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--db", default="optimlab-runs/demo.db")
    ap.add_argument("--out", default="optimlab-report")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    tasks = [t for t in args.tasks.split(",") if t]
    for task in tasks:
        steps = args.steps if args.steps is not None else TASKS.get(task)
        print(f"\n== {task}: {', '.join(n for n, _ in optimizers_for(task))} × {args.seeds} seeds ==", flush=True)
        table = compare(task, optimizers_for(task), seeds=args.seeds, steps=steps, store=args.db,
                        threads=args.threads)
        print(table, flush=True)
    paths = write_report(args.db, args.out, task=tasks[0] if len(tasks) == 1 else None)
    print(f"\nreport: {Path(paths.html).resolve()}  ({len(paths.figures)} PNG figures beside it; "
          f"runs in {args.db}; {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
