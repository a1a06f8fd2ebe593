"""Zeroth-order optimizers: ZO-SGD, ZO-SGD with momentum, ZO-Adam (function values only, MeZO-style memory).

Each needs ``opt.step(closure)`` with a closure that computes and returns the loss **without** calling
``backward()`` (it runs under ``torch.no_grad()``): 2q evaluations per step. No ``.grad`` is read or
created; the step returns the mean of f(x ± μz) over the directions (f(x) up to O(μ²)). Every role.
"""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms.frank_wolfe import ZOFrankWolfe
from ..transforms.langevin import Langevin
from ..transforms.spider import ZOSpider
from ..transforms.moments import AdamMoments
from ..transforms.momentum import HeavyBall
from ..transforms.zeroth_order import ZODescend, ZOEstimate

NEEDS = frozenset({"value"})
PAPER = ("Zeroth-Order Optimization at the Edge of Stability, arXiv:2604.14669; memory-efficient form: Malladi "
         "et al., Fine-Tuning Language Models with Just Forward Passes (MeZO), arXiv:2305.17333")
ESTIMATE = "ĝ = (1/q) Σ_j [f(x+μz_j) − f(x−μz_j)]/(2μ)·z_j, z_j ~ N(0,I)"


@register("zo_sgd")
def zo_sgd() -> Recipe:
    """ZO-SGD (ZO-GD full batch): SGD on the two-point Gaussian estimate, MeZO-style.

    Update: ``ĝ = (1/q) Σ_j [f(x+μz_j) − f(x−μz_j)]/(2μ)·z_j`` with ``z_j ~ N(0, I)`` regenerated from a
    seed; ``x ← x − lr·ĝ``, applied chunk by chunk in place. Defaults: lr 1e-3 (parameter units per unit
    estimate), mu 1e-3 (parameter units; the paper's), q 1 direction (the paper's), seed 0. Parameters are
    perturbed in place and restored bit-identically; memory is inference's. Needs ``step(closure)`` with a
    forward-only closure. Every role. State: none.
    Papers: Zeroth-Order Optimization at the Edge of Stability (arXiv:2604.14669); MeZO (arXiv:2305.17333).
    """
    return Recipe(name="zo_sgd", chains={"*": chain(ZODescend())}, defaults={"*": {"lr": 1e-3}},
                  summary="ZO-SGD: SGD on a seeded two-point estimate (function values only, no .grad)",
                  paper=PAPER, rule=f"{ESTIMATE};  x ← x − lr·ĝ", needs=NEEDS)


@register("zo_sgdm")
def zo_sgdm() -> Recipe:
    """ZO-SGD with heavy-ball momentum (ZO-GDM) on the two-point Gaussian estimate.

    Update: ``ĝ`` as in ``zo_sgd``; ``b ← μ_b·b + ĝ`` (``b ← ĝ`` at step 1, torch.optim.SGD's rule);
    ``x ← x − lr·b``. Defaults: lr 1e-3, momentum 0.9, mu 1e-3, q 1, seed 0. Needs ``step(closure)`` with a
    forward-only closure. Every role. State: the momentum buffer (4 bytes per fp32 parameter).
    Paper: Zeroth-Order Optimization at the Edge of Stability (arXiv:2604.14669).
    """
    return Recipe(name="zo_sgdm", chains={"*": chain(ZOEstimate(), HeavyBall())},
                  defaults={"*": {"lr": 1e-3, "momentum": 0.9}},
                  summary="ZO-SGD with heavy-ball momentum on a seeded two-point estimate",
                  paper=PAPER, rule=f"{ESTIMATE};  b ← β·b + ĝ;  x ← x − lr·b", needs=NEEDS)


@register("zo_adam")
def zo_adam() -> Recipe:
    """ZO-Adam: Adam's bias-corrected step on the two-point Gaussian estimate.

    Update: ``ĝ`` as in ``zo_sgd``; ``m ← β1 m + (1−β1) ĝ``; ``v ← β2 v + (1−β2) ĝ²``;
    ``x ← x − lr·m̂/(√v̂ + ε)``. Defaults: lr 1e-3 (parameter units per step), betas (0.9, 0.999), eps 1e-8,
    mu 1e-3, q 1, seed 0. Needs ``step(closure)`` with a forward-only closure. Every role. State: 8 bytes
    per fp32 parameter. Paper: Zeroth-Order Optimization at the Edge of Stability (arXiv:2604.14669).
    """
    return Recipe(name="zo_adam", chains={"*": chain(ZOEstimate(), AdamMoments())}, defaults={"*": {"lr": 1e-3}},
                  summary="ZO-Adam: Adam on a seeded two-point estimate (function values only)",
                  paper=PAPER, rule=f"{ESTIMATE};  Adam(ĝ)", needs=NEEDS)


