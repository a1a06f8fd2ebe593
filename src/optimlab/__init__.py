"""optimlab: modern optimizers for PyTorch, and the lab to test them.

    opt = optimlab.create(model, "muon")      # parameters routed by role
    print(optimlab.describe("muon"))
"""

from .core import ChainOptimizer, Recipe, RoleWarning, assign_roles, available, chain, create, describe, register

__all__ = ["ChainOptimizer", "Recipe", "RoleWarning", "assign_roles", "available", "chain", "create", "describe",
           "register"]
__version__ = "0.1.0"
