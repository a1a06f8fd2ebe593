"""Gauss–Newton and natural-gradient methods: they read the model's outputs (need ``"outputs"``).

Each needs ``opt.step(closure)`` with ``closure.batch = ModelBatch(lambda: model(x), y, loss)`` (or
``optimlab.core.model_closure(opt, model, x, y)``), see docs/closures.md and core/model_batch.py. G is the
generalised Gauss–Newton matrix of the batch's mean loss, ``(1/b)JᵀQJ`` (J: the outputs' Jacobian, Q: the
per-row loss Hessian in the outputs), which is also the Fisher of the model's predictive distribution for
cross-entropy and for squared loss. All four precondition every parameter alike (one flat vector: G couples
all of them), so they apply to every role.
"""

from ..core.recipe import Recipe, every_role
from ..core.registry import register
from ..transforms.decay import DecoupledDecay
from ..transforms.ggn import ExactGaussNewton, NaturalGradient, SophiaG, ThermodynamicNGD
from .curvature import SOPHIA_DEFAULTS, SOPHIA_PAPER

OUTPUTS = frozenset({"loss", "outputs"})


@register("natural_gradient")
def natural_gradient() -> Recipe:
    """Natural gradient descent with the Fisher / GGN of the batch: ``x ← x − lr·(G + λI)⁻¹g``.

    Update: G = (1/b)JᵀQJ on the closure's batch (the Fisher for cross-entropy and squared loss), g the
    engine's gradient; the solve is dense (G from the per-sample Jacobian, Cholesky, float64) when the model
    has ≤ max_dense parameters, else conjugate gradients on GGN-vector products (two backward passes and one
    double backward each) from 0, stopping at ‖r‖ ≤ cg_tol·‖g‖ or after cg_iters products. Defaults: lr 0.1
    (unitless: lr = 1 is the full damped Gauss–Newton step; our choice on digits_mlp), damping λ 1e-2
    (curvature units: loss per parameter²; our choice — λ bounds the step along directions G does not see,
    ‖u‖ ≤ ‖g‖/λ), max_dense 1000 parameters, cg_iters 50, cg_tol 1e-10. Zero gradients give a zero step;
    huge ones a huge finite step (saturated). Needs ``step(closure)`` with ``closure.batch``. Every role.
    Paper: Amari, "Natural Gradient Works Efficiently in Learning" (Neural Computation 1998); Martens,
    "New insights and perspectives on the natural gradient method" (JMLR 2020), arXiv:1412.1193.
    """
    return every_role(
        "natural_gradient", NaturalGradient(), defaults={"lr": 0.1, "damping": 1e-2},
        summary="natural gradient: (G + λI)⁻¹g with the batch's GGN/Fisher, dense or CG (needs step(closure) "
                "with closure.batch)",
        paper="Martens, New insights and perspectives on the natural gradient method (JMLR 2020), arXiv:1412.1193",
        rule="G = (1/b)JᵀQJ;  x ← x − lr·(G + λI)⁻¹g",
        needs=OUTPUTS)


@register("egn")
def egn() -> Recipe:
    """EGN: exact Gauss–Newton / Levenberg–Marquardt steps by a batch-size solve, with a line search.

    Update: ``s = (G + λI)⁻¹g = (1/λ)(g − Jᵀ(bλI + QJJᵀ)⁻¹QJg)`` (Duncan–Guttman / Woodbury: one (bc) × (bc)
    solve in float64, J the per-sample output Jacobian; for g = ∇L it is the paper's −d = Jᵀ(QJJᵀ + bλI)⁻¹r);
    α from Armijo backtracking on the batch loss, ``f(x − lr·α·s) ≤ f(x) − c₁·lr·α·⟨g, s⟩``, α = 1, ½, …
    (each trial one forward pass; none accepted: no move); ``x ← x − lr·α·s``; then λ ← max(λ/2, λ_min) if
    α = 1 was accepted, else min(2λ, 1e10) (our reading of the paper's adaptive regularisation). Defaults:
    lr 1.0 (the rule), damping λ₀ 0.3 and damping_min λ_min 0.3 (curvature units: loss per parameter²; our
    choice, best of 6 settings on digits_mlp (width 8, batch 32, 100 steps): with λ_min ≤ 0.1 the line search on
    one minibatch takes steps that overfit it; full-batch least squares wants λ₀ 1e-3, λ_min 1e-10, as in claim
    ``egn-exact-linear-rate``), armijo c₁ 1e-4, backtracks 20. The paper's optional momentum is left out. Memory: J is (b·c) × d floats. Needs ``step(closure)`` with ``closure.batch``.
    Every role.
    Paper: Korbit, Adeoye, Bemporad, Zanon, "Exact Gauss-Newton Optimization for Training Deep Neural
    Networks" (2024), arXiv:2405.14402.
    """
    return every_role(
        "egn", ExactGaussNewton(), defaults={"lr": 1.0},
        summary="EGN: Gauss–Newton/LM step by a (bc) × (bc) Woodbury solve, Armijo line search, adaptive damping "
                "(needs step(closure) with closure.batch)",
        paper="Korbit, Adeoye, Bemporad, Zanon, Exact Gauss-Newton Optimization for Training Deep Neural Networks "
              "(2024), arXiv:2405.14402",
        rule="s = (G + λI)⁻¹g via Jᵀ(bλI + QJJᵀ)⁻¹;  α: Armijo;  x ← x − lr·α·s;  λ ← max(λ/2, λ_min) (α = 1) or 2λ",
        needs=OUTPUTS)


