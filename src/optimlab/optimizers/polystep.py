"""PolyStep: gradient-free training by softmax-weighted (one-sided entropic OT) barycentric steps."""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms.polystep import PolyStepUpdate

PAPER = "Le, Training Non-Differentiable Networks via Optimal Transport (PolyStep), arXiv:2605.01928"


@register("polystep")
def polystep() -> Recipe:
    """PolyStep: loss at rotated polytope vertices in a per-tensor subspace, softmax weights, barycentric step.

    Update (function values only): each tensor's ``r(m + n')`` subspace coordinates (fixed Gaussian projection
    ``P``, entries N(0, 1/c); 1-D tensors unprojected) are cut into particles of ``d`` coordinates; for every
    particle b and vertex j of the unit template rotated by a fresh Haar ``R_b``: ``u_bj = R_b v_j``,
    ``C_bj = f(x + P_b·probe·u_bj)``; ``W_bj = softmax_j(−(C_bj − min_j C_bj)/eps)``;
    ``x ← x + lr·Σ_b P_b Σ_j W_bj u_bj`` (all particles at once). Defaults: lr 0.1 (the step radius,
    subspace-coordinate units per step), probe 0.1 (probe radius, same units), eps 0.1 (loss units), rank 4,
    particle_dim 8, polytope 'simplex' (d+1 vertices), seed 0. The public library's defaults (epsilon 0.1,
    step_radius 1.0 and probe_radius 2.0 both multiplied by epsilon, one probe at half the probe radius) are
    these numbers; its radii are decoupled from the temperature here. The paper's softmax solver, simplex,
    d = 8 and per-layer subspace; rank 4 is its ablation's best per-layer rank. Left out (options of the
    paper's code, off in its defaults or called acceleration heuristics there): Sinkhorn (two-sided OT),
    momentum, biased rotations, plan reuse, subspace rotation/absorb, quadratic model, CMA adaptation.
    Schedules: the step radius is ``lr`` (any torch LR scheduler; the paper's theory mode is
    ``lr_t = lr_0 (t+1)^{-0.6}``); ε and the probe radius are constant. Cost per step:
    1 + V·Σ⌈c_i/d⌉ forward passes. Needs ``step(closure)`` with a forward-only closure. Every role.
    State: none (projections and rotations regenerated from seed and step). Paper: arXiv:2605.01928.
    """
    return Recipe(name="polystep", chains={"*": chain(PolyStepUpdate())}, defaults={"*": {"lr": 0.1}},
                  summary="PolyStep: softmax-weighted barycentric steps over rotated polytope probes "
                          "(function values only)",
                  paper=PAPER,
                  rule="C_bj = f(x + P_b·probe·R_b v_j);  W = softmax_j(−(C − min_j C)/ε);  "
                       "x ← x + lr·Σ_b P_b Σ_j W_bj R_b v_j",
                  needs=frozenset({"value"}))
