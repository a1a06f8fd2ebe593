"""The registry of optimizers: ``@register``, ``available()``, ``describe()``, ``create()``."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .context import CLOSURE_NEEDS
from .engine import NONFINITE, ChainOptimizer
from .params import check_param, check_params
from .hparams import validate
from .recipe import Recipe
from .roles import BLOCKS_KEY, FINE_ROLES, ROLES, RoleWarning, assign_roles
from .routing import check_row_blocks, route_params
from .state_bytes import tensor_bytes

__all__ = ["register", "available", "describe", "create", "get_recipe", "Description"]

_FACTORIES: dict[str, Callable[[], Recipe]] = {}


def register(name: str) -> Callable[[Callable[[], Recipe]], Callable[[], Recipe]]:
    """Register a recipe factory under ``name`` (the factory takes no arguments)."""

    def deco(factory: Callable[[], Recipe]) -> Callable[[], Recipe]:
        if name in _FACTORIES:
            raise ValueError(f"register: an optimizer named {name!r} is already registered")
        _FACTORIES[name] = factory
        return factory

    return deco


def _load_builtin() -> None:
    from .. import optimizers  # noqa: F401  (registers the built-in recipes)


def available() -> list[str]:
    """Names of all registered optimizers, sorted."""
    _load_builtin()
    return sorted(_FACTORIES)


def get_recipe(name: str) -> Recipe:
    _load_builtin()
    if name not in _FACTORIES:
        close = difflib.get_close_matches(name, list(_FACTORIES), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown optimizer {name!r}{hint} (available: {', '.join(sorted(_FACTORIES))})")
    recipe = _FACTORIES[name]()
    if recipe.name != name:
        raise RuntimeError(f"register: factory for {name!r} returned recipe {recipe.name!r}")
    return recipe


@dataclass
class Description:
    """What ``describe(name)`` returns; ``str()`` gives the printed form."""

    name: str
    summary: str
    rule: str
    paper: str
    roles: dict[str, dict[str, Any]]  # role -> {"chain", "main", "hparams": {name: (default, doc, range)}, "state_bytes"}
    needs: frozenset[str] = frozenset()  # what a step needs beyond gradients (core/context.py)

    def __str__(self) -> str:
        out = [f"{self.name}: {self.summary}"]
        if self.paper:
            out.append(f"paper: {self.paper}")
        if self.rule:
            out += ["update rule:"] + [f"  {line}" for line in self.rule.strip().splitlines()]
        if self.needs:
            closure = " — step(closure) required" if self.needs & CLOSURE_NEEDS else ""
            out.append(f"needs: {', '.join(sorted(self.needs))}{closure}")
        for role, info in self.roles.items():
            tag = "" if info["main"] else "  (set with per_role=)"
            out.append(f"role {role}: {info['chain']}{tag}")
            out.append(f"  rule: {info['rule']}")
            out.append(f"  optimizer state: {info['state_bytes']:g} bytes per parameter (fp32, on an 8 × 8 parameter; "
                       f"optimlab.core.state_bytes for other shapes)")
            for k, (default, doc, rng) in info["hparams"].items():
                r = f" in {rng}" if rng else ""
                out.append(f"  {k:<16} = {default!r:<14} {doc}{r}")
        return "\n".join(out)


def describe(name: str) -> Description:
    """The update rule, paper, per-role chains and defaults (with units), and state bytes per parameter."""
    recipe = get_recipe(name)
    roles: dict[str, dict[str, Any]] = {}
    probe = torch.zeros(8, 8)
    for role in [r for r in ROLES if r in recipe.chains] + (["*"] if "*" in recipe.chains else []):
        chain = recipe.chain_for(role)
        defaults = recipe.defaults_for(role)
        state = chain.init(probe, defaults)
        label = ("every role" if len(recipe.chains) == 1 else "every other role") if role == "*" else role
        roles[label] = {
            "chain": repr(chain),
            "rule": "; ".join(t.rule for t in chain.transforms if t.rule)
            + ("" if chain._apply else ";  p ← p − lr·u"),
            "main": recipe.is_main(role),
            "hparams": {k: (defaults[k], s.doc, s.range_text()) for k, s in chain.hparams.items()},
            "state_bytes": sum(v.numel() * v.element_size() for v in state.values()
                               if isinstance(v, torch.Tensor)) / probe.numel(),
            "state_bytes": tensor_bytes(state.values()) / probe.numel(),
        }
    return Description(name, recipe.summary, recipe.rule, recipe.paper, roles, recipe.needs)


def create(model_or_params: nn.Module | Iterable, name: str | Recipe, *, head: str | Sequence[str] | None = "auto",
           embedding: str | Sequence[str] = (), roles: Mapping[str, str] | None = None,
           per_role: Mapping[str, Mapping[str, Any]] | None = None, nonfinite: str = "error",
           fused: bool = True, verbose: bool = False, process_group: Any = None, **hparams: Any) -> ChainOptimizer:
    """Create optimizer ``name`` (a registered name, or a :class:`Recipe`) for a model (parameters routed by
    role) or for params / param groups.

    Keyword hyperparameters configure the recipe's main roles (all roles for AdamW; the ``matrix`` role
    for Muon); ``per_role={"embedding": {"lr": ...}}`` sets any role's. ``head``, ``embedding`` and
    ``roles`` steer role assignment (see :func:`optimlab.core.roles.assign_roles`; the finer roles router /
    gate / down / expert are detected when the recipe has chains for them). ``model.named_parameters()``
    (or ``(name, tensor)`` pairs, or groups with ``"param_names"``) is routed by names with the same rules
    and takes the same three keywords (:mod:`optimlab.core.routing`); bare tensors are routed by ``ndim``,
    with a :class:`RoleWarning` when one looks like an embedding or head and the recipe's ``matrix`` update
    differs from theirs. Fused q/k/v weights (``nn.MultiheadAttention.in_proj_weight``) get their own group
    with ``ortho_blocks=3`` under orthogonalizing recipes; ``ortho_blocks=1`` opts out. ``verbose`` prints
    the role table. ``nonfinite``, ``fused`` and ``process_group`` (distributed training, opt-in; see
    docs/distributed.md): see :class:`ChainOptimizer`.
    """
    if isinstance(name, Recipe):  # an unregistered recipe (e.g. optimlab.optimizers.ghosts.safe_radius("adam"))
        recipe, name = name, name.name
    elif not isinstance(name, str):
        raise TypeError(f"create: the optimizer name must be a str (see optimlab.available()), got {name!r}")
    else:
        recipe = get_recipe(name)
    main = validate(name, recipe.main_specs(), hparams)
    if per_role is not None and not isinstance(per_role, Mapping):
        raise TypeError(f"{name}: per_role must be a dict {{role: {{hyperparameter: value}}}}, got {per_role!r}")
    per_role = dict(per_role or {})
    bad = sorted(set(per_role) - set(ROLES), key=repr)
    if bad:
        raise ValueError(f"{name}: per_role keys must be roles {ROLES}, got {bad}")
    for role, values in per_role.items():
        if not isinstance(values, Mapping):
            raise TypeError(f"{name}: per_role[{role!r}] must be a dict of hyperparameters, got {values!r}")
    if nonfinite not in NONFINITE:
        raise ValueError(f"{name}: nonfinite must be one of {NONFINITE}, got {nonfinite!r}")
    if not isinstance(fused, bool):
        raise TypeError(f"{name}: fused must be a bool, got {fused!r}")
    if not isinstance(model_or_params, nn.Module):
        # a list, so that a generator is read once; every entry is checked here (floating, non-empty,
        # not on the meta device; group dicts have 'params') rather than at the first step
        model_or_params = check_params(model_or_params, name, what="model_or_params")
    else:
        for pname, p in model_or_params.named_parameters():
            if p.requires_grad:
                check_param(p, name, repr(pname))
    # finer roles (router, gate, down, expert) only for recipes that treat them apart: under any
    # other recipe those weights stay ``matrix`` and get the recipe's matrix update
    fine = bool(set(FINE_ROLES) & set(recipe.chains))
    split = _block_roles(recipe, hparams, per_role)
    if isinstance(model_or_params, nn.Module):
        assignment = assign_roles(model_or_params, head=head, embedding=embedding, roles=roles, fine=fine)
        groups = assignment.groups(split)
        if not groups:
            raise ValueError(f"{name}: the model has no trainable parameters")
    else:
        routed = route_params(model_or_params, head=head, embedding=embedding, roles=roles, fine=fine,
                              split=split)
        groups, assignment = routed.groups, routed.assignment
        if routed.suspects and _routing_matters(recipe):
            listed = "; ".join(f"tensor #{i} {why}" for i, why in routed.suspects)
            warnings.warn(f"{name}: bare tensors are routed by ndim, so these go to the 'matrix' role "
                          f"({recipe.chain_for('matrix')}) though they look like an embedding or output head: "
                          f"{listed}. Pass the model (optimlab.create(model, ...)), model.named_parameters(), or "
                          f"param groups with 'role': 'embedding' / 'head'", RoleWarning, stacklevel=2)
    if verbose and assignment is not None:
        print(assignment.summary({g["role"]: repr(recipe.chain_for(g["role"])) for g in groups}))
    for g in groups:
        given = {k: v for k, v in g.items() if k not in ("params", "param_names", "role")}
        g.update(recipe.group_hparams(g["role"], main, per_role.get(g["role"], {})))
        g.update(given)  # a user's own param-group values win
    check_row_blocks(groups, name)
    return ChainOptimizer(groups, recipe, nonfinite=nonfinite, fused=fused, process_group=process_group)


def _block_roles(recipe: Recipe, hparams: Mapping[str, Any],
                 per_role: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Roles whose fused q/k/v weights get a group of their own with ``ortho_blocks``: those whose chain
    declares it (it orthogonalizes), unless the user set ``ortho_blocks`` for the role (1 opts out)."""
    out = set()
    for role in ROLES:
        try:
            specs = recipe.chain_for(role).hparams
        except ValueError:
            continue
        mine = per_role.get(role)
        user = ((isinstance(mine, Mapping) and BLOCKS_KEY in mine)
                or (recipe.is_main(role) and BLOCKS_KEY in hparams))
        if BLOCKS_KEY in specs and not user:
            out.add(role)
    return out


def _routing_matters(recipe: Recipe) -> bool:
    """Whether putting an embedding or head into ``matrix`` changes its update under this recipe."""
    try:
        matrix = recipe.chain_for("matrix")
    except ValueError:
        return False
    for role in ("embedding", "head"):
        try:
            other = recipe.chain_for(role)
        except ValueError:
            continue
        if other is not matrix and (repr(other) != repr(matrix)
                                    or recipe.defaults_for(role) != recipe.defaults_for("matrix")):
            return True
    return False
