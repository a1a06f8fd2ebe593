"""Command line: ``optimlab list | describe NAME | tasks [NAME] | run | compare | sweep | report | claims``."""

from __future__ import annotations

import argparse
import ast
import os
import sys
from typing import Any

# Nothing here imports torch at module level: `optimlab --help` and `optimlab list` stay fast
# (torch and the recipes load only for the commands that use them).


def _list(args: argparse.Namespace) -> int:
    from . import _catalog

    rows = _catalog.entries() or _catalog.from_registry()
    width = max(len(name) for name, _ in rows)
    for name, summary in rows:
        print(f"{name:<{width}}  {summary}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    from .core.registry import describe

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


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets: ``"muon:lr=0.03,adamw:betas=(0.9,0.95)"`` -> two items."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [x for x in out + [cur] if x.strip()]


def parse_optimizer_hparams(items: list[str] | None, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per-optimizer hyperparameters from ``[OPTIMIZER:]KEY=VALUE`` items (comma- or space-separated).

    ``["muon:lr=0.03,adamw:lr=1e-3", "weight_decay=0.1"]`` with names ``["muon", "adamw"]`` ->
    ``{"muon": {"lr": 0.03, "weight_decay": 0.1}, "adamw": {"lr": 0.001, "weight_decay": 0.1}}``: an item
    without a prefix applies to every optimizer; a prefixed one wins over it. A prefix that is not
    among ``names``, or an item without ``=``: ValueError naming it.
    """
    shared: dict[str, Any] = {}
    own: dict[str, dict[str, Any]] = {n: {} for n in names}
    for item in [x for raw in items or [] for x in _split_top(raw)]:
        key, sep, val = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--hp must be [OPTIMIZER:]KEY=VALUE, got {item!r}")
        prefix, colon, name = key.rpartition(":")
        if colon:
            if prefix not in own:
                raise ValueError(f"--hp {item!r}: {prefix!r} is not one of the optimizers ({', '.join(names)})")
            own[prefix][name] = _value(val)
        else:
            shared[key] = _value(val)
    return {n: {**shared, **own[n]} for n in names}


def parse_tune(items: list[str] | None, names: list[str]) -> dict[str, Any]:
    """``--tune`` items ``[OPTIMIZER:]PARAM=GRID`` as :func:`optimlab.lab.compare.compare`'s ``tune``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, grid = item.partition("=")
        prefix, colon, param = key.strip().rpartition(":")
        if not sep or not param or not grid:
            raise ValueError(f"--tune must be [OPTIMIZER:]PARAM=GRID (e.g. lr=log:1e-4:1e-1:7), got {item!r}")
        if colon:
            if prefix not in names:
                raise ValueError(f"--tune {item!r}: {prefix!r} is not one of the optimizers ({', '.join(names)})")
            out.setdefault(prefix, {})[param] = grid
        else:
            out[param] = grid
    return out


def _runner_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return dict(eval_every=args.eval_every, checkpoint_every=args.checkpoint_every, threads=args.threads,
                nonfinite=args.nonfinite, sharpness_every=args.sharpness_every,
                keep_checkpoint=args.keep_checkpoint, resume=not args.no_resume, progress=not args.no_progress,
                restart=args.restart)


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

    from .lab.stats import fmt_value

    hp = parse_optimizer_hparams(args.hp, [args.optimizer])[args.optimizer]
    if args.nproc is not None:  # DDP on N CPU processes (gloo); rank 0 writes the store
        from .lab.distributed_run import run_distributed

        res = run_distributed(args.task, args.optimizer, nproc=args.nproc, hparams=hp or None, seed=args.seed,
                              steps=args.steps, task_options=_pairs(args.option, "--option"), store=args.db,
                              **_runner_kwargs(args))
    else:
        res = run(args.task, args.optimizer, hparams=hp or None, seed=args.seed, steps=args.steps,
                  task_options=_pairs(args.option, "--option"), store=args.db, **_runner_kwargs(args))
    print(f"run {res.run_id}: {res.task} × {res.optimizer} seed {res.seed} — {res.status}"
          + (" (from the store)" if res.cached else ""))
    for k, v in res.final.items():
        print(f"  {k:<24} {fmt_value(v)}")
    if res.error:
        print(f"  error: {res.error}")
    print(f"stored in {args.db}")
    return 0 if res.ok else 1


def _compare(args: argparse.Namespace) -> int:
    from .lab.compare import compare

    names = [o for o in args.optimizers.split(",") if o]
    hps = parse_optimizer_hparams(args.hp, names)
    table = compare(args.task, [(n, hps[n]) if hps[n] else n for n in names], seeds=args.seeds, steps=args.steps,
                    store=args.db, task_options=_pairs(args.option, "--option"), tune=parse_tune(args.tune, names),
                    tune_steps=args.tune_steps, baseline=args.baseline, target=args.target, workers=args.workers,
                    **_runner_kwargs(args))
    print(table)
    print(f"stored in {args.db}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .lab.sweep import parse_space, sweep

    res = sweep(args.task, args.optimizer, parse_space(args.space), trials=args.trials, seeds=args.seeds,
                steps=args.steps, store=args.db, study_storage=args.storage, study_name=args.study,
                task_options=_pairs(args.option, "--option"), threads=args.threads, progress=True,
                restart=args.restart)
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


_CLOSED_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer stopped by a closed pipe


def _flush_stdout() -> bool:
    """Flush stdout; False if the reader has gone (``optimlab describe NAME | head``).

    Then stdout is pointed at /dev/null, so that the interpreter's own flush at exit cannot fail
    again with a traceback: the command stops quietly, as ``yes | head`` does."""
    try:
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return False


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
    runner = argparse.ArgumentParser(add_help=False)  # every option of optimlab.lab.runner.run
    runner.add_argument("--eval-every", type=int, default=None,
                        help="evaluate every N steps (default: at most 10%% of training time)")
    runner.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint every N steps "
                        "(default: --eval-every)")
    runner.add_argument("--keep-checkpoint", action="store_true", help="keep finished runs' checkpoints")
    runner.add_argument("--sharpness-every", type=int, default=None, help="log λ_max(H) every N steps")
    runner.add_argument("--nonfinite", default="error", help="non-finite gradients: error (default) or skip")
    runner.add_argument("--no-resume", action="store_true", help="train again even if the store has the run")
    runner.add_argument("--no-progress", action="store_true", help="no progress bar")
    runner.add_argument("--restart", action="store_true",
                   help="train an interrupted run of this configuration again from step 0 instead of "
                        "resuming its checkpoint (e.g. when the checkpoint is refused as invalid)")
    hp_help = "hyperparameters [OPTIMIZER:]KEY=VALUE, comma or space separated (muon:lr=0.03,adamw:lr=1e-3)"
    r = sub.add_parser("run", parents=[common, runner], help="one run: task × optimizer × seed, stored")
    r.add_argument("--optimizer", required=True)
    r.add_argument("--hp", nargs="*", metavar="KEY=VALUE", help=hp_help)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--nproc", type=int, default=None, help="train with DDP on N CPU processes (gloo; rank 0 "
                   "writes the store; the batch is split over them; see docs/distributed.md)")
    r.set_defaults(func=_run)
    c = sub.add_parser("compare", parents=[common, runner], help="optimizers × seeds on one task, as a table")
    c.add_argument("--optimizers", required=True, help="comma-separated names")
    c.add_argument("--hp", nargs="*", metavar="[OPT:]KEY=VALUE", help=hp_help)
    c.add_argument("--seeds", type=int, default=3)
    c.add_argument("--tune", nargs="*", metavar="[OPT:]PARAM=GRID", help="tune per optimizer on seed 1000 "
                   "first, e.g. lr=log:1e-4:1e-1:7 or muon:lr=0.01,0.02,0.04")
    c.add_argument("--tune-steps", type=int, default=None, help="budget of each tuning trial (default --steps)")
    c.add_argument("--baseline", default=None, help="row the paired tests compare with (default: the first)")
    c.add_argument("--target", type=float, default=None, help="override the task's primary-metric target")
    c.add_argument("--workers", type=int, default=1, help="runs at once, in separate processes")
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
    sw.add_argument("--restart", action="store_true",
                   help="train an interrupted run of this configuration again from step 0 instead of "
                        "resuming its checkpoint (e.g. when the checkpoint is refused as invalid)")
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help and usage errors: flush here, where a closed pipe is caught
        if e.code == 0 and not _flush_stdout():
            return _CLOSED_PIPE
        raise
    try:
        code = args.func(args)
        return code if _flush_stdout() else _CLOSED_PIPE
    except BrokenPipeError:
        _flush_stdout()
        return _CLOSED_PIPE
    except (ValueError, TypeError) as e:
        print(f"optimlab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