@register("sophia_g")
def sophia_g() -> Recipe:
    """Sophia-G: Sophia's clipped steps on an EMA of the Gauss–Newton–Bartlett diagonal.

    Update (the paper's Algorithms 2–3): ``m ← β₁m + (1−β₁)g``; at steps t ≡ 1 (mod k), labels ŷ are drawn
    from the model's own distribution (Categorical(softmax f) for cross-entropy, N(f, I) for squared loss),
    ĝ = ∇ of the mean loss on (x, ŷ) (one backward through the step's forward pass), ``ĥ = B·ĝ⊙ĝ`` (B: the
    batch's rows) and ``h ← β₂h + (1−β₂)ĥ``; ``x ← x − lr·λ·x``; ``x ← x − lr·clip(m / max(γ·h, ε), 1)``.
    Defaults: lr 1e-3 (parameter units per step; our choice for the lab's small models, as sophia_h), betas
    (0.965, 0.99) and k = 10 (the paper's), γ = rho 0.05 (the paper's Sophia-G value for GPT-2, as we read it;
    Sophia-H uses 0.01), ε 1e-12, weight_decay λ 0.1, seed 0 (labels: a function of seed and step). Needs
    ``step(closure)`` with ``closure.batch`` (the forward pass is taken every k-th step only). Every role.
    Paper: Liu, Li, Hall, Liang, Ma, "Sophia: A Scalable Stochastic Second-order Optimizer for Language Model
    Pre-training" (ICLR 2024), arXiv:2305.14342.
    """
    return every_role(
        "sophia_g", DecoupledDecay(), SophiaG(), defaults={**SOPHIA_DEFAULTS, "rho": 0.05},
        summary="Sophia-G: clipped steps on an EMA of the Gauss–Newton–Bartlett diagonal (needs step(closure) "
                "with closure.batch)",
        paper=SOPHIA_PAPER,
        rule="m ← β₁m + (1−β₁)g;  every k steps h ← β₂h + (1−β₂)·B·ĝ⊙ĝ (ŷ ~ model);  "
             "x ← x − lr·λx − lr·clip(m/max(γh, ε), 1)",
        needs=OUTPUTS)


@register("tngd")
def tngd() -> Recipe:
    """Thermodynamic NGD, simulated: the natural-gradient solve as the relaxation of an Ornstein–Uhlenbeck process.

    Update: the device state x follows ``dx = −((G + λI)x − g)dt + √(2κ)dW`` for time τ per step, from the
    previous step's x (the paper's hybrid loop: the analog state persists while G and g are refreshed), simulated
    by Euler–Maruyama with step ``h = min(dt, 1/(1.1·λ̂_max + λ))`` (λ̂_max from 10 power iterations on G: the
    simulation stays stable) and at most max_sde_steps steps; ``x ← x − lr·x(τ)`` for the parameters. As τ → ∞
    and κ → 0, x(τ) → (G + λI)⁻¹g: natural gradient (claim ``tngd-equals-ngd``); a short τ from the previous
    solution acts like momentum on the natural gradient. Defaults: lr 0.1 and damping λ 1e-2 (as
    natural_gradient), tau 10 (time units: 1/curvature), dt 0.1, max_sde_steps 200 (each a G-vector product),
    temperature κ 1e-6 (parameter² per time; our choice, well below the steps' scale), max_dense 1000
    parameters, seed 0 (the noise: a function of seed and step). Needs ``step(closure)`` with
    ``closure.batch``. Every role.
    Paper: Donatella, Duffield, Aifer, Melanson, Crooks, Coles, "Thermodynamic Natural Gradient Descent"
    (2024), arXiv:2405.13817.
    """
    return every_role(
        "tngd", ThermodynamicNGD(), defaults={"lr": 0.1, "damping": 1e-2},
        summary="thermodynamic NGD (simulated): x(τ) of an OU process relaxing to (G + λI)⁻¹g, warm-started "
                "(needs step(closure) with closure.batch)",
        paper="Donatella, Duffield, Aifer, Melanson, Crooks, Coles, Thermodynamic Natural Gradient Descent (2024), "
              "arXiv:2405.13817",
        rule="x ← x − h((G + λI)x − g) + √(2κh)ξ for τ/h steps (from the last x);  θ ← θ − lr·x",
        needs=OUTPUTS)
