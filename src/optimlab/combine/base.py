"""The combiner contract: several losses in, one direction over all parameters out, written to ``.grad``.

A combiner maps the per-loss Jacobian ``J`` ([m, n], one row per loss) — and, for those that need them,
the loss values — to one direction ``d`` ([n]). ``combiner.backward(losses, params)`` builds ``J`` with
``torch.autograd.grad``, combines it and adds ``d`` to ``.grad`` like ``loss.backward()`` would; then any
optimizer's unchanged ``step()`` follows::

    combiner = UPGrad()
    opt.zero_grad()
    combiner.backward([loss_a, loss_b], model)
    opt.step()

Stateful combiners (Bloop's EMA, primal–dual's multipliers) save and restore their state with
``state_dict()`` / ``load_state_dict()``; a loaded state is validated as strictly as construction.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .jacobian import check_losses, jacobian, write_grad

__all__ = ["Combiner", "need", "check_hparam"]


def need(cond: bool, err: type, msg: str) -> None:
    if not cond:
        raise err(msg)


def check_hparam(where: str, name: str, value: Any, low: float, high: float, *, low_open: bool = False,
                 high_open: bool = False) -> float:
    """A float hyperparameter in [low, high] (open ends as told); TypeError/ValueError naming it."""
    need(isinstance(value, (int, float)) and not isinstance(value, bool), TypeError,
         f"{where}: {name} must be a number, got {type(value).__name__}")
    v = float(value)
    lo_ok = v > low if low_open else v >= low
    hi_ok = v < high if high_open else v <= high
    need(math.isfinite(v) and lo_ok and hi_ok, ValueError,
         f"{where}: {name} must be in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}, "
         f"got {value}")
    return v


class Combiner:
    """Base class. Subclasses set ``name`` (and ``n_losses`` when fixed) and implement ``combine``."""

    name = "combiner"
    n_losses: int | None = None  # None: any number >= 1
    needs_values = False  # whether combine() reads the loss values

    def combine(self, J: Tensor, values: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def _check_rows(self, J: Tensor) -> None:
        need(isinstance(J, Tensor) and J.dim() == 2 and J.shape[0] >= 1, ValueError,
             f"{self.name}: the Jacobian must be a [losses, parameters] matrix with at least one row, got "
             f"{tuple(J.shape) if isinstance(J, Tensor) else type(J).__name__}")
        if self.n_losses is not None:
            need(J.shape[0] == self.n_losses, ValueError,
                 f"{self.name}: needs exactly {self.n_losses} losses ({self._order()}), got {J.shape[0]}")
        need(bool(torch.isfinite(J).all()), ValueError, f"{self.name}: the Jacobian has non-finite entries")

    def _order(self) -> str:
        return "any order"

    def backward(self, losses: Sequence[Tensor] | Tensor, params: nn.Module | Sequence[Tensor], *,
                 allow_unused: bool = False) -> Tensor:
        """Per-loss gradients → combined direction → added to ``.grad``. Returns the direction [n]."""
        losses = check_losses(losses, self.name)
        if self.n_losses is not None:
            need(len(losses) == self.n_losses, ValueError,
                 f"{self.name}: needs exactly {self.n_losses} losses ({self._order()}), got {len(losses)}")
        values = torch.stack([loss.detach().to(torch.float64) for loss in losses])
        J = jacobian(losses, params, allow_unused=allow_unused, where=self.name)
        d = self.combine(J, values)
        write_grad(d, params, self.name)
        return d

    # stateless by default
    def state_dict(self) -> dict[str, Any]:
        return {"combiner": self.name}

    def load_state_dict(self, sd: Any) -> None:
        self._check_sd(sd, {"combiner"})

    def _check_sd(self, sd: Any, keys: set[str]) -> None:
        need(isinstance(sd, dict), TypeError, f"{self.name}: a state dict must be a dict, got {type(sd).__name__}")
        need(set(sd) == keys, ValueError, f"{self.name}: state dict keys {sorted(map(str, sd))}, expected "
             f"{sorted(keys)}")
        need(sd["combiner"] == self.name, ValueError,
             f"{self.name}: state dict was saved by combiner {sd['combiner']!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
