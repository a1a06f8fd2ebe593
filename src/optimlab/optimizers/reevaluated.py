"""Rules that take a second gradient each step (``step(closure)`` re-evaluates): FD-GR, IGT, O2NC, SPIDER-NGD,
SMB; and exact gradient regularization (HVPs; a recipe function, not registered: its closure must build a
double-backward graph)."""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms.classic import NormPowerScale
from ..transforms.reevaluated import (ExactGradReg, FDGradReg, ImplicitTransport, ModelBuilding, OnlineToNonconvex,
                                      Spider)

REEVAL = frozenset({"reevaluate"})
GR_PAPER = ("Karakida, Takase, Hayase, Osawa, Understanding Gradient Regularization in Deep Learning: Efficient "
            "Finite-Difference Computation and Implicit Bias (ICML 2023), arXiv:2210.02720")


@register("fd_gr")
def fd_gr() -> Recipe:
    """Finite-difference gradient regularization: SGD on ``L + (γ/2)‖∇L‖²`` with the regularizer's gradient
    ``γ∇²L·∇L`` taken by a finite difference along the gradient (ascent, then descent).

    Update: ``g' = ∇L(θ + h·g)`` (the closure re-evaluated, same batch); ``θ ← θ − lr·(g + (γ/h)(g' − g))``.
    Defaults: lr 1e-2 (parameter units per gradient unit), gr_gamma γ 0.05 (parameter units² per loss unit), gr_h
    h 0.05 (parameter units per gradient unit; the paper's range 0.01–0.1). Cost: 2 forward+backward per step
    (exact GR: 3). Needs ``step(closure)``. Every role.
    Paper: Karakida et al., arXiv:2210.02720 (H12 of the coverage; background reading of the abstract).
    """
    return Recipe(name="fd_gr", chains={"*": chain(FDGradReg())}, defaults={"*": {"lr": 1e-2}},
                  summary="finite-difference gradient regularization (SGD on L + γ/2‖∇L‖²; needs step(closure))",
                  paper=GR_PAPER, rule="g' = ∇L(θ + h·g);  θ ← θ − lr·(g + (γ/h)(g' − g))", needs=REEVAL)


def exact_gr() -> Recipe:
    """Exact gradient regularization (the reference FD-GR approximates): ``θ ← θ − lr·(g + γ∇²L·g)`` by one
    double-backward HVP. Not registered (its closure must call ``loss.backward(create_graph=True)``); create with
    ``optimlab.create(model, exact_gr(), lr=...)``. Defaults as ``fd_gr``. Paper: arXiv:2210.02720."""
    return Recipe(name="exact_gr", chains={"*": chain(ExactGradReg())}, defaults={"*": {"lr": 1e-2}},
                  summary="exact gradient regularization (SGD on L + γ/2‖∇L‖², HVP by double backward)",
                  paper=GR_PAPER, rule="θ ← θ − lr·(g + γ·∇²L·g)", needs=frozenset({"hvp"}))


@register("igt")
def igt() -> Recipe:
    """Normalized implicit gradient transport: momentum whose gradient is taken at an extrapolated point.

    Update: ``d ← β d + (1−β)·∇f(θ_t + (β/(1−β))(θ_t − θ_{t−1}))`` (the closure re-evaluated there);
    ``θ ← θ − lr·d/‖d‖`` (‖d‖ over all parameters, as N-PG-IGT's normalized step). Defaults: lr 1e-2
    (parameter units per step: the step length), momentum β 0.9 (constant, as N-PG-IGT; IGT's original
    β_t = 1 − 1/t is not used). Cost: 2 evaluations per step (the closure's gradient at θ_t is not used:
    IGT's gradient is the one at the extrapolated point). Every role.
    Papers: Arnold et al., "Reducing the variance in online optimization by transporting past gradients"
    (NeurIPS 2019), arXiv:1906.03532; Fatkhullin et al., "Stochastic Policy Gradient Methods: Improved Sample
    Complexity for Fisher-non-degenerate Policies" (ICML 2023), arXiv:2302.01734 (normalized IGT).
    """
    return Recipe(name="igt", chains={"*": chain(ImplicitTransport())}, defaults={"*": {"lr": 1e-2}},
                  summary="normalized implicit gradient transport (needs step(closure))",
                  paper="Arnold et al., arXiv:1906.03532; Fatkhullin et al. (N-PG-IGT), arXiv:2302.01734",
                  rule="d ← β·d + (1−β)·∇f(θ + β/(1−β)·(θ − θ_prev));  θ ← θ − lr·d/‖d‖",
                  needs=REEVAL | {"global"})


