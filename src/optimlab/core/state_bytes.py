"""Optimizer-state memory: the bytes an optimizer actually holds, and the bytes its recipe predicts.

* :func:`held_state_bytes` - every tensor in ``optimizer.state`` (any ``torch.optim.Optimizer``), in total
  and per role for a :class:`~optimlab.core.engine.ChainOptimizer`, with the number of parameters;
* :func:`predicted_state_bytes` - what the recipe's chains create for each parameter (``chain.init`` under
  the group's hyperparameters), without a step;
* :func:`state_bytes_per_param` - the figure :func:`optimlab.describe` prints: bytes per parameter of one
  role's state on a parameter of a given shape (fp32 unless ``dtype`` says otherwise).

Python-number state (step counts, schedule-free's weight sum) is not counted: it is a few bytes per
tensor, not per parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["StateBytes", "held_state_bytes", "predicted_state_bytes", "state_bytes_per_param", "tensor_bytes"]


def tensor_bytes(values: Any) -> int:
    """Bytes of the tensors among ``values`` (an iterable of state values)."""
    return sum(v.numel() * v.element_size() for v in values if isinstance(v, Tensor))


@dataclass
class StateBytes:
    """``total`` bytes of state over ``n_params`` parameter entries; ``by_role``: role -> (bytes, entries)."""

    total: int
    n_params: int
    by_role: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def per_param(self) -> float:
        return self.total / max(self.n_params, 1)

    def role_per_param(self, role: str) -> float:
        b, n = self.by_role[role]
        return b / max(n, 1)

    def add(self, role: str, nbytes: int, n_params: int) -> None:
        """Count ``nbytes`` of state over ``n_params`` entries, in the total and under ``role``."""
        old = self.by_role.get(role, (0, 0))
        self.by_role[role] = (old[0] + nbytes, old[1] + n_params)
        self.total += nbytes
        self.n_params += n_params


def _roles(optimizer: torch.optim.Optimizer) -> list[tuple[str, dict]]:
    return [(g.get("role", f"group{i}"), g) for i, g in enumerate(optimizer.param_groups)]


def held_state_bytes(optimizer: torch.optim.Optimizer) -> StateBytes:
    """The state tensors ``optimizer`` holds now, over all its parameters (with state or not)."""
    out = StateBytes(0, 0)
    for role, g in _roles(optimizer):
        out.add(role, sum(tensor_bytes(optimizer.state[p].values()) for p in g["params"] if p in optimizer.state),
                sum(p.numel() for p in g["params"]))
    return out


def predicted_state_bytes(optimizer: Any) -> StateBytes:
    """The state a :class:`ChainOptimizer` will hold once every parameter has stepped: each chain's
    ``init`` on each parameter under its group's hyperparameters."""
    out = StateBytes(0, 0)
    for role, g in _roles(optimizer):
        chain = optimizer.recipe.chain_for(g["role"])
        out.add(role, sum(tensor_bytes(chain.init(p.detach(), g).values()) for p in g["params"]),
                sum(p.numel() for p in g["params"]))
    return out


def state_bytes_per_param(name: str, shape: Sequence[int] = (8, 8), role: str = "matrix",
                          dtype: torch.dtype = torch.float32, **hparams: Any) -> float:
    """Bytes per parameter of optimizer ``name``'s state for one parameter of ``shape`` in ``role``,
    at the recipe's defaults for that role updated by ``hparams``."""
    from .registry import get_recipe

    recipe = get_recipe(name)
    chain = recipe.chain_for(role)
    group = recipe.defaults_for(role)
    group.update({k: v for k, v in hparams.items() if k in chain.hparams})
    probe = torch.zeros(tuple(shape), dtype=dtype)
    return tensor_bytes(chain.init(probe, group).values()) / probe.numel()
