"""Hyperparameter specifications: default, valid range, unit, and validation.

Every transform declares the hyperparameters it reads from its param group as ``HParam`` specs.
The engine validates each group once, when it is added, so a bad value fails at construction with
a message naming the optimizer, the hyperparameter and the value — never deep inside a step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["HParam", "validate", "DTYPES"]

_INT_LIMIT = 2**53

#: Names accepted wherever a hyperparameter is a dtype (strings keep configs JSON-friendly).
DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "float64": torch.float64,
}


@dataclass(frozen=True)
class HParam:
    """One hyperparameter: its kind, default, allowed values and meaning.

    ``kind`` is one of ``float``, ``int``, ``bool``, ``betas`` (a pair of floats), ``choice``
    (one of ``choices``), ``dtype`` (a torch dtype or its name), or ``any`` (validated by the
    transform that reads it). Bounds apply to floats, ints and each entry of ``betas``.
    """

    kind: str
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()

    def range_text(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.low is None and self.high is None:
            return ""
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{lo}, {hi}{right}"

    def _in_range(self, x: float) -> bool:
        if not math.isfinite(x):
            return False
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        if self.high is not None and (x > self.high or (self.high_open and x == self.high)):
            return False
        return True

    def check(self, owner: str, name: str, value: Any) -> Any:
        """Return the normalised value, or raise naming ``owner``, ``name`` and ``value``."""
        where = f"{owner}: {name}"
        if self.kind == "any":
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"{where} must be a bool, got {value!r}")
            return value
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{where} must be {self.range_text()}, got {value!r}")
            return value
        if self.kind == "dtype":
            if isinstance(value, str) and value in DTYPES:
                return DTYPES[value]
            if isinstance(value, torch.dtype) and value in DTYPES.values():
                return value
            raise ValueError(f"{where} must be a floating dtype ({', '.join(DTYPES)}), got {value!r}")
        if self.kind == "betas":
            if not (isinstance(value, (tuple, list)) and len(value) == 2):
                raise ValueError(f"{where} must be a pair (beta1, beta2), got {value!r}")
            out = tuple(self._number(where + f"[{i}]", v, float) for i, v in enumerate(value))
            return out
        if self.kind in ("float", "int"):
            return self._number(where, value, float if self.kind == "float" else int)
        raise AssertionError(f"unknown HParam kind {self.kind!r}")  # a bug in a spec, not user input

    def _number(self, where: str, value: Any, typ: type) -> float | int:
        if isinstance(value, torch.Tensor) and value.numel() == 1 and typ is float:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where} must be a number, got {value!r}")
        if typ is int and not float(value).is_integer():
            raise ValueError(f"{where} must be an integer, got {value!r}")
        if typ is int and abs(value) > _INT_LIMIT:
            # seeds and counts end up in int64 tensors and generators (and are combined with step counts)
            raise ValueError(f"{where} must be at most 2**53 in size, got {value!r}")
        if not self._in_range(float(value)):
            raise ValueError(f"{where} must be in {self.range_text()}, got {value!r}")
        return typ(value)


def validate(owner: str, specs: dict[str, HParam], values: dict[str, Any]) -> dict[str, Any]:
    """Validate ``values`` against ``specs``; unknown names raise ``TypeError`` listing valid ones."""
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise TypeError(
            f"{owner}: unexpected hyperparameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; valid names are {', '.join(sorted(specs))}"
        )
    return {k: specs[k].check(owner, k, v) for k, v in values.items()}
