"""Classic adaptive step sizes: RMSProp, AdaGrad (torch.optim's rules) and AdaGrad-Norm."""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import CoupledDecay
from ..transforms.classic import AdaGradNormScale, AdaGradScale, RMSPropScale


@register("rmsprop")
def rmsprop() -> Recipe:
    """RMSProp, exactly torch.optim.RMSprop's rule (every option but ``maximize``/``capturable``).

    Update: ``u = g + λ p``; ``v ← α v + (1−α) u²``; ``d = sqrt(v − ḡ²) + ε`` with ``ḡ ← α ḡ + (1−α) u``
    (centered) or ``sqrt(v) + ε``; ``p ← p − lr·u/d``, or with momentum ``b ← μ b + u/d;  p ← p − lr·b``.
    Defaults: lr 1e-2 (parameter units per step, per unit of normalised gradient), alpha 0.99, eps 1e-8
    (gradient units), momentum 0, centered False, weight_decay 0 (L2, coupled). Applies to every role.
    State: 4 bytes per fp32 parameter (+4 centered, +4 with momentum).
    Paper: Tieleman & Hinton, Lecture 6.5 — RMSProp (COURSERA: Neural Networks for Machine Learning, 2012);
    centered form: Graves, Generating Sequences With Recurrent Neural Networks (arXiv:1308.0850).
    """
    return Recipe(name="rmsprop", chains={"*": chain(CoupledDecay(), RMSPropScale())},
                  defaults={"*": {"lr": 1e-2}},
                  summary="RMSProp, optionally centered and with momentum (torch.optim.RMSprop's rule)",
                  paper="Tieleman & Hinton, RMSProp (COURSERA lecture 6.5, 2012); Graves, Generating Sequences "
                        "With Recurrent Neural Networks (arXiv:1308.0850)")


@register("adagrad")
def adagrad() -> Recipe:
    """AdaGrad, exactly torch.optim.Adagrad's rule.

    Update: ``u = g + λ p``; ``s ← s + u²``; ``p ← p − lr/(1 + (t−1)·lr_decay) · u/(sqrt(s) + ε)``.
    Defaults: lr 1e-2 (parameter units per step, per unit of normalised gradient), lr_decay 0 (per step),
    initial_accumulator_value 0 (squared gradient units), eps 1e-10 (gradient units), weight_decay 0 (L2,
    coupled). Applies to every role. State: 4 bytes per fp32 parameter.
    Paper: Duchi, Hazan & Singer, Adaptive Subgradient Methods for Online Learning and Stochastic
    Optimization (JMLR 2011; COLT 2010); concurrently McMahan & Streeter, Adaptive Bound Optimization for Online
    Convex Optimization (arXiv:1002.4908).
    """
    return Recipe(name="adagrad", chains={"*": chain(CoupledDecay(), AdaGradScale())},
                  defaults={"*": {"lr": 1e-2}},
                  summary="AdaGrad: per-coordinate accumulated squared gradients (torch.optim.Adagrad's rule)",
                  paper="Duchi, Hazan & Singer, Adaptive Subgradient Methods for Online Learning and Stochastic "
                        "Optimization (JMLR 2011, COLT 2010); McMahan & Streeter, Adaptive Bound Optimization for "
                        "Online Convex Optimization (COLT 2010, arXiv:1002.4908)")


@register("adagrad_norm")
def adagrad_norm() -> Recipe:
    """AdaGrad-Norm: SGD with one AdaGrad step size per tensor.

    Update (per tensor): ``u = g + λ p``; ``b² ← b² + ‖u‖²``; ``p ← p − lr·u/b``.
    Defaults: lr 0.1 (parameter norm units per step: the first step has norm ≈ lr), b0 1e-2 (gradient norm
    units), weight_decay 0 (L2, coupled). Applies to every role. State: one scalar per tensor.
    Paper: Ward, Wu & Bottou, AdaGrad stepsizes: sharp convergence over nonconvex landscapes
    (arXiv:1806.01811).
    """
    return Recipe(name="adagrad_norm", chains={"*": chain(CoupledDecay(), AdaGradNormScale())},
                  defaults={"*": {"lr": 0.1}},
                  summary="AdaGrad-Norm: gradient descent with a scalar AdaGrad step size per tensor",
                  paper="Ward, Wu & Bottou, AdaGrad stepsizes: sharp convergence over nonconvex landscapes "
                        "(arXiv:1806.01811)")
