"""optimlab: modern optimizers for PyTorch, and the lab to test them.

    opt = optimlab.create(model, "muon")      # parameters routed by role
    print(optimlab.describe("muon"))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["ChainOptimizer", "Recipe", "RoleWarning", "assign_roles", "available", "chain", "create", "describe",
           "register"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from .core import ChainOptimizer, Recipe, RoleWarning, assign_roles, available, chain, create, describe, register


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): importing the package must not import torch, so that `optimlab --help` and
    # `optimlab list` start in a fraction of a second; the engine loads on first use.
    if name in __all__:
        from . import core

        value = getattr(core, name)
        globals()[name] = value
        return value
    if not name.startswith("_"):  # `import optimlab; optimlab.lab.runner` keeps working
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
