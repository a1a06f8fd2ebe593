"""Validation of the parameters handed to an optimizer: what ``ChainOptimizer``, ``add_param_group`` and
``optimlab.create`` accept (an ordered iterable of floating, non-empty tensors on a real device, of
``(name, tensor)`` pairs, or of param-group dicts), refused with a ``TypeError``/``ValueError`` naming the
parameter before anything is built."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

__all__ = ["check_params", "check_param"]


def check_params(params: Any, owner: str, what: str = "params") -> list:
    """``params`` as a list, refusing what is not an iterable of tensors, pairs or group dicts."""
    items = _as_list(params, owner, what)
    for i, g in enumerate(items):
        if isinstance(g, dict):
            if "params" not in g:
                raise ValueError(f"{owner}: param group {i} has no 'params'; got keys {sorted(g)}")
            ps = g["params"]
            inner = [ps] if isinstance(ps, Tensor) else _as_list(ps, owner, f"param group {i}'s params")
            items[i] = g = {**g, "params": inner}
            names = g.get("param_names")
            for j, p in enumerate(inner):
                label = repr(names[j]) if isinstance(names, list) and j < len(names) else f"#{j} of group {i}"
                check_param(p, owner, label)
        else:
            check_param(g, owner, f"#{i}")
    return items


def _as_list(params: Any, owner: str, what: str) -> list:
    if params is None or isinstance(params, (str, bytes, dict)) or not isinstance(params, Iterable):
        raise TypeError(f"{owner}: {what} must be an iterable of tensors, (name, tensor) pairs or param-group "
                        f"dicts, got {type(params).__name__}")
    if isinstance(params, Tensor):
        raise TypeError(f"{owner}: {what} must be an iterable of tensors, not a single tensor (wrap it in a "
                        f"list), got shape {tuple(params.shape)}")
    if isinstance(params, set):
        raise TypeError(f"{owner}: {what} must be an ordered collection, got a set")
    return list(params)


def check_param(p: Any, owner: str, label: str) -> None:
    """A parameter must be a floating, non-empty tensor on a real device."""
    if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str):
        label, p = repr(p[0]), p[1]
    if not isinstance(p, Tensor):
        raise TypeError(f"{owner}: parameter {label} must be a tensor, got {type(p).__name__}")
    if not (p.is_floating_point() or p.is_complex()):
        raise TypeError(f"{owner}: parameter {label} must be a floating-point tensor, got dtype {p.dtype}")
    if p.numel() == 0:
        raise ValueError(f"{owner}: parameter {label} is empty (shape {tuple(p.shape)}); nothing to optimize")
    if p.is_meta:
        raise ValueError(f"{owner}: parameter {label} is on the meta device (shape {tuple(p.shape)}); "
                         f"materialise the model (e.g. to_empty + init) before creating the optimizer")
