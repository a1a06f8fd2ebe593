"""Command line: ``optimlab list | describe NAME | tasks [NAME] | run | compare | sweep | report | claims``."""

from __future__ import annotations

import argparse
import ast
import sys
from typing import Any

from .core.registry import available, describe, get_recipe


def _list(args: argparse.Namespace) -> int:
    names = available()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {get_recipe(name).summary}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    print(describe(args.name))
    return 0


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as polar_express or bfloat16


def _pairs(items: list[str], what: str) -> dict[str, Any]:
    out = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} must be KEY=VALUE, got {item!r}")
        out[key] = _value(val)
    return out


def _tasks(args: argparse.Namespace) -> int:
    from .lab.tasks import TASKS, get_task

    if args.name is None:
        for name in sorted(TASKS):
            spec = TASKS[name]().spec
            print(f"{name:<20} {spec.default_steps:>6} steps  {spec.description}")
        return 0
    print(_task_text(get_task(args.name, **_pairs(args.option, "--option"))))
    return 0


def _task_text(task: Any) -> str:
    """A task's options (type, default, value set), budget, metrics, targets and references."""
    import dataclasses

    from .lab.report_data import fmt_hparam

    spec = task.spec
    fields = dataclasses.fields(task)
    def default(f: Any) -> str:
        if f.default is not dataclasses.MISSING:
            return fmt_hparam(f.default)
        if f.default_factory is not dataclasses.MISSING:
            return fmt_hparam(f.default_factory())
        return "required"
    rows = [(f.name, str(f.type), default(f), fmt_hparam(getattr(task, f.name))) for f in fields]
    head = ("option", "type", "default", "value")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    batch = "full batch" if spec.default_batch_size is None else f"batch {spec.default_batch_size}"
    arrow = "max" if spec.maximize else "min"
    # The direction rule of TaskSpec.targets: >= for the maximised primary metric and accuracies.
    up = {m: (m == spec.primary_metric and spec.maximize) or "acc" in m for m in spec.targets}
    targets = [f"{m} {'≥' if up[m] else '≤'} {fmt_hparam(float(v))}" for m, v in spec.targets.items()]
    lines = [f"{spec.name}: {spec.description}",
             f"budget: {spec.default_steps} steps, {batch}",
             f"metrics: {', '.join(spec.metrics)}; primary {spec.primary_metric} ({arrow})",
             "targets: " + (", ".join(targets) or "none set"),
             "adamw reference: " + (", ".join(f"{k}={fmt_hparam(v)}" for k, v in spec.adamw.items())
                                    or "optimizer defaults"),
             "", "  ".join(h.ljust(w) for h, w in zip(head, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if spec.references:
        lines += ["", "references:"] + [f"  {r}" for r in spec.references]
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from .lab.runner import run

    res = run(args.task, args.optimizer, hparams=_pairs(args.hp, "--hp"), seed=args.seed, steps=args.steps,
              task_options=_pairs(args.option, "--option"), store=args.db, threads=args.threads, progress=True,
              sharpness_every=args.sharpness_every)
    print(f"run {res.run_id}: {res.task} × {res.optimizer} seed {res.seed} — {res.status}"
          + (" (from the store)" if res.cached else ""))
    for k, v in res.final.items():
        print(f"  {k:<24} {v:.6g}")
    if res.error:
        print(f"  error: {res.error}")
    print(f"stored in {args.db}")
    return 0 if res.ok else 1


def _compare(args: argparse.Namespace) -> int:
    from .lab.compare import compare

    table = compare(args.task, [o for o in args.optimizers.split(",") if o], seeds=args.seeds, steps=args.steps,
                    store=args.db, threads=args.threads, task_options=_pairs(args.option, "--option"))
    print(table)
    print(f"stored in {args.db}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .lab.sweep import parse_space, sweep

    res = sweep(args.task, args.optimizer, parse_space(args.space), trials=args.trials, seeds=args.seeds,
                steps=args.steps, store=args.db, study_storage=args.storage, study_name=args.study,
                task_options=_pairs(args.option, "--option"), threads=args.threads, progress=True)
    print(res)
    print(f"runs stored in {args.db}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .lab.report import write_report

    paths = write_report(args.db, args.out, task=args.task, optimizers=args.optimizers.split(",")
                         if args.optimizers else None, x=args.x)
    print(paths.table)
    print(f"\nreport: {paths.html.resolve()}  ({len(paths.figures)} figures as PNG beside it)")
    return 0


def _claims(args: argparse.Namespace) -> int:
    from .lab.claims.__main__ import main as claims_main

    return claims_main(args.rest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="optimlab", description="Modern optimizers for PyTorch, and the lab.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered optimizers").set_defaults(func=_list)
    d = sub.add_parser("describe", help="update rule, defaults with units, paper, state bytes")
    d.add_argument("name")
    d.set_defaults(func=_describe)
    tk = sub.add_parser("tasks", help="list the lab's tasks, or show one: options, defaults, targets")
    tk.add_argument("name", nargs="?", default=None)
    tk.add_argument("--option", nargs="*", metavar="KEY=VALUE", help="task options to show the spec for")
    tk.set_defaults(func=_tasks)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--task", required=True)
    common.add_argument("--steps", type=int, default=None, help="budget (default: the task's)")
    common.add_argument("--option", nargs="*", metavar="KEY=VALUE", help="task options")
    common.add_argument("--db", default="optimlab-runs/runs.db", help="SQLite run store")
    common.add_argument("--threads", type=int, default=1)
    r = sub.add_parser("run", parents=[common], help="one run: task × optimizer × seed, stored")
    r.add_argument("--optimizer", required=True)
    r.add_argument("--hp", nargs="*", metavar="KEY=VALUE", help="optimizer hyperparameters")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--sharpness-every", type=int, default=None, help="log λ_max(H) every N steps")
    r.set_defaults(func=_run)
    c = sub.add_parser("compare", parents=[common], help="optimizers × seeds on one task, as a table")
    c.add_argument("--optimizers", required=True, help="comma-separated names")
    c.add_argument("--seeds", type=int, default=3)
    c.set_defaults(func=_compare)
    sw = sub.add_parser("sweep", parents=[common], help="an Optuna study over one optimizer's hyperparameters")
    sw.add_argument("--optimizer", required=True)
    sw.add_argument("--space", nargs="+", required=True, metavar="NAME=KIND:...",
                    help="e.g. lr=log:1e-4:1e-1 momentum=float:0.8:0.99 nesterov=choice:True,False")
    sw.add_argument("--trials", type=int, default=20)
    sw.add_argument("--seeds", type=int, default=1)
    sw.add_argument("--storage", default=None, help="Optuna storage URL (default: sweeps.db beside --db; "
                                                     "a PostgreSQL URL shares one study between machines)")
    sw.add_argument("--study", default=None, help="study name (default TASK-OPTIMIZER)")
    sw.set_defaults(func=_sweep)
    rp = sub.add_parser("report", help="HTML page + PNG figures + a table from the run store")
    rp.add_argument("--db", default="optimlab-runs/runs.db")
    rp.add_argument("--out", default="optimlab-report")
    rp.add_argument("--task", default=None)
    rp.add_argument("--optimizers", default=None, help="comma-separated names or labels")
    rp.add_argument("--x", default="step", choices=["step", "time", "evals"],
                    help="x axis of the curves: steps, summed step wall time, or evaluations")
    rp.set_defaults(func=_report)
    cl = sub.add_parser("claims", help="the seed papers' claims: list | run ID [ID ...] | run --all [--fast]",
                        add_help=False)
    cl.add_argument("rest", nargs=argparse.REMAINDER)
    cl.set_defaults(func=_claims)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError) as e:
        print(f"optimlab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
