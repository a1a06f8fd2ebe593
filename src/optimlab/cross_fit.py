"""Cross-fitted preconditioning: AdamW, Sophia-H and Shampoo whose preconditioner statistics come from a
different part of the batch than their numerator.

    import optimlab
    from optimlab.cross_fit import cross_fit, microbatch_closure

    opt = optimlab.create(model, cross_fit("adamw"), lr=1e-3)       # or "sophia_h", "shampoo"
    for batch in loader:
        micro = [(x, y) for x, y in zip(batch[0].chunk(4), batch[1].chunk(4))]
        opt.step(microbatch_closure(opt, lambda mb: loss_fn(model(mb[0]), mb[1]), micro))

``microbatch_closure`` splits the microbatches into two groups, interleaved (A = even positions, B = odd): the
closure ``opt.step`` calls first computes the mean loss of group A and its gradient (the numerator: Adam's and
Sophia's ``m``, Shampoo's ``m``); its ``statistics`` attribute does the same for group B, which the optimizer
calls once per step in its pre-pass, at the same parameters, for the preconditioner statistics (Adam's ``v``,
Sophia's Hutchinson ``u⊙Hu``, Shampoo's ``L``, ``R`` and grafting ``v``). The parameters and ``.grad`` are
left as group A's. One step loop (the engine's), no change to how the model is written.

One microbatch: nothing to split; A = B and the step is exactly the plain optimizer's (AdamW and Shampoo take
no second evaluation; Sophia-H takes its HVP on the same microbatch, as the plain one does). Cost otherwise:
the batch's forward and backward once (A and B together are the batch), plus for Sophia-H a double backward of
group B on its curvature steps.

Why (C2 of the coverage file; Chen et al., "Correcting Stochastic Update Bias in Preconditioned Language Model
Optimizers", arXiv:2605.20756; the claim ``bias-correction-coupling`` measures the bias): the same-batch
ratio ``m/√v`` is biased because numerator and denominator share the batch's noise; with the two estimated
from independent halves, ``E[m_A/√v_B] = E[m_A]·E[1/√v_B]`` — no coupling term (the inverse root's own Jensen
bias remains; the paper's variance-corrected inversion is not implemented here). The paper's "swap and average"
(both halves in both roles, two updates averaged) would need two sets of EMAs and is not implemented.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .core.recipe import Recipe
from .core.registry import get_recipe
from .core.transform import chain
from .transforms.cross_fit import CrossFitAdamMoments, CrossFitShampoo, CrossFitSophia
from .transforms.hessian import SophiaClip
from .transforms.moments import AdamMoments
from .transforms.shampoo import ShampooPrecondition

__all__ = ["cross_fit", "microbatch_closure", "BASES"]

BASES = ("adamw", "sophia_h", "shampoo")
_SWAP = {AdamMoments: CrossFitAdamMoments, ShampooPrecondition: CrossFitShampoo, SophiaClip: CrossFitSophia}
PAPER = ("Correcting Stochastic Update Bias in Preconditioned Language Model Optimizers, arXiv:2605.20756 "
         "(cross-fitting: numerator and preconditioner statistics from different microbatch groups)")


def _swap(t: Any) -> Any:
    cls = _SWAP.get(type(t))
    if cls is None or getattr(t, "amsgrad", False):
        return t
    return cls()


def cross_fit(base: str | Recipe = "adamw") -> Recipe:
    """The cross-fitted version of ``base`` (``"adamw"``, ``"sophia_h"``, ``"shampoo"``, or a recipe built from
    their transforms): every Adam-moments, Shampoo and Sophia transform of every role takes its statistics from
    the closure's ``statistics`` group. Hyperparameters, defaults and roles are the base's; the recipe is named
    ``"<base>_cf"`` and is not registered: create it with ``optimlab.create(model, cross_fit("adamw"), ...)`` and
    step it with :func:`microbatch_closure`."""
    recipe = get_recipe(base) if isinstance(base, str) else base
    if not isinstance(recipe, Recipe):
        raise TypeError(f"cross_fit: base must be a recipe name or a Recipe, got {type(base).__name__}")
    chains, swapped = {}, 0
    for role, ch in recipe.chains.items():
        ts = [_swap(t) for t in ch.transforms]
        swapped += sum(a is not b for a, b in zip(ts, ch.transforms))
        chains[role] = chain(*ts)
    if not swapped:
        raise ValueError(f"cross_fit: {recipe.name!r} has no Adam-moments, Shampoo or Sophia transform to cross-fit "
                         f"(supported: {', '.join(BASES)})")
    needs = (recipe.needs - {"hvp"}) | {"reevaluate"}  # Sophia's HVP is taken on group B's own closure
    return recipe.replace(f"{recipe.name}_cf", chains=chains, needs=frozenset(needs),
                          summary=f"{recipe.summary} — cross-fitted: statistics from a second microbatch group "
                                  f"(step with optimlab.cross_fit.microbatch_closure)",
                          paper=f"{recipe.paper}; {PAPER}")


def _needs_graph(opt: Any) -> bool:
    return any(getattr(t, "needs_statistics_graph", False)
               for ch in opt.recipe.chains.values() for t in ch.transforms)


def microbatch_closure(opt: Any, loss_fn: Callable[[Any], Any], microbatches: Sequence[Any]) -> Callable[[], Any]:
    """The closure for ``opt.step`` of a :func:`cross_fit` optimizer.

    ``loss_fn(mb)`` returns the mean loss of one microbatch; ``microbatches`` are the batch's (equal sizes, so
    that a group's mean of means is its mean loss). Group A = positions 0, 2, 4…, group B = 1, 3, 5… (one
    microbatch: A = B). Calling the closure zeroes the grads, back-propagates group A's mean loss and returns it;
    ``closure.statistics()`` does the same for group B (with ``create_graph=True`` for Sophia-H, whose
    curvature is an HVP of group B's loss); ``closure.groups`` is 1 or 2.
    """
    mbs = list(microbatches)
    if not mbs:
        raise ValueError("microbatch_closure: needs at least one microbatch, got none")
    groups = (mbs, mbs) if len(mbs) == 1 else (mbs[0::2], mbs[1::2])

    def part(group: list[Any], create_graph: bool) -> Callable[[], Any]:
        def run() -> Any:
            opt.zero_grad()
            loss = sum(loss_fn(mb) for mb in group) / len(group)
            loss.backward(create_graph=create_graph)
            return loss

        return run

    closure = part(groups[0], False)
    closure.statistics = part(groups[1], _needs_graph(opt))  # type: ignore[attr-defined]
    closure.groups = 1 if len(mbs) == 1 else 2  # type: ignore[attr-defined]
    return closure
