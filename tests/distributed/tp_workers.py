"""Workers for the tensor-parallel layout tests: a GPT whose parameters are DTensors with TP placements.

The optimizer is isolated from the model's parallel forward: every rank runs the same plain GPT forward and
backward on the whole batch, hands the DTensor parameters their blocks of the exact gradient (no
communication), steps the optimizer on the DTensors, and copies the full new values back. A one-process run
of the plain GPT with the same data is then the reference, bit for bit.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from dist_workers import STEP_TIMEOUT, make_opt, record_owner_calls

CONTEXT, LAYERS, BATCH = 16, 2, 8
#: model sizes: "even" (d=32, vocab 32: every split even on 2 and 4 ranks); "odd" (d=21, vocab 33: uneven
#: column splits, 11/10 on 2 ranks and 6/6/6/3 on 4)
SIZES = {"even": (32, 32, 2), "odd": (33, 21, 3)}


def gpt(seed: int, size: str = "even"):
    from optimlab.lab.tasks.blocks import Transformer

    vocab, d, heads = SIZES[size]
    torch.manual_seed(seed)
    model = Transformer(vocab, CONTEXT, d, LAYERS, heads, tie=False)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model


def batch(step: int, size: str):
    vocab = SIZES[size][0]
    x = torch.randint(0, vocab, (BATCH, CONTEXT + 1), generator=torch.Generator().manual_seed(1000 + step))
    return x[:, :-1], x[:, 1:]


def placements(name: str, ndim: int, layout: str) -> list:
    """A parameter's placements: ``cols`` (every matrix Shard(1), vectors replicated), ``mixed`` (Megatron's
    column-parallel q/k/fc Shard(0), row-parallel proj Shard(1), v replicated, vocab-parallel embedding and
    head), ``fsdp_tp`` (2-D mesh: matrices (Shard(0), Shard(1)), vectors (Shard(0), Replicate()))."""
    from torch.distributed.tensor import Replicate, Shard

    if layout == "fsdp_tp":
        return [Shard(0), Shard(1)] if ndim == 2 else [Shard(0), Replicate()]
    if ndim < 2:
        return [Replicate()]
    if layout == "cols":
        return [Shard(1)]
    if name.endswith(("attn.v.weight", "pos_emb.weight")):
        return [Replicate()]
    if name.endswith(("proj.weight",)):  # attn.proj and the MLP's proj: row-parallel (input features)
        return [Shard(1)]
    return [Shard(0)]  # q, k, fc (column-parallel), tok_emb and lm_head (vocab-parallel)


def tp_model(seed: int, size: str, layout: str):
    """``gpt(seed, size)`` with every parameter replaced by a DTensor of its TP placements."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import distribute_tensor

    world = dist.get_world_size()
    mesh = init_device_mesh("cpu", (2, world // 2) if layout == "fsdp_tp" else (world,))
    model = gpt(seed, size)
    for mname, mod in list(model.named_modules()):
        for pname, p in list(mod.named_parameters(recurse=False)):
            full = f"{mname}.{pname}" if mname else pname
            dt = distribute_tensor(p.detach().clone(), mesh, placements(full, p.ndim, layout), src_data_rank=None)
            setattr(mod, pname, torch.nn.Parameter(dt))
    return model


def block_of(full: torch.Tensor, like, partial: bool = False):
    """This rank's block of ``full`` as a DTensor laid out like ``like`` (no communication); ``partial``: a
    ``Partial()`` DTensor holding ``full / world`` (a replicated parameter's gradient before its all-reduce)."""
    from torch.distributed.tensor import DTensor, Partial
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    mesh = like.device_mesh
    if partial:
        return DTensor.from_local(full / mesh.size(), mesh, [Partial()] * mesh.ndim, run_check=False)
    shape, off = compute_local_shape_and_global_offset(full.shape, mesh, like.placements)
    local = full[tuple(slice(o, o + s) for o, s in zip(off, shape))].clone()
    return DTensor.from_local(local, mesh, like.placements, run_check=False, shape=full.shape, stride=full.stride())


def step_plain(model, opt, steps: int, size: str, start: int = 0) -> None:
    """The one-process reference loop (the same arithmetic as :func:`w_tp`'s plain model)."""
    for s in range(start, start + steps):
        x, y = batch(s, size)
        opt.zero_grad(set_to_none=True)
        loss_of(model, x, y, size).backward()
        opt.step()


def loss_of(model, x, y, size: str):
    vocab = SIZES[size][0]
    return torch.nn.functional.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))


