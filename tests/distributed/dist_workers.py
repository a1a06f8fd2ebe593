"""Helpers for the distributed tests: launch N gloo processes with a hard timeout, a tiny GPT, its data.

Every process group is made through a FileStore in the test's tmp dir (no TCP port to collide with), with
a short process-group timeout; every launch has a wall-clock limit after which the processes are killed.
"""

from __future__ import annotations

import os
import traceback
from datetime import timedelta

import torch
import torch.distributed as dist

from optimlab.lab.distributed_run import report, spawn_and_collect

PG_TIMEOUT = 120.0  # seconds: the process group's own timeout (generous: 4 processes on 2 loaded cores)
STEP_TIMEOUT = 60.0  # seconds: the optimizer's collective timeout in tests (the failure tests set their own)


def _entry(rank: int, fn, world: int, tmp: str, args: tuple) -> None:
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world,
                            timeout=timedelta(seconds=PG_TIMEOUT))
    try:
        out = fn(rank, world, tmp, *args)
    except BaseException as err:  # report it; the parent decides whether it was expected
        out = {"error": f"{type(err).__name__}: {err}", "type": type(err).__name__, "tb": traceback.format_exc()}
    # written whole then renamed; a result recording an error anywhere (its own or a case's) exits 0 at once:
    # a group after a failed collective may abort in its destructor, and a non-zero exit would make torch
    # SIGTERM the other ranks before they report
    report(tmp, rank, out)


def launch(fn, world: int, tmp, *args, timeout: float = 300.0) -> list:
    """Run ``fn(rank, world, tmp, *args)`` on ``world`` processes; each one's return value (or error dict)."""
    tmp = str(tmp)
    return spawn_and_collect(_entry, world, tmp, (fn, world, tmp, args), timeout, "distributed test")


# -- a tiny GPT and its data -------------------------------------------------------------------------
VOCAB, CONTEXT, D, LAYERS, HEADS, BATCH = 32, 16, 32, 2, 2, 8


def tiny_gpt(seed: int = 0):
    from optimlab.lab.tasks.blocks import Transformer

    torch.manual_seed(seed)
    model = Transformer(VOCAB, CONTEXT, D, LAYERS, HEADS, tie=False)
    gen = torch.Generator().manual_seed(seed)
    model.reset_parameters(gen)
    return model


def batch(step: int, rows: slice = slice(None)):
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randint(0, VOCAB, (BATCH, CONTEXT + 1), generator=g)
    return x[rows, :-1], x[rows, 1:]


def loss_of(model, x, y):
    logits = model(x)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))


def train(model, opt, steps: int, start: int = 0, rows: slice = slice(None), scale: float = 1.0):
    """``steps`` steps on the batches from ``start``, as a user writes them: the closure computes the loss and
    its gradients (keeping their graph for recipes that need HVPs; none for zeroth-order recipes, which call
    it under ``no_grad``); it carries ``outputs`` (for JVPs of the logits)
    and, for Gauss–Newton recipes (``needs`` "outputs"), the batch described as a ``ModelBatch``."""
    from optimlab.core.model_batch import ModelBatch

    hvp = "hvp" in opt.recipe.needs  # Hessian-vector products: the closure keeps the gradients' graph
    values = "value" in opt.recipe.needs  # zeroth order: the closure returns the loss, no backward (no_grad)
    gauss_newton = "outputs" in opt.recipe.needs
    if gauss_newton and scale != 1.0:  # the step checks the closure's loss against the batch's: say why here
        raise ValueError(f"train: {opt.name} reads the model's outputs and targets (closure.batch); its loss "
                         f"cannot be scaled by {scale}")
    for s in range(start, start + steps):
        x, y = batch(s, rows)
        opt.zero_grad(set_to_none=True)

        def closure():
            opt.zero_grad(set_to_none=True)
            if hvp:  # the fused CPU attention kernels have no double backward; the math one has
                from torch.nn.attention import SDPBackend, sdpa_kernel

                with sdpa_kernel([SDPBackend.MATH]):
                    loss = loss_of(model, x, y) * scale
            else:
                loss = loss_of(model, x, y) * scale
            if not values:
                loss.backward(create_graph=hvp)
            return loss

        def outputs():  # the logits, for recipes that take JVPs of the outputs (double backward: math SDPA)
            from torch.nn.attention import SDPBackend, sdpa_kernel

            with sdpa_kernel([SDPBackend.MATH]):
                return model(x)

        closure.outputs = outputs
        if gauss_newton:  # the mean cross-entropy of the logits against y: what loss_of computes
            closure.batch = ModelBatch(outputs, y, "cross_entropy")
        opt.step(closure)
    return model


