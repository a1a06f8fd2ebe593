"""Sign-based optimizers: Lion, CLion and Signum."""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import CautiousLionSign, DecoupledDecay, EMAMomentum, LionSign, Sign


@register("lion")
def lion() -> Recipe:
    """Lion: the sign of an interpolation of momentum and gradient.

    Update: ``p ← (1 − lr λ) p``; ``u = sign(β1 m + (1−β1) g)``; ``m ← β2 m + (1−β2) g``; ``p ← p − lr·u``.
    Defaults: lr 1e-4 (parameter units per step: every coordinate moves by exactly lr), betas
    (0.9, 0.99), weight_decay 0 (the paper suggests 3–10× AdamW's λ with a 3–10× smaller lr).
    State: 4 bytes per fp32 parameter.
    Paper: Chen et al., Symbolic Discovery of Optimization Algorithms (arXiv:2302.06675).
    """
    return Recipe(name="lion", chains={"*": chain(LionSign(), DecoupledDecay())},
                  defaults={"*": {"lr": 1e-4, "weight_decay": 0.0}},
                  summary="Lion: sign of interpolated momentum",
                  paper="Chen et al., Symbolic Discovery of Optimization Algorithms (arXiv:2302.06675)")


@register("clion")
def clion() -> Recipe:
    """CLion: Lion that takes the sign only when no nonzero entry of its direction is tiny.

    Update: ``c = β1 m + (1−β1) g``;  ``h = sign(c)`` if ``min_{j: c_j≠0} |c_j| ≥ ν`` else ``h = c``;
    ``p ← p − lr (h + λ p)``;  ``m ← β2 m + (1−β2) g``.
    Defaults: Lion's (lr 1e-4 parameter units per step on the sign branch, betas (0.9, 0.99), weight_decay 0)
    and sign_threshold ν 1e-8 (gradient units). State: 4 bytes per fp32 parameter.
    Choices: the paper states the test on the whole parameter vector and gives no value of ν; here it is
    applied per parameter tensor and ν = 1e-8 is ours (with ν = 0 CLion is Lion). The caution is this
    threshold, not the sign-agreement mask of "Cautious Optimizers" (Liang et al., arXiv:2411.16085).
    Paper: Huang, Zhang & Chen, CLion: Efficient Cautious Lion Optimizer with Enhanced Generalization
    (arXiv:2604.14587).
    """
    return Recipe(name="clion", chains={"*": chain(CautiousLionSign(), DecoupledDecay())},
                  defaults={"*": {"lr": 1e-4, "weight_decay": 0.0}},
                  summary="CLion: Lion's sign step unless a nonzero entry is below ν, then the identity",
                  paper="Huang, Zhang & Chen, CLion: Efficient Cautious Lion Optimizer with Enhanced "
                        "Generalization (arXiv:2604.14587)",
                  rule="c = β1·m + (1−β1)·g;  h = sign(c) if min_{c_j≠0}|c_j| ≥ ν else c;\n"
                       "p ← p − lr·(h + λ·p);  m ← β2·m + (1−β2)·g")


@register("signum")
def signum() -> Recipe:
    """Signum: the sign of an exponential moving average of gradients.

    Update: ``m ← β m + (1−β) g``; ``p ← (1 − lr λ) p − lr·sign(m)``.
    Defaults: lr 1e-4 (parameter units per step), momentum 0.9, weight_decay 0.
    Paper: Bernstein et al., signSGD: Compressed Optimisation for Non-Convex Problems (arXiv:1802.04434).
    """
    return Recipe(name="signum", chains={"*": chain(EMAMomentum(), Sign(), DecoupledDecay())},
                  defaults={"*": {"lr": 1e-4, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}},
                  summary="Signum: sign of the gradient momentum",
                  paper="Bernstein et al., signSGD: Compressed Optimisation for Non-Convex Problems "
                        "(arXiv:1802.04434)")
