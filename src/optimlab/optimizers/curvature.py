"""Curvature methods: the diagonal-Hessian ones from Hutchinson probes (Sophia-H, OASIS, SANIA-Hutchinson) and
M-FAC's sliding-window empirical Fisher.

The Hutchinson ones need ``opt.step(closure)`` with a closure that calls ``loss.backward(create_graph=True)``
(the step takes Hessian-vector products through the gradients' graph); M-FAC needs nothing beyond the
gradients. All apply to every role: the papers precondition every parameter alike.
"""

from ..core.recipe import Recipe, every_role
from ..core.registry import register
from ..transforms.decay import DecoupledDecay
from ..transforms.fisher import MFac, ScaledFactor
from ..transforms.hessian import Oasis, RegularizedNewton, SaddleFreeNewton, SaniaHutchinson, SophiaClip

HVP = frozenset({"loss", "hvp"})
SOPHIA_PAPER = ("Liu, Li, Hall, Liang, Ma, Sophia: A Scalable Stochastic Second-order Optimizer for Language "
                "Model Pre-training (ICLR 2024), arXiv:2305.14342")
SOPHIA_DEFAULTS = {"lr": 1e-3, "weight_decay": 0.1}  # sophia_h and sophia_g (see their docstrings)


@register("sophia_h")
def sophia_h() -> Recipe:
    """Sophia-H: clipped Newton-like steps on an EMA of Hutchinson's diagonal-Hessian estimate.

    Update (the paper's Algorithm 3): ``m ← β₁m + (1−β₁)g``; at steps t ≡ 1 (mod k)
    ``h ← β₂h + (1−β₂)·u⊙(Hu)``, u ~ N(0, I) (one probe); ``x ← x − lr·λ·x``;
    ``x ← x − lr·clip(m / max(γ·h, ε), 1)``. The clip bounds every coordinate's move by lr, so negative or
    tiny curvature gives a sign-momentum step. Defaults: lr 1e-3 (parameter units per step; our choice for
    the lab's small models, the paper's GPT-2 runs use 1e-4..6e-4), betas (0.965, 0.99) and k = 10 (the
    paper's), γ = rho 0.01 (the paper's for Sophia-H), ε 1e-12, weight_decay λ 0.1 (the reference code's),
    seed 0 (probes: a function of seed, step, parameter). Needs ``step(closure)`` with
    ``loss.backward(create_graph=True)``; every step's closure must build the graph (the HVP is taken every
    k-th step). Every role.
    Paper: Liu et al., "Sophia: A Scalable Stochastic Second-order Optimizer for Language Model
    Pre-training" (ICLR 2024), arXiv:2305.14342.
    """
    return every_role(
        "sophia_h", DecoupledDecay(), SophiaClip(), defaults=SOPHIA_DEFAULTS,
        summary="Sophia-H: clipped steps on an EMA of Hutchinson's diagonal Hessian (needs step(closure), "
                "create_graph)",
        paper=SOPHIA_PAPER,
        rule="m ← β₁m + (1−β₁)g;  every k steps h ← β₂h + (1−β₂)u⊙Hu;  x ← x − lr·λx − lr·clip(m/max(γh, ε), 1)",
        needs=HVP)


@register("oasis")
def oasis() -> Recipe:
    """OASIS: diagonal-Hessian scaling with an adaptive, tuning-free step size.

    Update (the paper's Algorithm 1): ``D ← β₂D + (1−β₂)·z⊙(Hz)`` (z Rademacher, D₀ = z⊙Hz at x₀);
    ``D̂ = max(|D|, α)``; ``η_k = min(√(1+θ_{k−1})·η_{k−1}, ‖x_k − x_{k−1}‖_D̂ / (2‖∇f_k − ∇f_{k−1}‖*_D̂))``,
    ``θ_k = η_k/η_{k−1}`` (norms over all parameters; Δ∇f on this step's batch: one re-evaluation of the
    closure at x_{k−1} per step, the paper's stochastic version); ``x ← x − lr·η_k·D̂⁻¹∇f``. Defaults: lr 1.0 (a
    multiplier; 1 is the paper's rule), beta2 0.99 (the paper's), alpha 1e-3 (curvature units; our choice,
    the paper tunes it per problem; 1e-5 diverges on digits_mlp), eta0 1e-2 (our choice: the first step only;
    afterwards η adapts), seed 0. Needs ``step(closure)`` with ``loss.backward(create_graph=True)``. Every role.
    Paper: Jahani, Rusakov, Shi, Richtárik, Mahoney, Takáč, "Doubly Adaptive Scaled Algorithm for Machine
    Learning Using Second-Order Information" (ICLR 2022), arXiv:2109.05198.
    """
    return every_role(
        "oasis", Oasis(), defaults={"lr": 1.0},
        summary="OASIS: Hutchinson diagonal scaling with an adaptive step (needs step(closure), create_graph)",
        paper="Jahani et al., Doubly Adaptive Scaled Algorithm for Machine Learning Using Second-Order "
              "Information (ICLR 2022), arXiv:2109.05198",
        rule="D ← β₂D + (1−β₂)z⊙Hz;  D̂ = max(|D|, α);  η ← min(√(1+θ)η, ‖Δx‖_D̂/(2‖Δg‖*_D̂));  x ← x − lr·η·g/D̂",
        needs=HVP | {"reevaluate", "global"})


