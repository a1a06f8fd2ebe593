"""Polyak step sizes from the closure's loss: SPS_max, heavy ball with a Polyak step, SANIA AdaGrad-SQR/Adam-SQR.

All need ``opt.step(closure)`` (the loss value) and the global pre-pass (norms over all parameters), and
apply to every role: the Polyak step is one scalar for the whole model, as in the papers.
"""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms.polyak import PolyakHeavyBall, PolyakStep, SaniaPolyak

NEEDS = frozenset({"loss", "global"})


@register("sps")
def sps() -> Recipe:
    """SPS_max: SGD with the stochastic Polyak step, capped.

    Update: ``γ = min((f(x) − f*)/(c‖g‖²), γ_b)`` (‖g‖ over all parameters, f − f* clipped at 0);
    ``x ← x − lr·γ·g``. Defaults: lr 1.0 (multiplier, unitless), c 0.5 (the paper's), f_star 0 (loss units;
    interpolating models), max_step γ_b 10 (parameter units per gradient unit; our choice, the paper tunes it).
    Needs ``step(closure)``. Every role.
    Paper: Loizou, Vaswani, Laradji, Lacoste-Julien, "Stochastic Polyak Step-size for SGD: An Adaptive
    Learning Rate for Fast Convergence" (AISTATS 2021), arXiv:2002.10542.
    """
    return Recipe(
        name="sps", chains={"*": chain(PolyakStep())}, defaults={"*": {"lr": 1.0}},
        summary="SPS_max: SGD with the capped stochastic Polyak step (needs step(closure))",
        paper="Loizou et al., Stochastic Polyak Step-size for SGD (AISTATS 2021), arXiv:2002.10542",
        rule="γ = min((f − f*)/(c‖g‖²), γ_b);  x ← x − lr·γ·g", needs=NEEDS)


@register("polyak_momentum")
def polyak_momentum() -> Recipe:
    """Heavy ball whose step size is a Polyak step that accounts for the momentum term.

    Update (our reading; the paper's exact variants need the paper): ``γ_t = clip((f − f* + β⟨g, x_t −
    x_{t−1}⟩)/(c‖g‖²), 0, γ_b)``, ``x_{t+1} = x_t − γ_t g + β(x_t − x_{t−1})``, kept as ``b ← βb + γ g``,
    ``x ← x − lr·b``. Defaults: lr 1.0 (multiplier), momentum β 0.9, c 1.0 (the derivation's), f_star 0,
    max_step 10 (our choice). Needs ``step(closure)``. Every role.
    Paper: Wang, Johansson, Zhang, "Generalized Polyak Step Size for First Order Optimization with
    Momentum" (ICML 2023), arXiv:2305.12939.
    """
    return Recipe(
        name="polyak_momentum", chains={"*": chain(PolyakHeavyBall())}, defaults={"*": {"lr": 1.0}},
        summary="heavy ball with a momentum-aware Polyak step (needs step(closure))",
        paper="Wang, Johansson, Zhang, Generalized Polyak Step Size for First Order Optimization with Momentum "
              "(ICML 2023), arXiv:2305.12939",
        rule="γ = clip((f − f* + β⟨g, x_t − x_{t−1}⟩)/(c‖g‖²), 0, γ_b);  x ← x − γ·g + β(x_t − x_{t−1})",
        needs=NEEDS)


def _sania(name: str, precond: str, label: str) -> Recipe:
    return Recipe(
        name=name, chains={"*": chain(SaniaPolyak())}, defaults={"*": {"lr": 1.0, "preconditioner": precond}},
        summary=f"SANIA {label}: scale-invariant preconditioned Polyak step (needs step(closure))",
        paper="Abdukhakimov, Xiang, Kamzolov, Gower, Takáč, SANIA: Polyak-type Optimization Framework Leads to "
              "Scale Invariant Stochastic Algorithms, arXiv:2312.17369",
        rule="B diagonal without square root;  x ← x − lr·(f − f*)/‖g‖²_{B⁻¹} · B⁻¹g", needs=NEEDS)


@register("sania_adagrad_sqr")
def sania_adagrad_sqr() -> Recipe:
    """SANIA AdaGrad-SQR: Polyak step in the metric of AdaGrad's squared-gradient sum, without the root.

    Update: ``B ← B + g²``; ``x ← x − lr·(f − f*)/(Σ g²/B)·g/B`` (sums over all parameters). Scale invariant:
    rescaling the features by a diagonal leaves the loss curve unchanged. Defaults: lr 1.0 (multiplier),
    f_star 0 (loss units). Needs ``step(closure)``. Every role. The Hutchinson (diag-Hessian) and PCG-Newton
    variants of the paper are not implemented. Paper: Abdukhakimov et al., arXiv:2312.17369.
    """
    return _sania("sania_adagrad_sqr", "adagrad", "AdaGrad-SQR")


@register("sania_adam_sqr")
def sania_adam_sqr() -> Recipe:
    """SANIA Adam-SQR: Polyak step in the metric of Adam's second moment, without the root.

    Update: ``B ← β₂B + (1−β₂)g²``; ``x ← x − lr·(f − f*)/(Σ g²/B)·g/B`` (sums over all parameters; Adam's
    bias correction cancels). Defaults: lr 1.0 (multiplier), beta2 0.999, f_star 0. Needs ``step(closure)``.
    Every role. Paper: Abdukhakimov et al., arXiv:2312.17369.
    """
    return _sania("sania_adam_sqr", "adam", "Adam-SQR")
