"""Adam and its torch.optim relatives: Adam, AdamW, AMSGrad, Adamax."""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import AdamaxMoments, AdamMoments, CoupledDecay, DecoupledDecay

ADAM_PAPER = "Kingma & Ba, Adam: A Method for Stochastic Optimization (arXiv:1412.6980)"


@register("adam")
def adam() -> Recipe:
    """Adam with coupled (L2) weight decay, exactly torch.optim.Adam's rule.

    Update: ``u = g + λ p``; ``m ← β1 m + (1−β1) u``; ``v ← β2 v + (1−β2) u²``;
    ``p ← p − lr · m/(1−β1^t) / (sqrt(v/(1−β2^t)) + ε)``.
    Defaults: lr 1e-3 (parameter units per step), betas (0.9, 0.999), eps 1e-8 (gradient units),
    weight_decay 0. Applies to every role. State: 8 bytes per fp32 parameter.
    """
    return Recipe(name="adam", chains={"*": chain(CoupledDecay(), AdamMoments())},
                  summary="Adam with L2 weight decay (torch.optim.Adam's rule)", paper=ADAM_PAPER)


@register("adamw")
def adamw() -> Recipe:
    """AdamW: Adam with decoupled weight decay, exactly torch.optim.AdamW's rule.

    Update: ``p ← (1 − lr λ) p``; then Adam's bias-corrected step on ``g``.
    Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01 (per unit lr). Every role.
    Paper: Loshchilov & Hutter, Decoupled Weight Decay Regularization (arXiv:1711.05101).
    """
    return Recipe(name="adamw", chains={"*": chain(AdamMoments(), DecoupledDecay())},
                  summary="Adam with decoupled weight decay (torch.optim.AdamW's rule)",
                  paper="Loshchilov & Hutter, Decoupled Weight Decay Regularization (arXiv:1711.05101)")


@register("amsgrad")
def amsgrad() -> Recipe:
    """AMSGrad: Adam whose denominator uses the running maximum of the second moment.

    Update: as Adam, with ``v̄ ← max(v̄, v)`` in the denominator, bias-corrected as torch.optim.Adam
    (``amsgrad=True``) does; decoupled weight decay (default 0).
    Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0. State: 12 bytes per fp32 parameter.
    Paper: Reddi, Kale & Kumar, On the Convergence of Adam and Beyond (ICLR 2018, arXiv:1904.09237).
    """
    return Recipe(name="amsgrad", chains={"*": chain(AdamMoments(amsgrad=True), DecoupledDecay())},
                  defaults={"*": {"weight_decay": 0.0}},
                  summary="Adam with the running max of the second moment (torch's amsgrad=True)",
                  paper="Reddi, Kale & Kumar, On the Convergence of Adam and Beyond (arXiv:1904.09237)")


@register("adamax")
def adamax() -> Recipe:
    """Adamax: Adam with an infinity-norm denominator, exactly torch.optim.Adamax's rule.

    Update: ``u = g + λ p``; ``m ← β1 m + (1−β1) u``; ``n ← max(β2 n, |u| + ε)``;
    ``p ← p − lr · m / (1−β1^t) / n``.
    Defaults: lr 2e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0 (L2, coupled).
    """
    return Recipe(name="adamax", chains={"*": chain(CoupledDecay(), AdamaxMoments())},
                  defaults={"*": {"lr": 2e-3}},
                  summary="Adam's infinity-norm variant (torch.optim.Adamax's rule)", paper=ADAM_PAPER + ", §7.1")
