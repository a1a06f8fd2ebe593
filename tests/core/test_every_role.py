"""core.recipe.every_role: one chain for every role, with the same defaults."""
from __future__ import annotations

import pytest

from optimlab.core.recipe import Recipe, every_role
from optimlab.core.registry import get_recipe
from optimlab.transforms.decay import DecoupledDecay
from optimlab.transforms.hessian import SophiaClip


def test_every_role_builds_the_star_chain_with_copied_defaults():
    defaults = {"lr": 1e-3, "weight_decay": 0.1}
    decay, clip = DecoupledDecay(), SophiaClip()
    r = every_role("x", decay, clip, defaults=defaults, summary="s", paper="p", rule="r", needs=frozenset({"loss"}))
    assert isinstance(r, Recipe)
    assert list(r.chains) == ["*"] and r.chains["*"].transforms == (decay, clip)
    assert r.defaults == {"*": defaults} and r.defaults["*"] is not defaults  # a copy: the caller's dict stays
    defaults["lr"] = 1.0
    assert r.defaults["*"]["lr"] == 1e-3
    assert (r.name, r.summary, r.paper, r.rule, r.main) == ("x", "s", "p", "r", ("*",))
    assert r.needs == frozenset({"loss"})
    # every role gets the same chain and the same defaults
    assert r.chain_for("matrix") is r.chain_for("vector") is r.chains["*"]
    assert r.defaults_for("matrix") == r.defaults_for("embedding")
    assert r.defaults_for("matrix")["lr"] == 1e-3 and r.defaults_for("matrix")["weight_decay"] == 0.1


def test_every_role_default_needs_nothing_and_rejects_unknown_needs():
    r = every_role("y", DecoupledDecay(), defaults={}, summary="", paper="", rule="")
    assert r.needs == frozenset()
    with pytest.raises(ValueError):
        every_role("z", DecoupledDecay(), defaults={}, summary="", paper="", rule="", needs=frozenset({"bogus"}))


def test_sophia_recipes_share_their_defaults_without_aliasing():
    h, g = get_recipe("sophia_h"), get_recipe("sophia_g")
    assert h.defaults == {"*": {"lr": 1e-3, "weight_decay": 0.1}}
    assert g.defaults == {"*": {"lr": 1e-3, "weight_decay": 0.1, "rho": 0.05}}
    assert h.paper == g.paper and "arXiv:2305.14342" in h.paper
