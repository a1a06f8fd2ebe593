"""run(): train one (task, optimizer, hyperparameters, seed, budget) and record it in a RunStore.

What a run records (``step`` = number of completed optimizer steps):

* ``loss`` at every step k = 1..steps: the training (mini)batch loss computed during step k, before
  its update (every step, unaveraged; summaries average over the last 10% of steps);
* ``step_ms``: wall time of step k in milliseconds, measured around the whole step (batch, forward,
  backward, ``opt.step()``, ``zero_grad``) less the logging below; ``opt_ms``: the ``opt.step()``
  call alone;
* ``lr``, ``grad_norm``, ``update_norm`` at step 1 and every ``steplog.log_every(steps)`` steps (every
  step up to 200 steps; about 200 points in all) (:mod:`optimlab.lab.steplog`);
* the task's eval metrics (``spec.metrics``) at the evaluation steps (``steplog.eval_steps``: 0 when
  the period is shorter than the run, every ``eval_every`` steps, and the end; by default at most
  10% of the training time, ``steplog.default_eval_every``), with ``eval_ms``, the time that
  evaluation took (never part of ``step_ms``);
* ``state_bytes`` (sum of the bytes of every tensor in ``optimizer.state``) and ``n_params`` at the
  end.

Metrics are written together with a checkpoint (every ``checkpoint_every`` steps, and at the end),
in one transaction, so the store always holds metrics exactly up to the latest checkpoint. A finished
run's checkpoint is then deleted (``keep_checkpoint=False``, the default): it only serves resuming.
On ``KeyboardInterrupt`` the run is marked ``interrupted`` (its last checkpoint kept) and the
interrupt re-raised; ``run(..., resume=True)`` with the same configuration continues it from that
checkpoint and ends with bit-identical parameters and metrics (everything random is seeded from
the run seed; the global torch / numpy / ``random`` states are saved in the checkpoint). A
non-finite training loss, or a non-finite gradient refused by the optimizer (``nonfinite="error"``),
ends the run as ``failed`` with the reason: ``run`` returns a result with ``status == "failed"``
rather than raising. Any other exception marks the run failed and propagates.
"""

from __future__ import annotations

import math
import random
import statistics
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

import optimlab
from optimlab.core.state_bytes import held_state_bytes

from . import batching, branch
from . import checkpoint as checkpoint_codec
from . import run_args, schedules
from . import steplog
from .store import RunStore, drop_checkpoint, environment
from .tasks.base import derive_seed, preserve_global_rng

__all__ = ["RunResult", "run", "summarize", "optimizer_state_bytes", "RUN_KEYS"]

#: hyperparameters of the run rather than of the optimizer: the lr schedule (``lab.schedules``), the run a
#: branch starts from (``lab.branch``), the adaptive batch size (``lab.batching``), the process count of
#: ``optimlab run --nproc`` (``lab.distributed_run``)
RUN_KEYS = ("schedule", "branch_from", "batch_control", "nproc")


