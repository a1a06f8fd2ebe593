"""``optimlab run --nproc N``: one lab run trained with DDP on N CPU processes (gloo), stored once.

The parent process spawns N workers (``torch.multiprocessing``, spawn; the process group meets through a
``FileStore`` in a temporary directory, so no TCP port is involved). Every worker builds the same task
instance (same seed: same model and data), wraps the model in ``DistributedDataParallel`` and creates the
optimizer with ``process_group=`` (optimlab's owner split, docs/distributed.md), then trains through
:func:`optimlab.lab.runner.run` — the lab's one training loop — with two differences:

* each rank's batch is its contiguous ``1/N`` of the step's global batch (rows ``[r·B/N, (r+1)·B/N)`` of
  every tensor of the batch; ``B`` must be divisible by ``N``), and the loss goes through the DDP wrapper, so
  the gradients are averaged over the ranks: the global batch's mean gradient;
* only rank 0 writes to the run store (the others record into an in-memory store, dropped at the end).
  The run is stored with ``nproc=N`` among its hyperparameters, so it never matches a single-process run.

What is logged as ``loss`` is rank 0's share of the batch (as the example ``examples/distributed_char_lm.py``
prints); the evaluation metrics are the whole model's. Not supported with ``--nproc`` (refused before anything
is spawned): resuming an interrupted run from its checkpoint (a finished run of the same configuration is
returned from the store, as ``run`` does; anything else trains anew), and ``sharpness_every``.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
import traceback
from datetime import timedelta
from typing import Any, Mapping

import torch

__all__ = ["run_distributed", "RankInstance", "report", "records_error", "spawn_and_collect"]


class RankInstance:
    """A task instance seen by one rank: its part of every batch, and the loss through the DDP module.

    Everything else (``model``, ``evaluate``, ``role_hints``...) is the wrapped instance's."""

    def __init__(self, inner: Any, ddp: Any, rank: int, world: int):
        self._inner, self._ddp, self._rank, self._world = inner, ddp, rank, world

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def batch(self, step: int) -> tuple:
        full = self._inner.batch(step)
        tensors = [t for t in full if isinstance(t, torch.Tensor)]
        if not tensors or any(t.ndim == 0 or t.shape[0] != tensors[0].shape[0] for t in full
                              if isinstance(t, torch.Tensor)):
            raise ValueError(f"--nproc: task {self._inner.spec.name!r} has no batch dimension to split over the "
                             f"processes (its batch: {[tuple(t.shape) for t in tensors]})")
        n = tensors[0].shape[0]
        if n % self._world:
            raise ValueError(f"--nproc {self._world}: the batch of {n} rows of task {self._inner.spec.name!r} "
                             f"does not split evenly over {self._world} processes; choose a batch_size divisible "
                             f"by it (--option batch_size=...)")
        per = n // self._world
        rows = slice(self._rank * per, (self._rank + 1) * per)
        return tuple(t[rows] if isinstance(t, torch.Tensor) else t for t in full)

    def loss(self, model: Any, batch: tuple) -> Any:
        # the runner passes the bare model; the gradient must go through DDP to be averaged over the ranks
        return self._inner.loss(self._ddp if model is self._inner.model else model, batch)


