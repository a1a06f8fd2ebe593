"""``make demo``: AdamW, Muon and the two best Muon variants, each at its tuned learning rate, on the
char-level LM and the digits MLP (3 seeds), then the HTML report.

The story it tells: at a learning rate tuned for each optimizer (the same grid budget for all), how
many steps each needs to reach the task's declared target, and where it ends (final loss and the
task's primary metric), as means with 95% t intervals over 3 seeds and a paired test against AdamW.
Whatever the outcome, it is printed as measured.

Learning rates: read from ``optimlab/lab/data/tuned_lr.json``, which ships with the command that
produced it (``python -m optimlab.demo --retune``): per task and optimizer, a 5-point log grid on the
tuning seed 1000 at the demo's budget (:func:`optimlab.lab.tune.tune`), best final primary metric.
A chosen value at the edge of its grid is printed as such. The variants are the two with the best
mean test accuracy at their defaults in the Muon-family comparison on digits_mlp (BENCHMARKS.md).

Runs go to the SQLite store ``optimlab-runs/demo.db`` (identical runs are reused; finished runs keep
no checkpoint). Budgets (``SETTINGS``): char_lm 300 steps, evaluated every 50 (7 evaluations, about 12%
of its training time, so steps-to-target has a 50-step resolution); digits_mlp 600 steps at the
default evaluation period. ``--workers 2`` (default) trains two runs at once.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from optimlab.lab.compare import compare
from optimlab.lab.report import write_report
from optimlab.lab.tasks import get_task

#: task -> budget and evaluation period of the demo (and of its tuning)
SETTINGS: dict[str, dict[str, Any]] = {"char_lm": {"steps": 300, "eval_every": 50},
                                       "digits_mlp": {"steps": 600, "eval_every": None}}

#: The Muon variants in the demo: the two with the best mean test accuracy at their defaults in the
#: family comparison on digits_mlp (BENCHMARKS.md, "The Muon family at defaults").
VARIANTS = ("trust_region", "kaon")
OPTIMIZERS = ("adamw", "muon") + VARIANTS

#: the lr grid of each optimizer for --retune (AdamW: one lr for all groups; Muon family: hidden matrices)
GRIDS = {"adamw": "log:3e-4:3e-2:5", "muon": "log:2e-3:0.2:5", "trust_region": "log:2e-3:0.2:5",
         "kaon": "log:2e-3:0.2:5"}
TABLE = "tuned_lr.json"


def tuned_table(path: str | Path | None = None) -> dict[str, Any]:
    """The shipped tuned-lr table (or the one at ``path``)."""
    if path is not None:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    return json.loads((resources.files("optimlab.lab") / "data" / TABLE).read_text(encoding="utf-8"))


def optimizers_for(task: str, table: dict[str, Any]) -> list[tuple[str, dict]]:
    """Each demo optimizer with its tuned lr (``compare`` puts AdamW's on top of the task's AdamW settings)."""
    return [(name, {"lr": table["tasks"][task][name]["lr"]}) for name in OPTIMIZERS]


def retune(tasks: list[str], db: str, out: Path, threads: int, workers: int) -> None:
    """Tune every demo optimizer's lr on every task (seed 1000, the demo's budget); write the table.
    The trials of a task are first trained ``workers`` at a time; ``tune`` then reads them back."""
    from optimlab.lab.parallel import run_many
    from optimlab.lab.tune import TUNE_SEED, parse_grid, tune

    table: dict[str, Any] = {"command": "python -m optimlab.demo --retune " + " ".join(map(shlex.quote, sys.argv[2:])),
                             "protocol": "per task and optimizer: lr grid on seed 1000 at the demo's budget "
                                         "(optimlab.demo.SETTINGS), best final primary metric; other "
                                         "hyperparameters at defaults (AdamW: the task's adamw settings)",
                             "tasks": {}}
    for task in tasks:
        spec = get_task(task).spec
        rows = {}
        fixed = {n: ({k: v for k, v in spec.adamw.items() if k != "lr"} if n == "adamw" else {}) for n in OPTIMIZERS}
        run_many([dict(task=task, optimizer=n, hparams={**fixed[n], "lr": lr}, seed=TUNE_SEED, store=db,
                       threads=threads, **SETTINGS[task])
                  for n in OPTIMIZERS for lr in parse_grid("lr", GRIDS[n]).values], workers)
        for name in OPTIMIZERS:
            t = tune(task, name, "lr", parse_grid("lr", GRIDS[name]), hparams=fixed[name], store=db, threads=threads,
                     progress=False, **SETTINGS[task])
            rows[name] = {"lr": t.best, "grid": t.grid, "scores": t.scores, "metric": t.metric,
                          "at_edge": t.at_edge, "steps": t.steps, "seed": t.seed}
            print(f"{task} {name}: lr {t.best:g} ({t.metric} {rows[name]['scores'][t.grid.index(t.best)]:.4g})"
                  + (f"  AT THE {t.at_edge.upper()} EDGE" if t.at_edge else ""), flush=True)
        table["tasks"][task] = rows
    out.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(SETTINGS))
    ap.add_argument("--steps", type=int, default=None, help="override every task's budget (for a quick look)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--db", default="optimlab-runs/demo.db")
    ap.add_argument("--out", default="optimlab-report")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="runs trained at once (processes)")
    ap.add_argument("--table", default=None, help="tuned-lr table (default: the shipped one)")
    ap.add_argument("--retune", action="store_true", help="redo the lr tuning and write the table "
                    "(to --table, default src/optimlab/lab/data/tuned_lr.json)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in SETTINGS]
    if unknown:
        raise SystemExit(f"demo: unknown task(s) {unknown}; the demo has {', '.join(SETTINGS)}")
    if args.retune:
        out = Path(args.table) if args.table else Path(str(resources.files("optimlab.lab") / "data" / TABLE))
        retune(tasks, args.db, out, args.threads, args.workers)
        return
    table = tuned_table(args.table)
    print(f"learning rates: tuned per optimizer on seed 1000 ({table['command']})")
    for task in tasks:
        settings = dict(SETTINGS[task])
        if args.steps is not None:
            settings = {"steps": args.steps, "eval_every": None}
        edges = [f"{n} lr {r['lr']:g} at the {r['at_edge']} edge of its grid"
                 for n, r in table["tasks"][task].items() if r.get("at_edge")]
        print(f"\n== {task}: {', '.join(OPTIMIZERS)} at tuned lr × {args.seeds} seeds, {settings['steps'] or 'default'}"
              f" steps ==", flush=True)
        result = compare(task, optimizers_for(task, table), seeds=args.seeds, store=args.db, threads=args.threads,
                         workers=args.workers if args.seeds * len(OPTIMIZERS) > 1 else 1, progress=False,
                         baseline="adamw", **settings)
        print(result, flush=True)
        for line in edges:
            print(f"  ! {line} (tuning): the optimum may lie outside it", flush=True)
    from optimlab.lab.store import RunStore, compact

    with RunStore(args.db) as store:
        compact(store)  # finished runs' checkpoints were dropped: give their space back
    paths = write_report(args.db, args.out, task=tasks[0] if len(tasks) == 1 else None)
    print(f"\nreport: {Path(paths.html).resolve()}  ({len(paths.figures)} PNG figures beside it; "
          f"runs in {args.db}; {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
