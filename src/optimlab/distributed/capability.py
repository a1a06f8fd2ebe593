"""What each transform needs when parameters live on several processes, and whether a recipe can run so.

Three kinds of transform:

* **owner** transforms (:data:`OWNER`): whole-matrix work (orthogonalization, spectral maps, Dion's power
  iteration). Under DDP each parameter gets one owner rank that computes it; the results (the update, and
  the transform's own state) are all-gathered. Under FSDP2 the shards are repartitioned to the owner and
  back. Each entry gives the FLOP model used to balance the owners (:func:`owners.matrix_flops`).
* **elementwise** transforms (:data:`ELEMENTWISE`): an output element depends only on the same element of
  the inputs and state, and on per-parameter scalars that do not depend on tensor values (shape factors,
  step counts, the learning rate). They run on FSDP2's local shards with no communication.
* anything else: correct under DDP (every rank holds the whole parameter and the same gradient, so every
  rank computes the same thing, redundantly), refused under FSDP2 with the reason.

A recipe that declares ``needs`` of ``"global"``, ``"reevaluate"`` or ``"hvp"`` is refused under FSDP2 (the
global reductions and re-evaluations would see local shards only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.recipe import Recipe
from ..core.transform import Chain, Transform
from ..transforms import (AdaGradNormStep, AdamaxMoments, AdamMoments, CoupledDecay, DecoupledDecay, DionLowRank, EMAMomentum,
                          HeavyBall, LionSign, Orthogonalize, ScaleByShape, SchattenMap, Sign)
from ..transforms.classic import AdaGradScale, RMSPropScale
from ..transforms.extrapolation import SecantCorrection
from ..transforms.fisher import MFac, ScaledFactor
from ..transforms.polyak import EnergyAdaptive
from ..transforms.schedule_free import ScheduleFree, SecondMomentNormalize
from .owners import matrix_flops

__all__ = ["CLOSURE_NEEDS", "ddp_refusal", "OWNER", "ELEMENTWISE", "SHAPE_ONLY", "GRAD_READERS", "owner_index", "owner_segment", "segment_cost", "unit_cost", "fsdp_refusal", "check_fsdp"]


def _ns_cost(shape: Any, g: dict) -> float:
    exact = g.get("ortho_backend") in ("svd", "qdwh")
    return matrix_flops(shape, "svd" if exact else "newton_schulz", steps=g.get("ns_steps", 5),
                        ortho_3d=g.get("ortho_3d", "flatten"), blocks=g.get("ortho_blocks", 1))


def _dion_cost(shape: Any, g: dict) -> float:
    m, n = shape[0], 1
    for d in shape[1:]:
        n *= d
    r = max(1, round(g.get("rank_fraction", 1.0) * min(m, n)))
    return matrix_flops(shape, "power_iteration", rank=r)


#: owner transform class -> cost model (shape, group) -> FLOPs
OWNER: dict[type, Callable[[Any, dict], float]] = {
    Orthogonalize: _ns_cost,
    SchattenMap: lambda shape, g: matrix_flops(shape, "svd", ortho_3d=g.get("ortho_3d", "flatten")),
    DionLowRank: _dion_cost,
}

#: transforms that run on local shards as they are (see the module doc for the rule)
ELEMENTWISE: tuple[type, ...] = (AdamMoments, AdamaxMoments, HeavyBall, EMAMomentum, CoupledDecay, DecoupledDecay,
                                 Sign, LionSign, RMSPropScale, AdaGradScale, ScaleByShape, ScheduleFree,
                                 SecondMomentNormalize)


#: transforms that read the raw gradient (not only the update): under FSDP2 the gradient shards travel to the
#: owner with the update when one of them is in a chain's whole-matrix segment
GRAD_READERS: tuple[type, ...] = (AdaGradNormStep, EnergyAdaptive, MFac)

#: transforms that read parameter *values* in a whole-matrix segment: refused under FSDP2 (the owner holds the
#: update and state of a matrix, not the matrix itself)
PARAM_READERS: tuple[type, ...] = (SecantCorrection, ScaledFactor)

#: elementwise transforms that read their parameters' *shape* (not values): on local shards they are given the
#: global shape (the DTensor parameters) and their per-parameter scale is applied to the shards
SHAPE_ONLY: tuple[type, ...] = (ScaleByShape,)


def _is_owner(t: Transform) -> bool:
    return type(t) in OWNER


def owner_index(chain: Chain) -> int | None:
    """Index of the chain's first owner transform (None: the chain runs locally on every rank). A chain
    class with its own ``step`` (Drop-Muon's :class:`SubsetChain`) runs locally: its step decides what runs."""
    if type(chain).step is not Chain.step:
        return None
    return next((i for i, t in enumerate(chain.transforms) if _is_owner(t)), None)


def owner_segment(chain: Chain) -> tuple[int, int] | None:
    """``(start, stop)``: the transforms that run on an owner's whole matrices under FSDP2 — from the first to
    the last transform that is not elementwise (NorMuon's row normalisation after its orthogonalization,
    AdaMuon's RMS match, a trust ratio...); None when every transform is elementwise (the chain runs on
    local shards)."""
    idx = [i for i, t in enumerate(chain.transforms) if not isinstance(t, ELEMENTWISE)]
    return (idx[0], idx[-1] + 1) if idx else None


def segment_cost(chain: Chain, seg: tuple[int, int], shape: Any, group: dict) -> float:
    """FLOPs of a segment for one parameter: its owner transforms' models, else ~10 FLOPs per element."""
    costs = [unit_cost(t, shape, group) for t in chain.transforms[seg[0]:seg[1]] if _is_owner(t)]
    numel = 1
    for d in shape:
        numel *= d
    return sum(costs) if costs else 10.0 * numel


def unit_cost(t: Transform, shape: Any, group: dict) -> float:
    return OWNER[type(t)](shape, group)


def fsdp_refusal(recipe: Recipe, roles: list[str]) -> str | None:
    """Why ``recipe`` cannot run on FSDP2-sharded parameters of these roles (None: it can)."""
    bad = sorted(recipe.needs & {"global", "reevaluate", "hvp", "value", "jvp", "outputs"})
    if bad:
        return f"it needs {bad} (reductions / re-evaluations over whole parameters, not local shards)"
    for role in roles:
        chain = recipe.chain_for(role)
        if type(chain).step is not Chain.step:
            return (f"its {role!r} chain ({chain}) has a step of its own ({type(chain).__name__}), which "
                    f"works on whole parameters")
        seg = owner_segment(chain)
        reader = next((t for t in chain.transforms[seg[0]:seg[1]] if isinstance(t, PARAM_READERS)), None) \
            if seg is not None else None
        if reader is not None:
            return (f"transform {reader.name!r} of its {role!r} chain ({chain}) reads the parameter's values "
                    f"together with whole-matrix work")
        if seg is not None and seg[1] == len(chain.transforms) and hasattr(chain.transforms[-1], "apply"):
            return (f"its {role!r} chain ({chain}) applies the update in {chain.transforms[-1].name!r}, which "
                    f"is not elementwise (it needs the whole matrix where the parameter's shards live)")
    return None


#: needs whose values come from the closure beyond its first loss: Hessian-vector / Jacobian-vector products,
#: loss values at perturbed points (zeroth order), re-evaluations (their losses, and gradients when the closure
#: does not go through DDP). Each rank's closure sees its own batch and DDP all-reduces none of these.
CLOSURE_NEEDS = frozenset({"hvp", "jvp", "value", "reevaluate", "outputs"})  # outputs: Gauss–Newton products


def ddp_refusal(recipe: Recipe, closure: str) -> str | None:
    """Why ``recipe`` cannot run on replicated parameters with per-rank closures (None: it can)."""
    bad = sorted(recipe.needs & CLOSURE_NEEDS)
    if closure == "global" or not bad:
        return None
    return (f"it needs {bad} from the closure: each rank's closure sees its own batch and DDP all-reduces none "
            f"of these (double-backward products, loss values at perturbed points, re-evaluated losses), so the "
            f"replicas would diverge. If every rank's closure computes the global quantity (the same batch on "
            f"every rank, or a closure that all-reduces what it returns), say so: "
            f"optimlab.distributed.distribute(opt, group, closure='global') on an optimizer created without "
            f"process_group")


def check_fsdp(recipe: Recipe, roles: list[str]) -> None:
    """Raise a ``ValueError`` naming the reason when ``recipe`` cannot run on sharded parameters."""
    why = fsdp_refusal(recipe, roles)
    if why is not None:
        raise ValueError(f"{recipe.name}: cannot run on FSDP2 / DTensor-sharded parameters: {why}. Under DDP "
                         f"(replicated parameters) it runs; see docs/distributed.md")