@register("sania_hutchinson")
def sania_hutchinson() -> Recipe:
    """SANIA with Hutchinson's diagonal Hessian: a Polyak step in the metric of |diag H|.

    Update: ``B ← β₂B + (1−β₂)·z⊙(Hz)`` (B₁ = z⊙Hz, z Rademacher), ``B̂ = max(|B|, α)``;
    ``x ← x − lr·(f − f*)₊/(Σ g²/B̂)·g/B̂`` (sums over all parameters). Scale invariant like the SQR variants
    (``sania_adagrad_sqr``, ``sania_adam_sqr``). Defaults: lr 1.0 (multiplier), beta2 0.999, alpha 1e-4
    (curvature units; our choice), f_star 0 (loss units), seed 0. The paper lists the Hutchinson diagonal
    among SANIA's preconditioners; the EMA/|·|/α form is our reading (as in OASIS). Needs ``step(closure)``
    with ``loss.backward(create_graph=True)``. Every role.
    Paper: Abdukhakimov, Xiang, Kamzolov, Gower, Takáč, "SANIA: Polyak-type Optimization Framework Leads to
    Scale Invariant Stochastic Algorithms", arXiv:2312.17369.
    """
    return every_role(
        "sania_hutchinson", SaniaHutchinson(), defaults={"lr": 1.0},
        summary="SANIA Hutchinson: Polyak step in the metric of Hutchinson's |diag H| (needs step(closure), "
                "create_graph)",
        paper="Abdukhakimov, Xiang, Kamzolov, Gower, Takáč, SANIA: Polyak-type Optimization Framework Leads to "
              "Scale Invariant Stochastic Algorithms, arXiv:2312.17369",
        rule="B ← β₂B + (1−β₂)z⊙Hz;  B̂ = max(|B|, α);  x ← x − lr·(f − f*)/⟨g, g/B̂⟩ · g/B̂",
        needs=HVP)


@register("mfac")
def mfac() -> Recipe:
    """M-FAC: SGD preconditioned by the inverse of a sliding-window empirical Fisher, matrix-free.

    Update: keep the last m gradients G (per parameter tensor: the paper's blockwise variant, one block per
    tensor); ``d = (λI + (1/m)GᵀG)⁻¹g`` by Woodbury, ``(1/λ)[g − Gᵀ(mλI + GGᵀ)⁻¹Gg]``, O(d·m + m²) per product
    after the float64 Gram GGᵀ (O(d·m²)) and its eigendecomposition (O(m³)) each step; the window is kept in
    the parameter's dtype (:mod:`optimlab.linalg.woodbury`); ``b ← μb + d``;
    ``x ← x − lr·b``. Directions outside the window's span are scaled by 1/λ: λ sets the largest step.
    Defaults: lr 1e-2 (parameter units per step), ngrads m 32 (our CPU choice; the paper's runs use 1024),
    damp λ 1e-2 (gradient units²; our choice: lr/λ = 1 is the step along unseen directions, best of a 5-point
    check on digits_mlp; the paper tunes λ per model), momentum μ 0.
    State: m gradients per parameter (m × the parameter's size). Every role.
    Paper: Frantar, Kurtic, Alistarh, "M-FAC: Efficient Matrix-Free Approximations of Second-Order
    Information" (NeurIPS 2021), arXiv:2107.03356.
    """
    return every_role(
        "mfac", MFac(), defaults={"lr": 1e-2},
        summary="M-FAC: inverse sliding-window empirical Fisher (Woodbury, per tensor) times the gradient",
        paper="Frantar, Kurtic, Alistarh, M-FAC: Efficient Matrix-Free Approximations of Second-Order Information "
              "(NeurIPS 2021), arXiv:2107.03356",
        rule="d = (λI + GᵀG/m)⁻¹g over the last m gradients (Woodbury);  b ← μb + d;  x ← x − lr·b")