class _Wrap:
    """The hook :func:`optimlab.lab.runner.run` calls on the built instance (``distributed=``)."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world

    def wrap(self, instance: Any) -> tuple[Any, dict[str, Any]]:
        import torch.distributed as dist

        ddp = torch.nn.parallel.DistributedDataParallel(instance.model)
        return RankInstance(instance, ddp, self.rank, self.world), {"process_group": dist.group.WORLD}


def records_error(out: Any) -> bool:
    """Whether a worker's result records an error anywhere: its own ``"error"``, or one of its cases'
    (a dict of per-case dicts, as the distributed tests return)."""
    if isinstance(out, dict):
        if out.get("error") is not None:
            return True
        return any(records_error(v) for v in out.values())
    return False


def report(tmp: str, rank: int, out: Any) -> None:
    """A worker's last act: ``out`` pickled to ``tmp/result{rank}.pkl`` — written whole to a ``.part`` file,
    flushed to disk, then renamed, so the parent never reads half a file — and the process group left.

    When ``out`` records an error (:func:`records_error`) the process exits 0 at once instead of destroying
    the group: a group after a failed collective may abort in its destructor, and a non-zero exit makes torch
    SIGTERM the other ranks before they report. The parent reads the error from the file."""
    import torch.distributed as dist

    part, final = os.path.join(tmp, f"result{rank}.part"), os.path.join(tmp, f"result{rank}.pkl")
    with open(part, "wb") as f:
        pickle.dump(out, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, final)
    if records_error(out):
        os._exit(0)
    dist.destroy_process_group()


def spawn_and_collect(fn: Any, world: int, tmp: str, args: tuple, timeout: float, what: str) -> list:
    """Run ``fn(rank, *args)`` on ``world`` spawned processes (each ends with :func:`report`) and return their
    results in rank order. Results and a ``FileStore`` named ``store`` left in ``tmp`` by an earlier launch are
    removed first. After ``timeout`` seconds the processes are killed and a ``TimeoutError`` names ``what``; a
    process that dies without reporting is a ``RuntimeError`` (one that dies after reporting is read)."""
    import torch.multiprocessing as mp

    for name in os.listdir(tmp):
        if name.startswith("result") or name == "store":
            os.remove(os.path.join(tmp, name))
    ctx = mp.start_processes(fn, args=args, nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    try:
        while not ctx.join(timeout=max(0.1, min(1.0, deadline - time.monotonic()))):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not finished after {timeout:g} s")
    except mp.ProcessExitedException as err:  # a process died after reporting (or not): read what came back
        if not all(os.path.exists(os.path.join(tmp, f"result{r}.pkl")) for r in range(world)):
            raise RuntimeError(f"{what}: a process died without reporting: {err}") from err
    finally:
        for p in ctx.processes:  # only the processes this call started
            if p.is_alive():
                p.kill()
                p.join(5)
    results = []
    for r in range(world):
        with open(os.path.join(tmp, f"result{r}.pkl"), "rb") as f:
            results.append(pickle.load(f))
    return results


def _worker(rank: int, world: int, tmp: str, kwargs: dict) -> None:
    import torch.distributed as dist

    from .runner import run

    torch.set_num_threads(kwargs.get("threads", 1))
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world,
                            timeout=timedelta(seconds=kwargs.pop("pg_timeout")))
    out: dict[str, Any]
    try:
        kw = dict(kwargs)
        if rank != 0:
            kw.update(store=None, progress=False)
        res = run(**kw, resume=False, distributed=_Wrap(rank, world))
        out = {"run_id": res.run_id, "status": res.status}
    except BaseException as err:  # reported to the parent, which raises it
        out = {"error": f"{type(err).__name__}: {err}", "tb": traceback.format_exc()}
    report(tmp, rank, out)


def run_distributed(task: str, optimizer: str, *, nproc: int, hparams: Mapping[str, Any] | None = None,
                    seed: int = 0, steps: int | None = None, task_options: Mapping[str, Any] | None = None,
                    store: str = "optimlab-runs/runs.db", resume: bool = True, timeout: float = 3600.0,
                    pg_timeout: float = 300.0, **runner_kwargs: Any) -> Any:
    """:func:`optimlab.lab.runner.run` with DDP on ``nproc`` CPU processes (see the module doc); returns the
    stored :class:`~optimlab.lab.runner.RunResult` (its ``model`` is None: the model lived in the workers).
    ``timeout``: seconds the whole run may take before the workers are killed (an error)."""
    from .runner import _result_from_store
    from .store import RunStore

    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ValueError(f"run: nproc must be an int >= 1, got {nproc!r}")
    for key in ("sharpness_every", "restart"):
        if runner_kwargs.get(key):
            raise ValueError(f"run --nproc: {key} is not supported with several processes")
    runner_kwargs.pop("sharpness_every", None)
    runner_kwargs.pop("restart", None)
    hp = {**dict(hparams or {}), "nproc": nproc}
    if optimizer == "adamw" and not hparams:  # as run(): the task's AdamW reference settings
        from .tasks import get_task

        hp = {**get_task(task, **dict(task_options or {})).spec.adamw, "nproc": nproc}
    if store is None or not isinstance(store, (str, os.PathLike)):
        raise ValueError("run --nproc: store must be a database path (the workers open it by name)")
    store = os.fspath(store)
    os.makedirs(os.path.dirname(os.path.abspath(store)), exist_ok=True)
    if resume:
        from .tasks import get_task

        task_obj = get_task(task, **dict(task_options or {}))
        n_steps = task_obj.spec.default_steps if steps is None else steps
        db = RunStore(store)
        try:
            previous = db.find_matching(task, task_obj.options, optimizer, hp, seed, n_steps)
            if previous is not None and previous["status"] in ("finished", "failed"):
                return _result_from_store(db, previous, cached=True)
        finally:
            db.close()
    kwargs = dict(task=task, optimizer=optimizer, hparams=hp, seed=seed, steps=steps, task_options=task_options,
                  store=store, pg_timeout=pg_timeout, **runner_kwargs)
    with tempfile.TemporaryDirectory(prefix="optimlab-nproc-") as tmp:
        results = spawn_and_collect(_worker, nproc, tmp, (nproc, tmp, kwargs), timeout, f"run --nproc {nproc}")
    failed = [(r, x) for r, x in enumerate(results) if "error" in x]
    if failed:
        r, x = failed[0]
        raise RuntimeError(f"run --nproc {nproc}: rank {r} failed: {x['error']}\n{x['tb']}")
    db = RunStore(store)
    try:
        return _result_from_store(db, db.get_run(results[0]["run_id"]), cached=False)
    finally:
        db.close()
