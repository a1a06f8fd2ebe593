"""Validation of a loaded optimizer state dict, as strict as construction (it may come from anyone).

``validated(opt, sd)`` returns the state dict torch's ``Optimizer.load_state_dict`` should see, with
normalised hyperparameters, or raises ``TypeError``/``ValueError`` naming the entry and the value. It checks
what torch will actually do with it: torch gives the state of the k-th saved parameter id (in group order)
to the k-th parameter of the optimizer, so each state is checked against *that* parameter — shape, dtype,
layout — and a wrong-shape tensor can never reach a fused kernel (which does not check, and corrupts memory).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .hparams import validate

__all__ = ["validated"]


def _need(cond: bool, err: type, msg: str) -> None:
    if not cond:
        raise err(msg)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def validated(opt: Any, sd: Any) -> tuple[dict[str, Any], bool]:
    """(the state dict for torch, the saved train/eval mode), or raise before anything is changed."""
    from .engine import SCHEDULER_KEYS, _fresh_state

    name = opt.name
    _need(isinstance(sd, dict), TypeError, f"{name}: a state dict must be a dict, got {type(sd).__name__}")
    for key, typ in (("state", dict), ("param_groups", list), ("optimlab", dict)):
        _need(key in sd, ValueError, f"{name}: not an optimlab state dict (no {key!r} entry); keys: "
              f"{sorted(map(str, sd))}")
        _need(isinstance(sd[key], typ), TypeError,
              f"{name}: state dict entry {key!r} must be a {typ.__name__}, got {type(sd[key]).__name__}")
    meta, saved_groups, state = sd["optimlab"], sd["param_groups"], sd["state"]
    _need(meta.get("optimizer") == name, ValueError,
          f"{name}: state dict was saved by optimizer {meta.get('optimizer')!r}")
    roles, shapes, training = meta.get("roles"), meta.get("shapes"), meta.get("training", True)
    _need(isinstance(training, bool), TypeError, f"{name}: saved 'training' must be a bool, got {training!r}")
    n = len(opt.param_groups)
    for what, v in (("roles", roles), ("shapes", shapes), ("param_groups", saved_groups)):
        _need(isinstance(v, list), TypeError, f"{name}: saved {what!r} must be a list, got {type(v).__name__}")
        _need(len(v) == n, ValueError,
              f"{name}: state dict has {len(v)} param groups (by {what!r}), this optimizer has {n}")
    groups, seen, k = [], set(), 0
    for gi, (g, sg, role, gshapes) in enumerate(zip(opt.param_groups, saved_groups, roles, shapes)):
        where = f"{name}: param group {gi}"
        _need(isinstance(sg, dict), TypeError, f"{where} must be a dict, got {type(sg).__name__}")
        _need(role == g["role"], ValueError, f"{where} has role {g['role']!r}, saved role {role!r}")
        _need(sg.get("role") == g["role"], ValueError,
              f"{where} has role {g['role']!r}, saved group role {sg.get('role')!r}")
        ids = sg.get("params")
        _need(isinstance(ids, list) and all(_is_int(i) for i in ids), TypeError,
              f"{where}: saved 'params' must be a list of int ids, got {ids!r}")
        _need(isinstance(gshapes, list) and len(gshapes) == len(ids) == len(g["params"]), ValueError,
              f"{where} ({role}) has {len(g['params'])} params, saved {len(ids)} ids and "
              f"{len(gshapes) if isinstance(gshapes, list) else gshapes!r} shapes")
        chain = opt.recipe.chain_for(role)
        given = {key: v for key, v in sg.items() if key not in ("params", "param_names", "role", *SCHEDULER_KEYS)}
        # a scheduler (OneCycleLR, CyclicLR) may have written momentum/betas into a group whose chain
        # reads neither: keep them out of validation, they are inert there
        inert = {key: given.pop(key) for key in ("momentum", "betas") if key in given and key not in chain.hparams}
        values = validate(f"{name}[{role}] (saved group {gi})", chain.hparams, given)
        missing = sorted(set(chain.hparams) - set(values))
        _need(not missing, ValueError, f"{where}: saved group lacks hyperparameters {missing}")
        chain.check(values, f"{name}[{role}] (saved group {gi})")
        for key in SCHEDULER_KEYS:
            if key in sg:
                v = sg[key]
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                _need(ok, ValueError, f"{where}: saved {key!r} must be a finite number >= 0, got {v!r}")
        names = sg.get("param_names")
        if names is not None:
            _need(isinstance(names, list) and len(names) == len(ids) and all(isinstance(s, str) for s in names),
                  TypeError, f"{where}: saved 'param_names' must be a list of {len(ids)} strings, got {names!r}")
        groups.append({**sg, **values, **inert})
        for pid, p, shape in zip(ids, g["params"], gshapes):
            pwhere = f"{name}: parameter {k} ({role} group {gi}, saved id {pid})"
            _need(pid not in seen, ValueError, f"{pwhere}: saved id {pid} appears twice")
            # torch numbers parameters 0, 1, 2... in group order when it saves; any other order is an
            # edit that would hand one parameter's state to another (silently, when shapes agree)
            _need(pid == k, ValueError, f"{pwhere}: saved ids must be 0, 1, 2... in group order, got id {pid} "
                  f"at position {k}")
            seen.add(pid)
            _need(isinstance(shape, (list, tuple)) and tuple(p.shape) == tuple(shape), ValueError,
                  f"{pwhere} has shape {tuple(p.shape)}, saved {shape!r}")
            if pid in state:
                # the state a parameter has under the SAVED hyperparameters (e.g. a momentum buffer that
                # exists once a scheduler has cycled momentum above 0)
                _check_state(pwhere, state[pid], _fresh_state(chain, p.detach(), {**g, **values}), p)
            k += 1
    extra = sorted(set(state) - seen, key=repr)
    _need(not extra, ValueError, f"{name}: state dict has state for ids {extra[:5]} that no param group lists")
    return {"state": state, "param_groups": groups}, training


def _check_state(where: str, saved: Any, fresh: dict[str, Any], p: Tensor) -> None:
    _need(isinstance(saved, dict), TypeError, f"{where}: saved state must be a dict, got {type(saved).__name__}")
    expected = {"step", *fresh}
    _need(set(saved) == expected, ValueError,
          f"{where}: saved state keys {sorted(map(str, saved))} != expected {sorted(expected)}")
    step = saved["step"]
    _need(_is_int(step), TypeError, f"{where}: saved 'step' must be an int, got {step!r}")
    _need(step >= 0, ValueError, f"{where}: saved 'step' must be >= 0, got {step!r}")
    for key, ref in fresh.items():
        v = saved[key]
        if not isinstance(ref, Tensor):  # scalar state: a Python number
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            _need(ok, TypeError if not isinstance(v, (int, float)) else ValueError,
                  f"{where}: saved state {key!r} must be a finite number, got {v!r}")
            continue
        _need(isinstance(v, Tensor), TypeError,
              f"{where}: saved state {key!r} must be a tensor, got {type(v).__name__}")
        _need(v.layout == torch.strided and not v.is_meta, ValueError,
              f"{where}: saved state {key!r} must be a dense tensor with data, got layout {v.layout}, "
              f"device {v.device}")
        _need(tuple(v.shape) == tuple(ref.shape), ValueError,
              f"{where}: saved state {key!r} has shape {tuple(v.shape)}, expected {tuple(ref.shape)}")
        _need(v.dtype == ref.dtype, ValueError,
              f"{where}: saved state {key!r} has dtype {v.dtype}, expected {ref.dtype}")
        _need(v.is_contiguous() or not ref.is_contiguous(), ValueError,
              f"{where}: saved state {key!r} is not contiguous (strides {v.stride()})")
