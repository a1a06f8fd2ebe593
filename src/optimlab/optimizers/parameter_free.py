"""Parameter-free step sizes: DoG and L-DoG (distance over gradients), with optional iterate averaging."""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms.stepsize import DoG, LayerwiseDoG, PolyAverage
from ..transforms.udog import UDoG

PAPER = ("Ivgi, Hinder, Carmon, DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule "
         "(ICML 2023), arXiv:2302.12022")


@register("dog")
def dog() -> Recipe:
    """DoG: SGD whose step is the largest distance travelled over the root of the summed squared gradients.

    Update (norms over *all* parameters of the optimizer, as in the paper; every role):
    ``r̄_t = max(r_ε, max_{i≤t}‖x_i − x₀‖)``, ``r_ε = reps_rel·(1 + ‖x₀‖)``; ``G_t = ε + Σ_{i≤t}‖g_i‖²``;
    ``x_{t+1} = x_t − lr·(r̄_t/√G_t)·g_t``; with ``average=True`` also ``x̄_t = (1 − w)x̄_{t−1} + w·x_t``,
    ``w = (γ+1)/(t+γ)``, and ``opt.eval()`` evaluates at x̄ (the paper recommends averaging).
    Defaults: lr 1.0 (a multiplier of the DoG step, unitless; the paper's c), reps_rel 1e-6 (unitless;
    1e-4 with batch norm), eps 1e-8 (gradient units²), average False, gamma 8 (unitless).
    Needs the global pre-pass (‖g‖², ‖x − x₀‖², ‖x₀‖² once), not a closure.
    Paper: Ivgi, Hinder, Carmon, "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule",
    arXiv:2302.12022.
    """
    return Recipe(
        name="dog",
        chains={"*": chain(DoG(), PolyAverage())},
        defaults={"*": {"lr": 1.0}},
        summary="DoG: parameter-free SGD, step = max distance from x₀ / √(Σ‖g‖²), over all parameters",
        paper=PAPER,
        rule="η_t = r̄_t/√(ε + Σ_{i≤t}‖g_i‖²),  r̄_t = max(reps_rel·(1+‖x₀‖), max_{i≤t}‖x_i − x₀‖)\n"
             "x ← x − lr·η_t·g   (optional polynomial averaging x̄, evaluated by opt.eval())",
        needs=frozenset({"global"}),
    )


@register("ldog")
def ldog() -> Recipe:
    """L-DoG: DoG applied to each parameter tensor separately (layer-wise DoG).

    Update, per tensor: ``η = r̄/√(ε + Σ‖g_i‖²)`` with that tensor's norms, ``r_ε = reps_rel·(1 + ‖x₀‖)``
    of that tensor; ``x ← x − lr·η·g``; optional averaging as for ``dog``. Every role.
    Defaults: lr 1.0 (multiplier, unitless), reps_rel 1e-6, eps 1e-8, average False, gamma 8.
    Paper: Ivgi, Hinder, Carmon, arXiv:2302.12022 (Sec. 3, L-DoG).
    """
    return Recipe(
        name="ldog",
        chains={"*": chain(LayerwiseDoG(), PolyAverage())},
        defaults={"*": {"lr": 1.0}},
        summary="L-DoG: DoG with distances and gradient sums per parameter tensor",
        paper=PAPER,
        rule="per tensor: η = r̄/√(ε + Σ_i ‖g_i‖²), r̄ = max(r_ε, max_i ‖x_i − x₀‖);  x ← x − lr·η·g",
    )


@register("udog")
def udog() -> Recipe:
    """U-DoG: accelerated parameter-free SGD — UniXGrad's extragradient and weighted averaging, DoG step sizes.

    Update (weights α_t = t, A_t = Σα_i; norms over all parameters; the parameters hold the averaged output z̄):
    ``x̃ = (α_t y + A_{t−1} z̄)/A_t``, ``M = ∇f(x̃)``; ``η = lr·r̄/√(ε + Σ_{i<t}α_i²‖g_i − M_i‖² + α_t²‖M‖²)``,
    ``r̄ = max(reps_rel·(1 + ‖x₀‖), max‖y_i − x₀‖)``; ``z = y − α_t η M``; ``z̄ ← (α_t z + A_{t−1} z̄)/A_t``;
    next step ``y ← y − α_t η ∇f(z̄)``. Defaults: lr 1.0 (multiplier, unitless), reps_rel 1e-6, eps 1e-8
    (gradient units²). Two gradient evaluations per step (the closure's, at z̄, and one at x̃). lr = 0 skips the
    step. Every role. A reading ("needs paper"): the paper's iterate stabilization and exact weights are not
    in its public description; this is UniXGrad with DoG's r̄ in place of the diameter.
    Papers: Kreisler, Ivgi, Hinder, Carmon, "Accelerated Parameter-Free Stochastic Optimization" (COLT 2024),
    arXiv:2404.00666; UniXGrad: Kavis et al., arXiv:1910.13857.
    """
    return Recipe(
        name="udog", chains={"*": chain(UDoG())}, defaults={"*": {"lr": 1.0}},
        summary="U-DoG: UniXGrad extragradient + averaging with DoG step sizes (needs step(closure))",
        paper="Kreisler, Ivgi, Hinder, Carmon, Accelerated Parameter-Free Stochastic Optimization (COLT 2024), "
              "arXiv:2404.00666",
        rule="x̃ = (α_t y + A_{t−1} z̄)/A_t;  M = ∇f(x̃);  η = lr·r̄/√G;  z = y − α_t η M;  "
             "z̄ ← (α_t z + A_{t−1} z̄)/A_t;  y ← y − α_t η ∇f(z̄)",
        needs=frozenset({"reevaluate", "global"}),
    )
