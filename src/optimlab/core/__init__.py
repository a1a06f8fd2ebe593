"""The engine: transforms, chains, recipes, the optimizer, role routing, the registry."""

from .engine import ChainOptimizer
from .hparams import HParam
from .model_batch import ModelBatch, model_closure
from .recipe import Recipe
from .registry import available, create, describe, get_recipe, register
from .roles import ROLES, RoleAssignment, RoleWarning, assign_roles
from .transform import Bucket, Chain, Transform, chain

__all__ = ["ChainOptimizer", "HParam", "ModelBatch", "model_closure", "Recipe", "available", "create", "describe", "get_recipe", "register",
           "ROLES", "RoleAssignment", "RoleWarning", "assign_roles", "Bucket", "Chain", "Transform", "chain"]