@register("scaled_gd")
def scaled_gd() -> Recipe:
    """ScaledGD(λ): gradient descent on a factor X of M = XXᵀ, preconditioned by the damped factor Gram.

    Update: ``X ← X − lr·∇f(X)·(XᵀX + λI)⁻¹`` for every matrix parameter (X of shape n × k, k ≥ r: the
    overparameterised symmetric setting of the paper); other tensors take plain gradient steps. The paper's
    point: from a small initialisation the iterations to a given accuracy grow only logarithmically with
    the condition number of M*, where GD's grow polynomially. Defaults: lr 0.1 (unitless: the step is
    scale-free in X), damp λ 0.1 (parameter units²; our choice, stable on the lab's MLPs; the paper takes λ
    of the order of σ_min(M*): set it per problem, e.g. ``damp=σ_r`` on matrix sensing). For asymmetric
    factorisations U Vᵀ the paper's rule uses the other factor's Gram, which a per-tensor rule cannot see: use the
    symmetric form. Every role.
    Paper: Xu, Shen, Chi, Ma, "The Power of Preconditioning in Overparameterized Low-Rank Matrix Sensing"
    (ICML 2023), arXiv:2302.01186.
    """
    return every_role(
        "scaled_gd", ScaledFactor(), defaults={"lr": 0.1},
        summary="ScaledGD(λ): GD on a low-rank factor X preconditioned by (XᵀX + λI)⁻¹",
        paper="Xu, Shen, Chi, Ma, The Power of Preconditioning in Overparameterized Low-Rank Matrix Sensing "
              "(ICML 2023), arXiv:2302.01186",
        rule="X ← X − lr·∇f(X)·(XᵀX + λI)⁻¹")


@register("saddle_free_newton")
def saddle_free_newton() -> Recipe:
    """Saddle-free Newton: Newton's step with the Hessian's eigenvalues replaced by their absolute values, in a
    Krylov subspace.

    Update: k Lanczos steps on the Hessian (all parameters as one vector) started at g give H ≈ VΛVᵀ on
    span{g, Hg, …, H^{k−1}g}; ``x ← x − lr·V(|Λ| + λI)⁻¹Vᵀg``. Negative curvature is descended at the rate of
    its magnitude, so saddle points repel instead of attract (damped Newton converges to them). Defaults:
    lr 1.0 (the Newton step), krylov_dim k 20 (HVPs per step), damp λ 1.0 (curvature units; our choice:
    λ = 1e-3 diverged on minibatches of the lab's MLPs and 0.1 on digits_mlp; 1.0 trained both).
    The paper adds a line search over a few step sizes; here lr is fixed. Needs ``step(closure)`` with
    ``loss.backward(create_graph=True)``. Cost: k HVPs and a k-vector basis of the parameter count per step.
    Every role (one subspace for the whole model).
    Paper: Dauphin, Pascanu, Gulcehre, Cho, Ganguli, Bengio, "Identifying and attacking the saddle point
    problem in high-dimensional non-convex optimization" (NeurIPS 2014), arXiv:1406.2572.
    """
    return every_role(
        "saddle_free_newton", SaddleFreeNewton(), defaults={"lr": 1.0},
        summary="saddle-free Newton: V(|Λ| + λI)⁻¹Vᵀg in a k-step Lanczos subspace (needs step(closure), "
                "create_graph)",
        paper="Dauphin et al., Identifying and attacking the saddle point problem in high-dimensional non-convex "
              "optimization (NeurIPS 2014), arXiv:1406.2572",
        rule="V, Λ from k Lanczos steps on H started at g;  x ← x − lr·V(|Λ| + λI)⁻¹Vᵀg",
        needs=HVP)


@register("regularized_newton")
def regularized_newton() -> Recipe:
    """Gradient-regularised Newton: Newton's step damped by the square root of the gradient norm.

    Update: ``λ_k = √(L‖∇f‖)`` (norm over all parameters); ``x ← x − lr·(H + λ_k I)⁻¹∇f`` with the exact
    Hessian (one vector for the whole model): dense (H from dim HVPs, eigendecomposed) up to max_dense
    parameters, conjugate gradients on HVPs beyond. Global O(1/k²) on convex f without line search; on
    non-convex f the dense path floors every eigenvalue of H + λI at λ and CG stops at non-positive
    curvature (our guards). Defaults: lr 1.0 (the rule), lipschitz L 10 (loss per parameter³; our choice: L = 1
    stalled on digits_mlp, where CG meets negative curvature at once; set it to the problem's Hessian-Lipschitz
    constant), max_dense 100 (the dense path costs one HVP per parameter per step), cg_iters 20. Needs ``step(closure)`` with
    ``loss.backward(create_graph=True)``. Every role.
    Paper: Mishchenko, "Regularized Newton Method with Global O(1/k²) Convergence" (SIAM J. Optim. 2023),
    arXiv:2112.02089; the seed "Gradient-Normalized Smoothness for Optimization with Approximate Hessians"
    analyses it with approximate Hessians (claim ``gn-smoothness-linear-rate``).
    """
    return every_role(
        "regularized_newton", RegularizedNewton(), defaults={"lr": 1.0},
        summary="gradient-regularised Newton: (H + √(L‖g‖)I)⁻¹g, dense or CG (needs step(closure), create_graph)",
        paper="Mishchenko, Regularized Newton Method with Global O(1/k²) Convergence (SIAM J. Optim. 2023), "
              "arXiv:2112.02089",
        rule="λ = √(L‖g‖);  x ← x − lr·(H + λI)⁻¹g",
        needs=HVP)