def params_of(model) -> dict:
    out = {}
    for n, p in model.named_parameters():
        t = p.detach()
        if hasattr(t, "full_tensor"):
            t = t.full_tensor()
        out[n.removeprefix("module.")] = t.clone()
    return out


def state_of(opt) -> dict:
    """Every state tensor by (group, index, key), as full tensors (DTensor state gathered)."""
    out = {}
    for gi, g in enumerate(opt.param_groups):
        for j, p in enumerate(g["params"]):
            for k, v in opt.state.get(p, {}).items():
                if isinstance(v, torch.Tensor):
                    v = v.full_tensor() if hasattr(v, "full_tensor") else v
                    out[(gi, j, k)] = v.detach().clone()
                else:
                    out[(gi, j, k)] = v
    return out


#: test names for optimizer variants: name -> (registered name, hyperparameters, Dion's distributed mode)
VARIANTS = {
    "dion_lowrank": ("dion", {"rank_fraction": 0.25}, "lowrank"),  # the paper's sharded power iteration
    "dion_lowrank_full": ("dion", {}, "lowrank"),  # at the registered rank_fraction 1.0
    "dion_owner": ("dion", {"rank_fraction": 0.25}, "owner"),  # the same rank, whole matrices on owners
    # the ghosts-of-softmax controller: its step is taken in the post-pass (finish hooks), after a JVP of the
    # closure's outputs; under DDP with closure="global" (every rank's closure sees the same batch here)
    "safe_radius_adam": ("safe_radius:adam", {"lr": 0.01}, "global"),
}


def make_opt(model, name: str, group=None):
    """The optimizer ``name`` (or a :data:`VARIANTS` entry) over ``model``; distributed over ``group`` (DDP) or
    the DTensor mesh. Dion runs its owner mode (bit-identical to one process) unless a variant says otherwise."""
    import optimlab
    from optimlab.distributed import distribute

    name, kw, mode = VARIANTS.get(name, (name, {}, "owner"))
    if name.startswith("safe_radius:"):
        from optimlab.optimizers.ghosts import safe_radius

        opt = optimlab.create(model, safe_radius(name.split(":", 1)[1]), **kw)
        return opt if group is None else distribute(opt, group, closure=mode)
    opt = optimlab.create(model, name, process_group=group, **kw)
    if name == "dion" and opt._distributed is not None and mode != "lowrank":
        distribute(opt, group, dion=mode)
    return opt


# -- workers ------------------------------------------------------------------------------------------
def record_owner_calls(model) -> list:
    """Patch every owner transform's ``update`` to log the names of the matrices it computes (this process)."""
    from optimlab.distributed.capability import OWNER

    names = {id(p): n.removeprefix("module.") for n, p in model.named_parameters()}
    log: list = []
    for cls in OWNER:
        if "_orig_update" not in cls.__dict__:
            cls._orig_update = cls.update

        def update(self, b, _orig=cls._orig_update):
            log.append([names[id(p)] for p in b.params])
            return _orig(self, b)

        cls.update = update
    return log


