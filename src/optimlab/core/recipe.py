"""A Recipe maps each parameter role to a chain, with per-role default hyperparameters.

An optimizer in optimlab is a recipe plus a docstring: Muon is AdamW's recipe with the ``matrix``
role replaced. ``"*"`` stands for every role the recipe does not name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .context import check_needs
from .hparams import HParam, validate
from .transform import Chain, Transform, chain

__all__ = ["Recipe", "every_role"]


@dataclass(frozen=True)
class Recipe:
    """Role → chain, role → default hyperparameters, and which roles plain keywords configure.

    ``main``: the roles that ``create(..., lr=...)`` configures; the others keep their defaults unless
    set with ``per_role``. ``paper``: title and arXiv id. ``summary``: one line. ``rule``: the update
    rule in plain maths, for ``describe()``. ``needs``: what a step needs beyond the gradients, a subset
    of ``{"loss", "reevaluate", "global", "hvp", "jvp"}`` (see :mod:`optimlab.core.context`); ``"loss"``,
    ``"reevaluate"``, ``"hvp"`` and ``"jvp"`` make ``step()`` require a closure.
    """

    name: str
    chains: Mapping[str, Chain]
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    main: tuple[str, ...] = ("*",)
    summary: str = ""
    paper: str = ""
    rule: str = ""
    needs: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "needs", check_needs(self.name, self.needs))

    def chain_for(self, role: str) -> Chain:
        if role in self.chains:
            return self.chains[role]
        if "*" in self.chains:
            return self.chains["*"]
        raise ValueError(f"{self.name}: no chain for role {role!r}; roles: {sorted(self.chains)}")

    def defaults_for(self, role: str) -> dict[str, Any]:
        """Spec defaults, then the recipe's ``"*"`` defaults, then the role's own."""
        specs = self.chain_for(role).hparams
        out = {k: s.default for k, s in specs.items()}
        for key in ("*", role):
            out.update({k: v for k, v in self.defaults.get(key, {}).items() if k in specs})
        return out

    def is_main(self, role: str) -> bool:
        return "*" in self.main or role in self.main

    def main_specs(self) -> dict[str, HParam]:
        """The hyperparameters that plain keywords of ``create()`` may set."""
        specs: dict[str, HParam] = {}
        for role in self.chains:
            if self.is_main(role):
                specs.update(self.chains[role].hparams)
        return specs

    def group_hparams(self, role: str, main: Mapping[str, Any], per_role: Mapping[str, Any]) -> dict[str, Any]:
        """The validated hyperparameters of a role's group: defaults < keywords < per_role."""
        specs = self.chain_for(role).hparams
        values = self.defaults_for(role)
        if self.is_main(role):
            values.update({k: v for k, v in main.items() if k in specs})
        values.update(validate(f"{self.name}[{role}]", specs, dict(per_role)))
        return values

    def replace(self, name: str, *, chains: Mapping[str, Chain] | None = None,
                defaults: Mapping[str, Mapping[str, Any]] | None = None, main: tuple[str, ...] | None = None,
                summary: str = "", paper: str = "", rule: str = "", needs: frozenset[str] | None = None) -> Recipe:
        """A new recipe with some roles' chains and defaults replaced (the others kept)."""
        merged_defaults = {k: dict(v) for k, v in self.defaults.items()}
        for k, v in (defaults or {}).items():
            merged_defaults[k] = {**merged_defaults.get(k, {}), **v} if k not in (chains or {}) else dict(v)
        return Recipe(name=name, chains={**self.chains, **(chains or {})}, defaults=merged_defaults,
                      main=self.main if main is None else main, summary=summary or self.summary,
                      paper=paper or self.paper, rule=rule or self.rule,
                      needs=self.needs if needs is None else needs)

    def roles_described(self) -> dict[str, Chain]:
        return dict(self.chains)


def every_role(name: str, *transforms: Transform, defaults: Mapping[str, Any], summary: str, paper: str,
               rule: str, needs: frozenset[str] = frozenset()) -> Recipe:
    """A recipe that treats every parameter alike: one chain of ``transforms`` for the ``"*"`` role.

    ``defaults`` are that role's default hyperparameters; the other fields are :class:`Recipe`'s. The shape
    of methods that precondition all parameters as one (Gauss–Newton, Hutchinson diagonals, M-FAC, ...).
    """
    return Recipe(name=name, chains={"*": chain(*transforms)}, defaults={"*": dict(defaults)}, summary=summary,
                  paper=paper, rule=rule, needs=needs)
