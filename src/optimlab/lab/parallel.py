"""run_many(): train several runs at once in separate processes, each writing to one run-store file.

Each job is the keyword arguments of :func:`optimlab.lab.runner.run` (with ``store`` a file path).
Workers are spawned (not forked: a forked torch process may hang in its thread pools) and every job
runs with ``progress=False``. The caller reads the results back with ``run(..., resume=True)``, which
finds them finished. SQLite's WAL mode and the store's 30 s lock timeout let the workers write
concurrently; two jobs must not share one configuration (task, options, optimizer, hparams, seed,
steps).
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Mapping, Sequence

__all__ = ["run_many"]


def _run_job(kwargs: Mapping[str, Any]) -> int:
    from .runner import run

    return run(**{**kwargs, "progress": False}).run_id


def _stored(job: Mapping[str, Any]) -> bool:
    """Whether the job's run is already finished (or failed) in its store: no process is needed."""
    from .store import RunStore
    from .tasks import get_task

    if job.get("resume") is False:
        return False
    task = get_task(job["task"], **dict(job.get("task_options") or {}))
    hp = job.get("hparams")
    if hp is None or (not hp and job["optimizer"] == "adamw"):
        return False  # run() fills these in; let it decide
    with RunStore(job["store"]) as store:
        row = store.find_matching(job["task"], task.options, job["optimizer"], hp, job.get("seed", 0),
                                  job.get("steps") or task.spec.default_steps)
    return row is not None and row["status"] in ("finished", "failed")


def run_many(jobs: Sequence[Mapping[str, Any]], workers: int) -> list[int]:
    """Run every job (``run`` keyword arguments) with ``workers`` processes; returns the run ids in
    job order. The first exception raised by a job is re-raised after the pool shuts down."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"run_many: workers must be an int >= 1, got {workers!r}")
    for job in jobs:
        if not isinstance(job.get("store"), str):
            raise ValueError(f"run_many: every job needs the store as a file path, got {job.get('store')!r}")
    keys = [repr(sorted((k, repr(v)) for k, v in job.items() if k in
                        ("task", "task_options", "optimizer", "hparams", "seed", "steps", "store")))
            for job in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("run_many: two jobs have the same configuration")
    if workers == 1 or len(jobs) <= 1 or all(_stored(job) for job in jobs):
        return [_run_job(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_run_job, dict(job)) for job in jobs]
        return [f.result() for f in futures]
