"""Energy- and metric-adaptive gradient descent: AEGD and the induced-metric optimiser (basic variant)."""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms.polyak import EnergyAdaptive
from ..transforms.stepsize import InducedMetric


@register("aegd")
def aegd() -> Recipe:
    """AEGD: gradient descent with an energy variable that makes it stable for any step size.

    Update: ``v = g/(2√(f(x) + c))``; ``r ← r/(1 + 2η v²)`` (elementwise, r₀ = √(f(x₀) + c)); ``x ← x − 2η r v``.
    The energy r is state ``"aegd.r"`` (``opt.state[p]["aegd.r"]``) and never increases.
    Defaults: lr η 0.1 (parameter units per unit of ∇√(f+c); the authors' code default), c 1.0 (loss units).
    Needs ``step(closure)`` (the loss each step). Every role.
    Paper: Liu & Tian, "AEGD: Adaptive Gradient Descent with Energy", arXiv:2010.05109.
    """
    return Recipe(
        name="aegd", chains={"*": chain(EnergyAdaptive())}, defaults={"*": {"lr": 0.1}},
        summary="AEGD: adaptive gradient descent with a non-increasing energy r (needs step(closure))",
        paper="Liu & Tian, AEGD: Adaptive Gradient Descent with Energy, arXiv:2010.05109",
        rule="v = ∇f/(2√(f+c));  r ← r/(1 + 2η·v²);  x ← x − 2η·r·v", needs=frozenset({"loss"}))


@register("induced_metric")
def induced_metric() -> Recipe:
    """The induced-metric optimiser, basic variant: gradient descent in the metric I + ∇L∇Lᵀ.

    Update: ``θ ← θ − lr·∇L/(1 + ‖∇L‖²)`` with ‖∇L‖ over all parameters (a derived reading of the
    paper's basic variant; its scheduled, preconditioned and decoupled-decay variants need the paper).
    Defaults: lr 0.01 (parameter units per gradient unit, as SGD's; our choice). Every role.
    Paper: "The Optimiser Hidden in Plain Sight: Training with the Loss Landscape's Induced Metric"
    (no arXiv id in the seed catalogue).
    """
    return Recipe(
        name="induced_metric", chains={"*": chain(InducedMetric())}, defaults={"*": {"lr": 0.01}},
        summary="induced-metric gradient descent: θ ← θ − lr·∇L/(1 + ‖∇L‖²), global norm",
        paper="The Optimiser Hidden in Plain Sight: Training with the Loss Landscape's Induced Metric (2024)",
        rule="θ ← θ − lr·∇L/(1 + ‖∇L‖²)", needs=frozenset({"global"}))
