"""Optimizer checkpoints through ``torch.distributed.checkpoint`` (DCP), reshardable to another world size.

DCP saves and loads *in place* into a state dict of the same structure, so the optimizer's state dict for
DCP (:func:`state_dict`) is keyed by parameter **name** (not torch's integer ids) and is complete: every
parameter has an entry, fresh (``step`` 0, zero tensors) when it has no state yet, so that the template a
fresh optimizer gives on the loading side has every key the saving side wrote. Tensors keep their kind:
replicated state (DDP) is saved once and loaded by every rank; DTensor state (FSDP2) is resharded by DCP to
the loading mesh, whatever its size.

:func:`load_state_dict` turns the loaded dict back into torch's form and goes through
``ChainOptimizer.load_state_dict``: the optimlab checks (optimizer name, roles, shapes, hyperparameters,
state keys, dtypes) apply exactly as for a ``torch.save`` checkpoint.

Usage (every rank)::

    import torch.distributed.checkpoint as dcp
    from optimlab.distributed import checkpoint as ockpt
    dcp.save({"model": model.state_dict(), "optim": ockpt.state_dict(opt)}, checkpoint_id=path)
    # later, on any number of ranks, with a freshly built model and optimizer:
    sd = {"model": model.state_dict(), "optim": ockpt.state_dict(opt)}
    dcp.load(sd, checkpoint_id=path)
    model.load_state_dict(sd["model"]); ockpt.load_state_dict(opt, sd["optim"])

``torch.distributed.checkpoint.state_dict.get_optimizer_state_dict`` is not the way for optimlab
optimizers: it drops the ``"optimlab"`` entry that the checks need, and on an optimizer without state it
calls ``step()`` with zero gradients (a recipe that needs a closure refuses that).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

__all__ = ["state_dict", "load_state_dict"]

_STRUCTURAL = ("params", "param_names")


def _names(opt: Any) -> list[list[str]]:
    out = []
    for gi, g in enumerate(opt.param_groups):
        names = g.get("param_names")
        out.append(list(names) if names is not None else [f"group{gi}.{j}" for j in range(len(g["params"]))])
    flat = [n for ns in out for n in ns]
    if len(set(flat)) != len(flat):
        raise ValueError(f"{opt.name}: parameter names are not unique; a DCP checkpoint is keyed by name")
    return out


def state_dict(opt: Any) -> dict[str, Any]:
    """The optimizer's state for DCP: ``{"optimlab": meta, "param_groups": [...], "state": {name: {...}}}``."""
    from ..core.engine import _fresh_state

    names = _names(opt)
    sd = opt.state_dict()
    meta = dict(sd["optimlab"])
    meta["shapes"] = [[list(s) for s in g] for g in meta["shapes"]]
    meta["param_names"] = names
    state: dict[str, Any] = {}
    for gi, g in enumerate(opt.param_groups):
        chain = opt.recipe.chain_for(g["role"])
        for name, p in zip(names[gi], g["params"]):
            st = opt.state.get(p)
            if not st:  # complete: a fresh entry, so that any template has every key
                st = {"step": 0, **_fresh_state(chain, p.detach(), g)}
            state[name] = dict(st)
    groups = [{k: v for k, v in g.items() if k not in _STRUCTURAL} for g in opt.param_groups]
    return {"optimlab": meta, "param_groups": groups, "state": state}


def load_state_dict(opt: Any, sd: dict[str, Any]) -> None:
    """Load a dict filled by ``dcp.load`` (from :func:`state_dict`'s template) into ``opt``, with the same
    checks as ``opt.load_state_dict``; nothing changes on refusal."""
    if not isinstance(sd, dict) or not {"optimlab", "param_groups", "state"} <= set(sd):
        raise ValueError(f"{opt.name}: not an optimlab DCP optimizer state (expected keys 'optimlab', "
                         f"'param_groups', 'state'), got {sorted(map(str, sd)) if isinstance(sd, dict) else sd!r}")
    meta = dict(sd["optimlab"])
    names = meta.pop("param_names", None)
    if names != _names(opt):
        raise ValueError(f"{opt.name}: the checkpoint's parameter names differ from this optimizer's: saved "
                         f"{names!r}")
    meta["shapes"] = [[tuple(s) for s in g] for g in meta["shapes"]]
    state: dict[int, Any] = {}
    groups = []
    k = 0
    for gi, (g, saved) in enumerate(zip(opt.param_groups, sd["param_groups"])):
        ids = []
        for name in names[gi]:
            st = sd["state"].get(name)
            if not isinstance(st, dict):
                raise ValueError(f"{opt.name}: the checkpoint has no state entry for parameter {name!r}")
            if st.get("step", 0) != 0:  # step 0: saved as a placeholder, the parameter had no state
                state[k] = {key: (v.clone() if isinstance(v, Tensor) else v) for key, v in st.items()}
            ids.append(k)
            k += 1
        group = {**saved, "params": ids}
        if "param_names" in g:
            group["param_names"] = list(names[gi])
        groups.append(group)
    opt.load_state_dict({"state": state, "param_groups": groups, "optimlab": meta})