def w_parity(rank: int, world: int, tmp: str, names: list, steps: int, wrap_ddp: bool = False) -> dict:
    out = {}
    for name in names:
        model = tiny_gpt(0)
        rows = slice(None)
        if wrap_ddp:
            model = torch.nn.parallel.DistributedDataParallel(model)
            per = BATCH // world
            rows = slice(rank * per, (rank + 1) * per)
        opt = make_opt(model, name, dist.group.WORLD)
        opt._distributed.comm.timeout = STEP_TIMEOUT
        log = record_owner_calls(model)
        train(model, opt, steps, rows=rows)
        ex = opt._distributed
        out[name] = {"params": params_of(model), "state": state_of(opt), "calls": ex.matrix_calls, "log": log,
                     "bytes": ex.comm.bytes_received, "needed": ex.comm.bytes_needed}
    return out


def w_dcp_save(rank: int, world: int, tmp: str, names: list, steps: int, fsdp: bool = False) -> dict:
    import torch.distributed.checkpoint as dcp

    from optimlab.distributed import checkpoint as ockpt

    for name in names:
        model = fsdp_model(0) if fsdp else tiny_gpt(0)
        opt = make_opt(model, name, None if fsdp else dist.group.WORLD)
        # FSDP2: only rank 0's loss counts and it is scaled by world (exact), so the gradient is g
        train(model, opt, steps, scale=(float(world) if rank == 0 else 0.0) if fsdp else 1.0)
        dcp.save({"model": model.state_dict(), "optim": ockpt.state_dict(opt)}, checkpoint_id=f"{tmp}/ckpt_{name}")
    return {}


def resume(name: str, ckpt: str, steps: int, total: int, group=None) -> dict:
    """A fresh model and optimizer, loaded from ``ckpt`` (saved after ``steps``), trained to ``total``."""
    import torch.distributed.checkpoint as dcp

    from optimlab.distributed import checkpoint as ockpt

    model = tiny_gpt(1)  # another seed: everything must come from the checkpoint
    opt = make_opt(model, name, group)
    sd = {"model": model.state_dict(), "optim": ockpt.state_dict(opt)}
    dcp.load(sd, checkpoint_id=ckpt)
    model.load_state_dict(sd["model"])
    ockpt.load_state_dict(opt, sd["optim"])
    train(model, opt, total - steps, start=steps)
    return {"params": params_of(model), "state": state_of(opt)}


def w_dcp_load(rank: int, world: int, tmp: str, names: list, steps: int, total: int) -> dict:
    return {name: resume(name, f"{tmp}/ckpt_{name}", steps, total, dist.group.WORLD) for name in names}


def w_mismatch(rank: int, world: int, tmp: str, cases: list) -> dict:
    """Mismatches across ranks, one after the other on the same process group (a mismatch is detected on
    every rank by the same collective, so the group stays usable); returns each case's error and seconds."""
    import time

    import optimlab

    out = {}
    for case in cases:
        model = tiny_gpt(0)
        t0 = time.monotonic()
        try:
            if case == "construction":  # another momentum on rank 1
                opt = optimlab.create(model, "muon", momentum=0.9 if rank == 1 else 0.95,
                                      process_group=dist.group.WORLD)
            else:
                opt = make_opt(model, "muon", dist.group.WORLD)
                opt._distributed.comm.timeout = STEP_TIMEOUT
                train(model, opt, 1)
                if case == "fail_alive":
                    opt._distributed.comm.timeout = 3.0
                if case == "scheduler" and rank == 1:  # an LR change on one rank only
                    opt.param_groups[0]["lr"] *= 0.5
                if case == "grads" and rank == 0:  # a parameter without gradient on one rank only
                    model.lm_head.weight.requires_grad_(False)
                if case in ("fail", "fail_alive") and rank == 1:  # rank 1 fails inside the owner-split step
                    from optimlab.transforms import Orthogonalize

                    def boom(self, b):
                        raise RuntimeError("injected failure on rank 1")

                    Orthogonalize.update = boom
                if case == "nan" and rank == 1:
                    x, y = batch(1)
                    opt.zero_grad()
                    loss_of(model, x, y).backward()
                    model.blocks[0].fc.weight.grad[0, 0] = float("nan")
                    opt.step()
                else:
                    train(model, opt, 1, start=1)
            out[case] = {"error": None, "seconds": time.monotonic() - t0}
        except Exception as err:
            out[case] = {"error": f"{type(err).__name__}: {err}", "seconds": time.monotonic() - t0}
            if case == "fail_alive" and rank == 1:  # the failed rank stays alive: the others must time out
                time.sleep(6.0)
    return out


