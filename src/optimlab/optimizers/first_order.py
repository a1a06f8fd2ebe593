"""First-order methods that change how far or where to step: optimistic AMSGrad, Jain et al.'s accelerated SGD,
β-normalized GD, SGDM with Exp(1) random scaling, and the secant-corrected Adam.

All apply to every role with one chain; none needs a closure or a reduction over all parameters.
"""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import Chain, Transform, chain
from ..transforms import CoupledDecay, DecoupledDecay, EMAMomentum
from ..transforms.classic import NormPowerScale
from ..transforms.extrapolation import AcceleratedSGDStep, ExpRandomScale, OptimisticAMSGradStep, SecantCorrection
from .adam import adam


@register("optimistic_amsgrad")
def optimistic_amsgrad() -> Recipe:
    """Optimistic AMSGrad: AMSGrad plus an optimistic half-step along the predicted next momentum.

    Update (paper form, parameters hold ``w_t``): ``θ_t = β1 θ_{t−1} + (1−β1) g_t``;
    ``v_t = β2 v_{t−1} + (1−β2) g_t²``; ``v̂_t = max(v̂_{t−1}, v_t)``;
    ``w_{t+½} = w_{t−½} − lr·θ_t/(√v̂_t + ε)``;  ``h_{t+1} = β1 θ_t + (1−β1) m_{t+1}``;
    ``w_{t+1} = w_{t+½} − lr·h_{t+1}/(√v̂_t + ε)``, with the guess ``m_{t+1} = g_t`` of the next gradient;
    decoupled weight decay ``p ← (1 − lr λ) p`` (0 by default, not in the paper).
    Defaults: lr 1e-3 (parameter units per step), betas (0.9, 0.999), eps 1e-8 (gradient units),
    weight_decay 0. Every role. State: 16 bytes per fp32 parameter.
    What the public description leaves open, and our choices: the gradient predictor (the paper extrapolates
    from a window of past gradients; we take the last gradient, the simplest optimistic guess); whether ``h``
    mixes ``θ_t`` or ``θ_{t−1}`` (we take ``θ_t``: ``h`` is then the next momentum if the guess is exact); ε added
    to ``√v̂`` rather than starting ``v̂`` at ε; no bias correction (as AMSGrad's paper); with a schedule, the
    two half-steps share the current lr (the paper's ``η_t``, ``η_{t+1}``), so ``lr = 0`` is no step.
    Paper: Wang, Li, Karimi & Li, An Optimistic Acceleration of AMSGrad for Nonconvex Optimization
    (arXiv:1903.01435).
    """
    return Recipe(name="optimistic_amsgrad", chains={"*": chain(OptimisticAMSGradStep(), DecoupledDecay())},
                  defaults={"*": {"weight_decay": 0.0}},
                  summary="Optimistic AMSGrad: AMSGrad with a half-step along the predicted next momentum",
                  paper="Wang, Li, Karimi & Li, An Optimistic Acceleration of AMSGrad for Nonconvex Optimization "
                        "(arXiv:1903.01435)")


@register("accelerated_sgd")
def accelerated_sgd() -> Recipe:
    """Accelerated SGD of Jain, Kakade, Kidambi, Netrapalli & Sidford (not torch.optim.ASGD, which averages).

    Update (parameters hold ``y``; ``v₀ = y₀``; ``u = g + λ y``)::

        x̄ = y − δ·u;   v ← β·y + (1−β)·v − γ·u;   y ← α·x̄ + (1−α)·v

    Parametrization (Kidambi et al.'s AccSGD): short step ``δ = lr``, long step ``γ = c·ξ·lr``,
    ``β = c²ξ/κ``, ``α = κ/(κ + cξ)`` from κ (long-step parameter ~ condition number), ξ (statistical
    advantage, ≤ √κ) and c (0.7). Implemented with one buffer in gradient units, ``B = (y − v)/lr``, so that
    a scheduled lr scales the whole step (``lr = 0``: no step); with a constant lr it is the form above.
    Defaults: lr 1e-2 (parameter units per gradient unit: the short step δ), kappa 1000, xi 10,
    small_const 0.7, weight_decay 0 (L2, coupled, as AccSGD). Every role. State: 4 bytes per fp32 parameter.
    Papers: Jain, Kakade, Kidambi, Netrapalli & Sidford, Accelerating Stochastic Gradient Descent for least
    squares regression (arXiv:1704.08227); Kidambi, Netrapalli, Jain & Kakade, On the insufficiency of
    existing momentum schemes for Stochastic Optimization (arXiv:1803.05591).
    """
    return Recipe(name="accelerated_sgd", chains={"*": chain(CoupledDecay(), AcceleratedSGDStep())},
                  defaults={"*": {"lr": 1e-2}},
                  summary="Accelerated SGD (Jain et al. 2018, AccSGD parametrization κ, ξ); not torch's ASGD",
                  paper="Jain, Kakade, Kidambi, Netrapalli & Sidford, Accelerating Stochastic Gradient Descent "
                        "for least squares regression (arXiv:1704.08227)")