@register("o2nc")
def o2nc() -> Recipe:
    """Online-to-nonconvex conversion with clipped online gradient descent as the online learner.

    Update: ``s ~ U[0, 1]`` (from the seed and step); ``g = ∇f(x + sΔ)`` (the closure re-evaluated there);
    ``x ← x + Δ``; ``Δ ← clip_D(Δ − lr·g)`` (projection on the ball ‖Δ‖ ≤ D over all parameters), kept as
    ``Δ = −lr·m`` so that a scheduled lr scales the step (lr = 0 stops it). Defaults:
    lr 1e-3 (the online learner's step, parameter units per gradient unit), radius D 1e-2 (parameter units:
    the largest step), seed 0. Cost: 2 evaluations per step. Every role.
    The paper's optimal tuning (D and lr from ε, δ, T) and its epoch/averaging output are not implemented:
    the last iterate is used. Paper: Cutkosky, Mehta, Orabona (ICML 2023), arXiv:2302.03775.
    """
    return Recipe(name="o2nc", chains={"*": chain(OnlineToNonconvex())}, defaults={"*": {"lr": 1e-3}},
                  summary="online-to-nonconvex conversion, clipped OGD learner (needs step(closure))",
                  paper="Cutkosky, Mehta, Orabona, Optimal Stochastic Non-smooth Non-convex Optimization through "
                        "Online-to-Non-convex Conversion (ICML 2023), arXiv:2302.03775",
                  rule="s ~ U[0,1];  g = ∇f(x + sΔ);  x ← x + Δ;  Δ ← clip_D(Δ − lr·g)",
                  needs=REEVAL | {"global"})


@register("spider_ngd")
def spider_ngd() -> Recipe:
    """β-normalized gradient descent on the SPIDER estimator.

    Update: ``v_t = ∇f_S(x_t) − ∇f_S(x_{t−1}) + v_{t−1}`` (same batch, the closure re-evaluated at the previous
    point), ``v_t = ∇f_S(x_t)`` every q steps; ``x ← x − lr·v/‖v‖^β`` (per tensor, as ``normalized_gd``).
    Defaults: lr 1e-2 (with β = 1: the step length per tensor, parameter units), norm_power β 1.0, norm_offset
    0, spider_q 10 (steps). The paper's large-batch refresh: pass a large batch through the closure on the
    refresh steps. Cost: 2 evaluations per step, 1 on refresh steps. Every role.
    Paper: Chen, Zhou, Liang, Lu, "Generalized-Smooth Nonconvex Optimization is As Efficient As Smooth
    Nonconvex Optimization" (ICML 2023), arXiv:2303.02854; SPIDER: Fang et al., arXiv:1807.01695.
    """
    return Recipe(name="spider_ngd", chains={"*": chain(Spider(), NormPowerScale())}, defaults={"*": {"lr": 1e-2}},
                  summary="β-normalized GD on the SPIDER variance-reduced estimator (needs step(closure))",
                  paper="Chen, Zhou, Liang, Lu, arXiv:2303.02854; Fang et al. (SPIDER), arXiv:1807.01695",
                  rule="v ← g(x_t) − g(x_{t−1}) + v (refresh v ← g every q);  x ← x − lr·v/‖v‖^β",
                  needs=REEVAL)


@register("smb")
def smb() -> Recipe:
    """SMB: SGD that re-evaluates its trial step and shortens it by a secant model when it fails.

    Update (our reading; the exact model of the paper needs the paper): trial ``s = −lr·g``; ``f⁺, g⁺`` at
    ``x + s`` (same batch); if ``f⁺ ≤ f − c·lr‖g‖²`` take ``s``; else, per tensor, ``κ = ⟨s, g⁺ − g⟩/‖s‖²`` and
    ``x ← x − min(lr, 1/κ)·g`` (κ ≤ 0: the trial step). Defaults: lr 1e-2 (parameter units per gradient unit),
    armijo_c 1e-4. Cost: 2 evaluations per step. Needs ``step(closure)`` (its loss and a re-evaluation).
    Every role. Paper: Birbil, Martin, Onay, Öztoprak, "Bolstering Stochastic Gradient Descent with Model
    Building", arXiv:2111.07058.
    """
    return Recipe(name="smb", chains={"*": chain(ModelBuilding())}, defaults={"*": {"lr": 1e-2}},
                  summary="SGD with a re-evaluated trial step, shortened by a per-tensor secant model "
                          "(needs step(closure))",
                  paper="Birbil, Martin, Onay, Öztoprak, Bolstering Stochastic Gradient Descent with Model Building, "
                        "arXiv:2111.07058",
                  rule="s = −lr·g; f⁺,g⁺ at x+s;  Armijo: x ← x+s;  else per tensor κ = ⟨s, g⁺−g⟩/‖s‖², "
                       "x ← x − min(lr, 1/κ)·g",
                  needs=REEVAL | {"loss", "global"})
