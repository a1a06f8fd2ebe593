"""Policy-gradient optimizer cores: N-HARPG (Hessian-aided recursive momentum, normalized step).

The RL setting supplies the closure: its loss is a surrogate whose gradient is the policy-gradient estimate
and whose Hessian is the policy-Hessian estimate on the trajectories it samples (e.g. the DiCE / score-function
surrogate of ``optimlab.lab.tasks.policy_mdp``); any differentiable loss works the same way.
"""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms.policy_gradient import HessianAidedMomentum

HARPG_PAPER = ("Fatkhullin, Barakat, Kireeva, He, Stochastic Policy Gradient Methods: Improved Sample Complexity "
               "for Fisher-non-degenerate Policies (ICML 2023), arXiv:2302.01734")


@register("n_harpg")
def n_harpg() -> Recipe:
    """N-HARPG: normalized steps on a recursive momentum corrected by one Hessian-vector product at a random
    point of the last step's segment.

    Update: ``q ~ U(0, 1)``, ``θ̂ = qθ_t + (1−q)θ_{t−1}``; ``d ← β(d + ∇²f(θ̂)(θ_t − θ_{t−1})) + (1−β)g_t``
    (``d = g_1`` at the first step); ``θ ← θ − lr·d/‖d‖`` (‖·‖ over all parameters). The HVP is taken on the
    closure re-evaluated at θ̂ (a policy-gradient closure samples its trajectories there, so the correction is
    unbiased without importance sampling). Defaults: lr 1e-2 (parameter units per step: the step length),
    momentum β 0.9 (constant; the paper's η_t = 1 − β decays as its theorem prescribes, and ``lr`` likewise:
    schedule both with a scheduler if wanted), seed 0 (q from (seed, step)). Cost: 2 closure calls and one
    double backward per step. Needs ``step(closure)`` with ``loss.backward(create_graph=True)``. Every role.
    Paper: Fatkhullin, Barakat, Kireeva, He (ICML 2023), arXiv:2302.01734, Algorithm "(N)-HARPG".
    """
    return Recipe(name="n_harpg", chains={"*": chain(HessianAidedMomentum())}, defaults={"*": {"lr": 1e-2}},
                  summary="N-HARPG: normalized Hessian-aided recursive momentum (needs step(closure), create_graph)",
                  paper=HARPG_PAPER,
                  rule="q ~ U(0,1); θ̂ = qθ + (1−q)θ_prev;  d ← β(d + ∇²f(θ̂)(θ − θ_prev)) + (1−β)g;  θ ← θ − lr·d/‖d‖",
                  needs=frozenset({"reevaluate", "hvp", "global"}))