@register("normalized_gd")
def normalized_gd() -> Recipe:
    """β-normalized gradient descent, per tensor.

    Update: ``p ← p − lr·g/(δ + ‖g‖)^β`` per tensor (the paper: ``δ = 0``, one vector; ``β = 1``, ``δ > 0``:
    the step ``g/(δ + ‖g‖)``, gradient descent with step ``lr/δ`` for small gradients). Decoupled weight
    decay (0 by default).
    Defaults: lr 1e-2 (parameter norm units per step at β = 1, δ = 0), norm_power β 1 (the paper's
    β ∈ [α, 1] for α-symmetric generalized-smooth f), norm_offset δ 0 (gradient norm units), weight_decay 0.
    Every role; no state. The paper's stochastic method (SPIDER: a gradient difference at the previous point on
    the same batch) needs a closure and is left to a later change.
    Paper: Chen, Zhou, Liang & Lu, Generalized-Smooth Nonconvex Optimization is As Efficient As Smooth
    Nonconvex Optimization (arXiv:2303.02854).
    """
    return Recipe(name="normalized_gd", chains={"*": chain(NormPowerScale(), DecoupledDecay())},
                  defaults={"*": {"lr": 1e-2, "weight_decay": 0.0}},
                  summary="β-normalized gradient descent: g/(δ + ‖g‖)^β per tensor",
                  paper="Chen, Zhou, Liang & Lu, Generalized-Smooth Nonconvex Optimization is As Efficient As "
                        "Smooth Nonconvex Optimization (arXiv:2303.02854)")


@register("random_scaling_sgdm")
def random_scaling_sgdm() -> Recipe:
    """SGD with EMA momentum whose every step is scaled by an Exp(1) random number.

    Update: ``u = g + λ p``; ``m ← β m + (1−β) u``; ``p ← p − s_t·lr·m`` with ``s_t ~ Exp(1)`` i.i.d. over
    steps (mean 1), the same ``s_t`` for every parameter stepped at step ``t``.
    The draws are counter-based (``s_t`` is a hash of ``(seed, t)``,
    :func:`~optimlab.transforms.extrapolation.exp1_draw`): the seed is a hyperparameter and the generator's only
    state is the step count already in the state dict, so a resumed run draws the same numbers, bit for bit.
    Defaults: lr 1e-2 (parameter units per gradient unit), momentum β 0.9, nesterov False, seed 0,
    weight_decay 0 (L2, coupled). Every role. State: 4 bytes per fp32 parameter.
    Choice: the gradient is taken at the current iterate (the parameters), as in plain SGDM.
    Paper: Zhang & Cutkosky, Random Scaling and Momentum for Non-smooth Non-convex Optimization
    (arXiv:2405.09742).
    """
    return Recipe(name="random_scaling_sgdm", chains={"*": chain(CoupledDecay(), EMAMomentum(), ExpRandomScale())},
                  defaults={"*": {"lr": 1e-2, "momentum": 0.9, "nesterov": False}},
                  summary="SGD with momentum, each step scaled by s_t ~ Exp(1) (seeded, resumable)",
                  paper="Zhang & Cutkosky, Random Scaling and Momentum for Non-smooth Non-convex Optimization "
                        "(arXiv:2405.09742)")


def with_secant_correction(recipe: Recipe, name: str) -> Recipe:
    """``recipe`` with :class:`~optimlab.transforms.extrapolation.SecantCorrection` in front of every chain
    (the correction is plug-in: it only rewrites the gradient the chain sees)."""
    chains: dict[str, Chain] = {}
    for role, c in recipe.chains.items():
        transforms: tuple[Transform, ...] = (SecantCorrection(), *c.transforms)
        chains[role] = chain(*transforms)
    return recipe.replace(name, chains=chains, defaults={role: recipe.defaults.get(role, {}) for role in chains})


@register("secant_adam")
def secant_adam() -> Recipe:
    """Adam fed a secant-corrected gradient (optimlab's reading of a curvature-aware correction for PINNs).

    Update (per tensor): ``κ_t = ‖g_t − g_{t−1}‖/‖θ_t − θ_{t−1}‖`` (secant curvature, step-normalized);
    ``c_t = γ·κ̄/(κ̄ + κ_t)`` with ``κ̄ ← β_κ κ̄ + (1−β_κ) κ_t`` (κ̄ before this step's update);
    ``g̃_t = g_t + c_t·(g_t − g_{t−1})``; then torch.optim.Adam's step on ``g̃_t`` (L2 weight decay coupled).
    No correction at a tensor's first step.
    Defaults: Adam's (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0) plus secant_gain γ 0.5 (unitless)
    and secant_beta β_κ 0.9. Every role. State: Adam's plus the previous gradient and parameter (16 bytes per
    fp32 parameter) and one scalar per tensor.
    A reading: the abstract names the ingredients (consecutive gradient differences as the correction, a
    step-normalized secant curvature indicator setting its strength, any first-order base optimizer) but not
    the gain function; ``c = γ·κ̄/(κ̄ + κ)`` (strong where the curvature is low relative to its history) is ours.
    Paper: Lightweight Geometric Adaptation for Training Physics-Informed Neural Networks (arXiv:2604.15392).
    """
    return with_secant_correction(adam(), "secant_adam").replace(
        "secant_adam",
        summary="Adam on a secant-corrected gradient g + c(κ)·(g − g_prev) (a reading of a PINN method)",
        paper="Lightweight Geometric Adaptation for Training Physics-Informed Neural Networks (arXiv:2604.15392)")