def full_params(model) -> dict:
    return {n: (p.detach().full_tensor() if hasattr(p, "full_tensor") else p.detach()).clone()
            for n, p in model.named_parameters()}


def full_state(opt) -> dict:
    out = {}
    for gi, g in enumerate(opt.param_groups):
        for j, p in enumerate(g["params"]):
            for k, v in opt.state.get(p, {}).items():
                if isinstance(v, torch.Tensor):
                    out[(gi, j, k)] = (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
    return out


def load(model, opt, ckpt: str) -> None:
    """Model and optimizer from a DCP checkpoint (any layout, any number of processes, or one process)."""
    import torch.distributed.checkpoint as dcp

    from optimlab.distributed import checkpoint as ockpt

    sd = {"model": model.state_dict(), "optim": ockpt.state_dict(opt)}
    dcp.load(sd, checkpoint_id=ckpt)
    model.load_state_dict(sd["model"])
    ockpt.load_state_dict(opt, sd["optim"])


def w_tp(rank: int, world: int, tmp: str, names: list, steps: int, size: str, layout: str,
         partial_vectors: bool = False, save_at: int | None = None) -> dict:
    """``steps`` steps of each optimizer on the TP-laid-out GPT. ``save_at``: a DCP checkpoint after that many
    steps (``{tmp}/ckpt_{name}``), then a fresh model and optimizer (another seed) loaded from it go on."""
    import torch.distributed.checkpoint as dcp

    from optimlab.distributed import checkpoint as ockpt

    out = {}
    for name in names:
        plain, model = gpt(0, size), tp_model(0, size, layout)
        try:
            opt = make_opt(model, name)  # DTensor parameters: detected
        except ValueError as err:
            out[name] = {"refused": str(err)}
            continue
        opt._distributed.comm.timeout = STEP_TIMEOUT
        log = record_owner_calls(model)
        pairs = list(zip(plain.parameters(), model.parameters()))
        for s in range(steps):
            if s == save_at:
                dcp.save({"model": model.state_dict(), "optim": ockpt.state_dict(opt)},
                         checkpoint_id=f"{tmp}/ckpt_{name}")
                model = tp_model(1, size, layout)
                opt = make_opt(model, name)
                load(model, opt, f"{tmp}/ckpt_{name}")
                opt._distributed.comm.timeout = STEP_TIMEOUT
                log = record_owner_calls(model)
                pairs = list(zip(plain.parameters(), model.parameters()))
            x, y = batch(s, size)
            plain.zero_grad(set_to_none=True)
            loss_of(plain, x, y, size).backward()
            for pp, pd in pairs:
                pd.grad = block_of(pp.grad, pd, partial_vectors and pp.ndim == 1)
            opt.step()
            with torch.no_grad():
                for pp, pd in pairs:
                    pp.copy_(pd.full_tensor())
        ex = opt._distributed
        out[name] = {"params": full_params(model), "state": full_state(opt), "calls": ex.matrix_calls, "log": log,
                     "needed": ex.comm.bytes_needed, "mode": ex.mode,
                     "q_placements": sorted({str(st[k].placements) for st in opt.state.values() for k in st
                                             if k.endswith(".Q") and hasattr(st[k], "placements")})}
    return out


def closure_for(plain, pairs, step: int, size: str):
    """A closure computing the plain GPT's loss and gradients on the step's batch; with ``pairs`` (plain,
    DTensor parameters) the DTensors get their blocks of the gradients."""
    x, y = batch(step, size)

    def closure():
        plain.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = loss_of(plain, x, y, size)
            loss.backward()
        for pp, pd in pairs or ():
            pd.grad = block_of(pp.grad, pd)
        return loss.detach()
    return closure


def w_tp_registry(rank: int, world: int, tmp: str, names: list, steps: int, layout: str) -> dict:
    """Every optimizer in ``names`` for ``steps`` steps on the TP-laid-out GPT (closures), errors per name."""
    out = {}
    for name in names:
        plain, model = gpt(0, "even"), tp_model(0, "even", layout)
        try:
            opt = make_opt(model, name)
            opt._distributed.comm.timeout = STEP_TIMEOUT
            torch.manual_seed(7)  # recipes that draw from torch's global generator draw the same on every rank
            pairs = list(zip(plain.parameters(), model.parameters()))
            for s in range(steps):
                opt.step(closure_for(plain, pairs, s, "even"))
                with torch.no_grad():
                    for pp, pd in pairs:
                        pp.copy_(pd.full_tensor())
        except Exception as err:  # the same error on every rank: no collective hangs
            out[name] = {"failed": f"{type(err).__name__}: {err}"}
            continue
        out[name] = {"params": full_params(model)}
    return out
