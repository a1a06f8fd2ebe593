"""Stochastic gradient descent with heavy-ball or Nesterov momentum."""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import CoupledDecay, HeavyBall


@register("sgd")
def sgd() -> Recipe:
    """SGD, exactly torch.optim.SGD's rule.

    Update: ``u = g + λ p``; ``b ← μ b + (1−τ) u`` (``b ← u`` at step 1); ``u ← u + μ b`` (Nesterov) or
    ``b``; ``p ← p − lr·u``.
    Defaults: lr 1e-3 (parameter units per gradient unit), momentum 0, dampening 0, nesterov False,
    weight_decay 0 (L2, coupled). Applies to every role.
    Paper: Sutskever et al., "On the importance of initialization and momentum in deep learning" (ICML 2013).
    """
    return Recipe(
        name="sgd",
        chains={"*": chain(CoupledDecay(), HeavyBall())},
        summary="SGD with heavy-ball / Nesterov momentum and L2 weight decay (torch.optim.SGD's rule)",
        paper="Sutskever et al., On the importance of initialization and momentum in deep learning (ICML 2013)",
    )