@dataclass
class RunResult:
    """The outcome of :func:`run`.

    ``final``: summary numbers (see :func:`summarize`): ``loss`` (mean training loss over the last
    10% of steps), each eval metric at the end, ``ms_per_step`` (median step time), ``state_bytes``,
    ``n_params``, ``eval_ms`` (total evaluation time), ``eval_overhead`` (total ``eval_ms`` /
    total ``step_ms``). ``metrics``: every recorded series, name -> [(step, value)]. ``cached``: True when
    the run was found finished (or failed) in the store and not trained again; ``model`` is then
    None. ``resumed_from``: the checkpoint step a resumed run continued from, else None.
    """

    run_id: int
    task: str
    task_options: dict[str, Any]
    optimizer: str
    hparams: dict[str, Any]
    seed: int
    steps: int
    status: str
    final: dict[str, float]
    metrics: dict[str, list[tuple[int, float]]]
    error: str | None = None
    cached: bool = False
    resumed_from: int | None = None
    threads: int = 1
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "finished"


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor held in ``optimizer.state`` (moment buffers, bases, tensor step counters)."""
    return held_state_bytes(optimizer).total


def summarize(metrics: Mapping[str, list[tuple[int, float]]], steps: int) -> dict[str, float]:
    """Summary numbers of a run from its metric series: ``loss`` = mean of the last
    ``max(1, steps // 10)`` training losses; ``ms_per_step`` = median ``step_ms`` leaving out
    step 1 (it pays for lazy state allocation); every other series: its last value."""
    out: dict[str, float] = {}
    for name, series in metrics.items():
        if not series:
            continue
        if name == "loss":
            window = max(1, steps // 10)
            tail = [v for _, v in series[-window:]]
            out["loss"] = sum(tail) / len(tail)
        elif name == "step_ms":
            values = [v for s, v in series if s > 1] or [v for _, v in series]
            out["ms_per_step"] = statistics.median(values)
        elif name == "opt_ms":
            values = [v for s, v in series if s > 1] or [v for _, v in series]
            out["opt_ms_per_step"] = statistics.median(values)
        elif name == "eval_ms":
            out["eval_ms"] = sum(v for _, v in series)
        else:
            out[name] = series[-1][1]
    if "eval_ms" in out and metrics.get("step_ms"):
        out["eval_overhead"] = out["eval_ms"] / max(sum(v for _, v in metrics["step_ms"]), 1e-12)
    return out


def _checkpoint_blob(step: int, model: nn.Module, opt: Any) -> bytes:
    # tensors and plain data only: the blob loads with weights_only=True (see .checkpoint)
    return checkpoint_codec.encode(step, model, opt)


def _open_store(store: RunStore | str | None) -> tuple[RunStore, bool]:
    if store is None:
        return RunStore(":memory:"), True
    if isinstance(store, RunStore):
        return store, False
    return RunStore(store), True


def _result_from_store(store: RunStore, row: Mapping[str, Any], *, cached: bool,
                       model: nn.Module | None = None, resumed_from: int | None = None) -> RunResult:
    metrics = store.metrics(row["id"])
    return RunResult(
        run_id=row["id"], task=row["task"], task_options=row["task_options"],
        optimizer=row["optimizer"], hparams=row["hparams"], seed=row["seed"], steps=row["steps"],
        status=row["status"], final=summarize(metrics, row["steps"]), metrics=metrics,
        error=row["error"], cached=cached, resumed_from=resumed_from, threads=row["threads"] or 1,
        model=model)


def run(task: str, optimizer: str, *, hparams: Mapping[str, Any] | None = None, seed: int = 0,
        steps: int | None = None, task_options: Mapping[str, Any] | None = None,
        store: RunStore | str | None = None, eval_every: int | None = None,
        checkpoint_every: int | None = None, threads: int = 1, progress: bool = False,
        resume: bool = True, nonfinite: str = "error", sharpness_every: int | None = None,
        restart: bool = False, on_step: Callable[[int, float], None] | None = None,
        keep_checkpoint: bool = False, branch_from: int | None = None, distributed: Any = None) -> RunResult:
    """Train ``optimizer`` on ``task`` for ``steps`` steps from ``seed`` and record the run.

    task, task_options: a task name and its options (:func:`optimlab.lab.tasks.get_task`).
    optimizer, hparams: an optimizer name and its keyword hyperparameters
        (:func:`optimlab.create`). With ``optimizer == "adamw"`` and no hparams, the task's
        ``spec.adamw`` settings are used; otherwise the optimizer's own defaults fill in.
    seed: the task build seed (model init, data) and the seed of the global RNGs during training.
    steps: optimizer steps (default ``spec.default_steps``).
    store: a :class:`RunStore`, a database path, or None (an in-memory store: nothing persists).
    eval_every: evaluate every this many steps, at the end, and at step 0 when shorter than the run
        (default :func:`optimlab.lab.steplog.default_eval_every`: at most 10% of the training time,
        from the task's declared ``eval_cost``).
    checkpoint_every: checkpoint (and flush metrics) every this many steps (default eval_every).
    keep_checkpoint: keep the finished run's last checkpoint (default: delete it; the store keeps
        metrics, and checkpoints of finished runs only cost space).
    threads: ``torch.set_num_threads`` for the run (restored afterwards); recorded with the run.
    progress: a tqdm bar with ETA. nonfinite: passed to :func:`optimlab.create`.
    resume: reuse the store's run of the identical configuration (task, options, optimizer,
        hparams, seed, steps): a finished or failed one is returned without training, an
        interrupted one continues from its checkpoint. ``resume=False`` always trains a new run.
        eval_every, checkpoint_every, threads and nonfinite are not part of the match (a reused
        run keeps the eval points it was recorded with). A run left ``running`` by a process
        that died is resumed like an interrupted one; two processes should not run the same
        configuration on one store at once.
    restart: with ``resume``, an interrupted (or ``running``) run of this configuration is trained
        again from step 0 under its id -- its metrics and checkpoint discarded -- instead of continuing
        from its checkpoint (use it when a stored checkpoint is refused as invalid); finished and
        failed runs are still reused.
    sharpness_every: every this many steps (and at step 0), log ``sharpness`` = λ_max of the training
        loss's Hessian on the first training batch (Lanczos, :func:`optimlab.diagnostics.top_eigenvalues`),
        and for Adam-type optimizers ``precond_sharpness`` = λ_max(P⁻¹H); the cost is outside
        ``step_ms`` and the global RNG is preserved, so training is unchanged.
    on_step: called as ``on_step(step, loss)`` after every step (after that step's checkpoint).
    branch_from: a run id in ``store`` whose kept checkpoint (``keep_checkpoint=True``) this run starts from,
        continuing on its own schedule (:mod:`optimlab.lab.branch`: WSD's decay branches); recorded in the
        run's hparams as ``branch_from``. Everything but the schedule must equal the parent's.
    hparams may also hold ``"batch_control": "norm_test(eta=0.5, start=2, max_mult=64)"``: each step averages
        the gradients of m task batches, m grown by the norm test (:mod:`optimlab.lab.batching`, AdAdaGrad).
    distributed: the per-rank hook of :mod:`optimlab.lab.distributed_run` (``optimlab run --nproc N``).

    Unknown task or optimizer: ValueError naming it; bad hyperparameters: TypeError / ValueError
    from :func:`optimlab.create` -- all before anything is written to the store. A stored checkpoint
    that is not a valid optimlab checkpoint for this model and optimizer: ValueError naming the run
    and the bad entry, the store unchanged (see :mod:`optimlab.lab.checkpoint`).
    """
    args = run_args.check(task, optimizer, hparams=hparams, seed=seed, steps=steps, task_options=task_options,
                          eval_every=eval_every, checkpoint_every=checkpoint_every, threads=threads,
                          restart=restart, sharpness_every=sharpness_every, branch_from=branch_from)
    task_obj, options, hparams, steps = args.task, args.options, args.hparams, args.steps
    eval_every, checkpoint_every = args.eval_every, args.checkpoint_every

    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    db, owned = _open_store(store)
    try:
        # Build and create first: a bad hyperparameter raises before a run row exists.
        instance, extra = task_obj.build(seed), {}
        if distributed is not None:  # this rank's share of each batch, the loss through DDP, process_group=
            instance, extra = distributed.wrap(instance)
        opt = optimlab.create(instance.model, optimizer, nonfinite=nonfinite, **instance.role_hints, **extra,
                              **{k: v for k, v in hparams.items() if k not in RUN_KEYS})
        if "outputs" in opt.recipe.needs and instance.model_batch(instance.model, instance.batch(0)) is None:
            raise ValueError(f"{optimizer} needs the model's outputs and targets (Gauss–Newton curvature), and task "
                             f"{task!r} does not expose them (TaskInstance.model_batch); the classification "
                             f"tasks (digits_mlp, ...) do")
        control = None if hparams.get("batch_control") is None else batching.from_spec(
            hparams["batch_control"], instance, getattr(getattr(opt, "recipe", None), "needs", frozenset()))
        if hparams.get("schedule") is not None:  # "wsd(decay=0.1)" etc.: optimlab.lab.schedules
            on_step = schedules.attach(opt, hparams["schedule"], steps, on_step)
        if hparams.get("branch_from") is not None:
            branch.check_parent(db, hparams["branch_from"], task, options, optimizer, hparams, seed, steps)
        previous = db.find_matching(task, options, optimizer, hparams, seed, steps) if resume else None
        if previous is not None and previous["status"] in ("finished", "failed"):
            return _result_from_store(db, previous, cached=True)
        if previous is not None and restart:
            db.reset_run(previous["id"])
        with preserve_global_rng():
            return _train(db, task, options, optimizer, hparams, seed, steps, instance, opt,
                          previous, eval_every, checkpoint_every, threads, progress, on_step, sharpness_every,
                          keep_checkpoint, control)
    finally:
        torch.set_num_threads(old_threads)
        if owned:
            db.close()


def _train(db: RunStore, task: str, options: dict, optimizer: str, hparams: dict, seed: int,
           steps: int, instance: Any, opt: Any, previous: Mapping[str, Any] | None,
           eval_every: int, checkpoint_every: int, threads: int, progress: bool,
           on_step: Callable[[int, float], None] | None, sharpness_every: int | None = None,
           keep_checkpoint: bool = False, control: Any = None) -> RunResult:
    model = instance.model
    start, resumed_from = 0, None
    checkpoint = db.load_checkpoint(previous["id"]) if previous is not None else None
    if checkpoint is not None:
        run_id = previous["id"]
        start, blob = checkpoint
        # The store may come from someone else: decode validates everything, and nothing is
        # written to the store before the checkpoint has been accepted and applied.
        checkpoint_codec.apply(checkpoint_codec.decode(blob, run_id, start), run_id, model, opt)
        db.truncate_metrics(run_id, start)
        db.mark_running(run_id)
        resumed_from = start
    else:
        if previous is not None:  # interrupted before its first checkpoint: start it over
            db.truncate_metrics(previous["id"], -1)
            db.mark_running(previous["id"])
            run_id = previous["id"]
        else:
            run_id = db.create_run(task, options, optimizer, hparams, seed, steps, threads=threads,
                                   env=environment())
        torch.manual_seed(derive_seed(seed, "train", "torch"))
        np.random.seed(derive_seed(seed, "train", "numpy") % 2**32)
        random.seed(derive_seed(seed, "train", "random"))
        if hparams.get("branch_from") is not None:  # model, optimizer, RNGs and metrics from the parent
            start = branch.start_from(db, hparams["branch_from"], run_id, model, opt)
            if hasattr(on_step, "at"):  # the schedule's lr for the next step is this run's, not the parent's
                on_step.at(start)

    if control is not None and start:  # the norm test's batch stream, read back from the stored metrics
        control.restore(db.metrics(run_id), start)
    pending: list[tuple[int, str, float]] = []
    if start == 0 and eval_every < steps:
        pending += steplog.evaluate(0, instance, opt)
        if sharpness_every:
            pending += steplog.sharpness(0, instance, opt)

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, initial=start, desc=f"{task}/{optimizer}/seed {seed}",
                   unit="step", leave=False, dynamic_ncols=True)
    step = start
    log_every = steplog.log_every(steps)
    # Recipes that read the loss get it through a closure returning the loss already computed (no extra
    # evaluation); recipes that re-evaluate (or need HVPs) get a real closure, each call of which is one
    # more loss-and-gradient evaluation, logged cumulatively as ``evals`` (the report's --x evals).
    needs = getattr(getattr(opt, "recipe", None), "needs", frozenset())
    reevaluates = bool(needs & {"reevaluate", "hvp", "value", "outputs"})  # each logs cumulative evals
    values_only = "value" in needs
    try:
        model.train()
        for step in range(start + 1, steps + 1):
            t0 = time.perf_counter()
            batch = instance.batch(step - 1) if control is None else None
            if control is not None:  # m batches, gradients averaged; the norm test picks the next m
                loss, sizes = control.step(instance, model)
                pending += [(step, k, v) for k, v in sizes]
            elif values_only:  # zeroth order: no graph, no backward; the step evaluates the loss itself
                with torch.no_grad():
                    loss = instance.loss(model, batch)
            else:
                loss = instance.loss(model, batch)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"non-finite training loss {loss_value} at step {step}")
            if not values_only and control is None:
                loss.backward()
            ta = time.perf_counter()
            # step telemetry, left out of step_ms: the lr the step will use, the gradient norm before
            # the step, and a copy of the parameters to measure the update
            logged = step == 1 or step % log_every == 0
            if logged:
                lr, gnorm, before = float(steplog.main_group(opt)["lr"]), steplog.grad_norm(opt), steplog.snapshot(opt)
            t1 = time.perf_counter()
            if values_only:  # a forward-only closure, called 2q times (under no_grad) by the step
                opt.step(lambda batch=batch: instance.loss(model, batch))
            elif reevaluates:
                closure = steplog.closure(instance, model, opt, batch, create_graph="hvp" in needs)
                if "outputs" in needs:  # Gauss–Newton recipes: the model's outputs and targets (core/model_batch.py)
                    closure.batch = instance.model_batch(model, batch)  # type: ignore[attr-defined]
                opt.step(closure)
            elif "loss" in needs:
                opt.step(lambda loss=loss: loss)
            else:
                opt.step()
            t2 = time.perf_counter()
            if reevaluates:
                pending.append((step, "evals", float(step + opt.closure_evals)))
            if logged:
                pending += [(step, "lr", lr), (step, "grad_norm", gnorm),
                            (step, "update_norm", steplog.update_norm(opt, before))]
                del before
            tb = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            t3 = time.perf_counter()
            pending += [(step, "loss", loss_value), (step, "step_ms", (t3 - t0 - (t1 - ta) - (tb - t2)) * 1e3),
                        (step, "opt_ms", (t2 - t1) * 1e3)]
            if step % eval_every == 0 or step == steps:
                pending += steplog.evaluate(step, instance, opt)
            if sharpness_every and (step % sharpness_every == 0 or step == steps):
                pending += steplog.sharpness(step, instance, opt)
            if step == steps:
                pending += [(step, "state_bytes", optimizer_state_bytes(opt)),
                            (step, "n_params", sum(p.numel() for p in model.parameters()))]
            if step % checkpoint_every == 0 or step == steps:
                db.save_checkpoint(run_id, step, _checkpoint_blob(step, model, opt), pending)
                pending = []
            if bar is not None:
                bar.update(1)
                if step % max(1, steps // 100) == 0:
                    bar.set_postfix(loss=f"{loss_value:.4g}", refresh=False)
            if on_step is not None:
                on_step(step, loss_value)
    except KeyboardInterrupt:
        db.mark_interrupted(run_id)
        raise
    except FloatingPointError as e:
        # Divergence is a result, not a crash: keep what was logged up to the failure.
        db.log_many(run_id, pending)
        db.mark_failed(run_id, f"step {step}: {e}")
        return _result_from_store(db, db.get_run(run_id), cached=False, model=model,
                                  resumed_from=resumed_from)
    except BaseException:
        db.mark_failed(run_id, traceback.format_exc(limit=20))
        raise
    finally:
        if bar is not None:
            bar.close()
    db.finish(run_id)
    if not keep_checkpoint:
        drop_checkpoint(db, run_id)
    opt.eval()  # the returned model holds the evaluated point (schedule-free: the average x)
    return _result_from_store(db, db.get_run(run_id), cached=False, model=model,
                              resumed_from=resumed_from)