@register("zo_frank_wolfe")
def zo_frank_wolfe() -> Recipe:
    """Zeroth-order stochastic Frank–Wolfe: projection-free and gradient-free constrained minimization.

    Update (t the 0-based step, d the number of parameters): ``c_t = 2/(d^{3/2}(t+8)^{1/3})``,
    ``ρ_t = 4/(d^{1/3}(t+8)^{2/3})``, ``γ_t = min(1, lr·2/(t+8))``; ``z`` uniform on the unit sphere;
    ``g ← (1−ρ_t)g + ρ_t·d·[f(x+c_t z) − f(x)]/c_t·z``; ``v = argmin_{v∈C}⟨g, v⟩``; ``x ← (1−γ_t)x + γ_t v``.
    Defaults: lr 1.0 (multiplier of the paper's γ_t, unitless), constraint 'l1' (or 'simplex', 'box'), radius
    1.0 (parameter units), seed 0. C is a product over parameter tensors; start inside C. Needs
    ``step(closure)`` with a forward-only closure (2 evaluations). Every role. State: ``grad_avg`` (4 bytes
    per fp32 parameter). Paper: Sahu, Zaheer, Kar, Towards Gradient Free and Projection Free Stochastic
    Optimization (AISTATS 2019), arXiv:1810.03233.
    """
    return Recipe(name="zo_frank_wolfe", chains={"*": chain(ZOFrankWolfe())}, defaults={"*": {"lr": 1.0}},
                  summary="zeroth-order Frank–Wolfe over an ℓ1 ball, simplex or box (function values only)",
                  paper="Sahu, Zaheer, Kar, Towards Gradient Free and Projection Free Stochastic Optimization "
                        "(AISTATS 2019), arXiv:1810.03233",
                  rule="g ← (1−ρ_t)g + ρ_t·d·[f(x+c_t z) − f(x)]/c_t·z;  v = LMO_C(g);  x ← (1−γ_t)x + γ_t v",
                  needs=NEEDS)


@register("langevin")
def langevin() -> Recipe:
    """Langevin dynamics (SGLD) with iterate averaging, optionally on the unit sphere.

    Update: ``x ← x − lr·g + √(2·lr/β)·ξ``, ξ ~ N(0, I) regenerated from (seed, step, parameter index);
    with ``sphere=True`` then ``x ← x/‖x‖`` per tensor; ``avg ← avg + (x − avg)/t`` (state ``langevin.avg``,
    the averaged iterate, whose direction is the estimator). Defaults: lr 1e-3 (parameter units per gradient
    unit), beta 1e4 (inverse loss units; β → ∞ is gradient descent), sphere False, seed 0. Every role.
    State: 4 bytes per fp32 parameter. Papers: Welling & Teh, Bayesian Learning via Stochastic Gradient
    Langevin Dynamics (ICML 2011); averaging: Improved high-dimensional estimation with Langevin dynamics
    and stochastic weight averaging (2025; arXiv id not in the seed).
    """
    return Recipe(name="langevin", chains={"*": chain(Langevin())}, defaults={"*": {"lr": 1e-3}},
                  summary="Langevin dynamics with iterate averaging (optionally on the sphere)",
                  paper="Welling & Teh, Bayesian Learning via Stochastic Gradient Langevin Dynamics (ICML 2011); "
                        "iterate averaging: Improved high-dimensional estimation with Langevin dynamics and "
                        "stochastic weight averaging (2025)",
                  rule="x ← x − lr·g + √(2·lr/β)·ξ;  x ← x/‖x‖ (sphere);  avg ← mean of the iterates",
                  needs=frozenset({"global"}))


@register("zo_spider")
def zo_spider() -> Recipe:
    """Zeroth-order SPIDER: a recursive two-point estimator of the δ-smoothed function, for nonsmooth problems.

    Update (w uniform on the unit sphere, ``g(x; w) = d/(2δ)·[f(x+δw) − f(x−δw)]·w``): every ``epoch`` steps
    ``v = (1/b1) Σ g(x_t; w_j)``; otherwise ``v ← v + (1/b2) Σ [g(x_t; w_j) − g(x_{t−1}; w_j)]`` (same
    directions at both points); ``x ← x − lr·v``. Defaults (ours; the paper's constants need the paper): lr
    1e-3, delta 1e-3 (parameter units), epoch 10, b1 16, b2 2, seed 0. Needs ``step(closure)`` with a
    forward-only closure (2·b1 or 4·b2 evaluations). Every role. State: ``v`` and ``prev`` (8 bytes per fp32
    parameter). Paper: Chen, Xu, Luo, Faster Gradient-Free Algorithms for Nonsmooth Nonconvex Stochastic
    Optimization (ICML 2023), arXiv:2301.06428.
    """
    return Recipe(name="zo_spider", chains={"*": chain(ZOSpider())}, defaults={"*": {"lr": 1e-3}},
                  summary="zeroth-order SPIDER (recursive two-point estimator of the δ-smoothed function)",
                  paper="Chen, Xu, Luo, Faster Gradient-Free Algorithms for Nonsmooth Nonconvex Stochastic "
                        "Optimization (ICML 2023), arXiv:2301.06428",
                  rule="v = mean g(x_t; w) every epoch, else v + mean[g(x_t; w) − g(x_{t−1}; w)];  x ← x − lr·v",
                  needs=NEEDS)