def fsdp_model(seed: int = 0, hsdp: bool = False):
    """The tiny GPT under FSDP2: 1-D mesh, or (``hsdp``) a 2-D (replicate=2, shard=world/2) mesh (HSDP)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    model = tiny_gpt(seed)
    world = dist.get_world_size()
    mesh = init_device_mesh("cpu", (2, world // 2), mesh_dim_names=("replicate", "shard")) if hsdp else \
        init_device_mesh("cpu", (world,))
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def w_fsdp(rank: int, world: int, tmp: str, names: list, steps: int, refusing: tuple = (), hsdp: bool = False
           ) -> dict:
    """FSDP2 runs in which only rank 0's loss counts (the others' is multiplied by 0): the reduce-scatter
    then sums g + 0 + ... exactly, and the gradient is g / world (a power of two: exact). ``hsdp``: on a 2-D
    replicate × shard mesh (the gradient is still g / world: all-reduced over the replicas)."""
    out = {}
    for name in names:
        model = fsdp_model(0, hsdp)
        opt = make_opt(model, name)  # DTensor parameters: detected, no process group needed
        opt._distributed.comm.timeout = STEP_TIMEOUT
        torch.manual_seed(7)  # recipes that draw from torch's global generator draw the same on every rank
        log = record_owner_calls(model)
        try:
            train(model, opt, steps, scale=1.0 if rank == 0 else 0.0)
        except Exception as err:  # reported per optimizer
            out[name] = {"failed": f"{type(err).__name__}: {err}"}
            continue
        ex = opt._distributed
        out[name] = {"params": params_of(model), "state": state_of(opt), "calls": ex.matrix_calls, "log": log,
                     "bytes": ex.comm.bytes_received, "needed": ex.comm.bytes_needed, "mode": ex.mode}
    refused = {}
    model = fsdp_model(0)
    for name in refusing:  # refused at construction, on every rank, with the reason
        try:
            make_opt(model, name)
            refused[name] = None
        except ValueError as err:
            refused[name] = str(err)
    out["refused"] = refused
    return out


def w_registry(rank: int, world: int, tmp: str, names: list, steps: int) -> dict:
    """Every optimizer in ``names`` for ``steps`` under DDP (process group given): final parameters. A recipe
    refused with per-rank closures (``closure="local"``, the default) is recorded with its reason, then run
    with ``closure="global"`` (true here: every rank's closure computes the same batch)."""
    import optimlab
    from optimlab.distributed import distribute

    out = {}
    for name in names:
        model = tiny_gpt(0)
        entry = {}
        try:
            opt = make_opt(model, name, dist.group.WORLD)
        except ValueError as err:  # refused at construction, with the reason
            entry["refused"] = str(err)
            opt = distribute(optimlab.create(model, name), dist.group.WORLD, closure="global")
        opt._distributed.comm.timeout = STEP_TIMEOUT
        torch.manual_seed(7)  # recipes that draw from torch's global generator draw the same on every rank
        try:
            train(model, opt, steps)
        except Exception as err:  # reported per optimizer (the same error on every rank: no collective hangs)
            entry["failed"] = f"{type(err).__name__}: {err}"
        else:
            entry["params"] = params_of(model)
        out[name] = entry
    return out
