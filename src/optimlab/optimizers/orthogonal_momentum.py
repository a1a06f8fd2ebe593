"""Two relatives of Muon that differ in the order or the smoothness of the orthogonalization:
Orthogonal-SGDM (orthogonalize the gradient, then momentum) and the regularized Muon of the Hamiltonian
reading (a smoothed polar map of the momentum).

Both are Muon's recipe with the ``matrix`` role replaced; embeddings, heads and vectors keep Muon's AdamW
(lr 3e-4, betas (0.9, 0.95), weight_decay 0.01, set with ``per_role=``).
"""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import DecoupledDecay, EMAMomentum, HeavyBall, Orthogonalize, ScaleByShape
from ..transforms.regularized_polar import RegularizedPolar
from .muon import muon


@register("orthogonal_sgdm")
def orthogonal_sgdm() -> Recipe:
    """Orthogonal-SGDM: the gradient's polar factor, then heavy-ball momentum (Muon does the reverse).

    Update (matrix role): ``O = Orth(G) ≈ U Vᵀ`` (Newton–Schulz as Muon's, or ``ortho_backend="svd"``);
    ``B ← μ B + O``; ``W ← (1 − lr λ) W − lr·B`` (torch.optim.SGD's momentum on ``O``; dampening and Nesterov
    available as there).
    Matrix defaults: lr 0.01 (spectral norm per step of each orthogonal term; the buffer sums to ~1/(1−μ)
    of them), momentum 0.9, nesterov False, weight_decay 0, Newton–Schulz 5 steps "jordan" in bfloat16.
    Other roles: Muon's AdamW. State: 4 bytes per fp32 matrix parameter.
    Papers: Tuddenham, Prügel-Bennett & Hare, Orthogonalising gradients to speed up neural network
    optimisation (arXiv:2202.07052); discussed as the order-reversed Muon by Kovalev, Understanding Gradient
    Orthogonalization for Deep Learning via Non-Euclidean Trust-Region Optimization (arXiv:2503.12645).
    """
    return muon().replace(
        "orthogonal_sgdm",
        chains={"matrix": chain(Orthogonalize(), HeavyBall(), DecoupledDecay())},
        defaults={"matrix": {"lr": 0.01, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}},
        summary="Orthogonal-SGDM: orthogonalize the gradient, then heavy-ball momentum (Muon reversed)",
        paper="Tuddenham, Prügel-Bennett & Hare, Orthogonalising gradients to speed up neural network "
              "optimisation (arXiv:2202.07052); Kovalev (arXiv:2503.12645)",
        rule="O = Orth(G) ≈ U Vᵀ;  B ← μ·B + O;  W ← (1 − lr·λ)·W − lr·B",
    )


@register("regularized_muon")
def regularized_muon() -> Recipe:
    """Regularized Muon: the momentum's smoothed polar map ``M (MᵀM + εI)^{-1/2}`` in place of ``U Vᵀ``.

    Update (matrix role): ``M ← β M + (1−β) G``; ``W ← (1 − lr λ) W − lr·s·M(MᵀM + εI)^{-1/2}``, with
    ``M(MᵀM + εI)^{-1/2} = U diag(σ/√(σ² + ε)) Vᵀ = ∇_M tr((MᵀM + εI)^{1/2})`` computed exactly (one ``eigh`` of
    the Gram matrix of the smaller side, float32 or float64) and ``s = sqrt(max(1, rows/cols))`` (Muon's).
    As ε → 0 it is Muon with an exact polar factor (``muon`` with ``ortho_backend="svd"`` and the same momentum
    form: set ``nesterov=True`` for Muon's default); singular values ``σ ≪ √ε`` are damped (σ/√ε) instead of
    blown up to 1.
    Matrix defaults: lr 0.02 (spectral norm per step before s), momentum β 0.95, nesterov False (the
    Hamiltonian flow has plain momentum; True gives Muon's Nesterov form), polar_eps ε 1e-6 (squared gradient
    units), weight_decay 0.01, adjust_lr_fn "original". Other roles: Muon's AdamW.
    Energy monitor: :func:`optimlab.diagnostics.hamiltonian.hamiltonian_energy` (our reading of the paper's
    kinetic energy: ``K(M) = tr((MᵀM + εI)^{1/2})`` weighted by ``lr·s/(1−β)``, which makes ``f + Σ K`` a
    Lyapunov function of the continuous-time limit).
    Paper: Move on Muon: A Hamiltonian probability gradient flow perspective of Muon (arXiv id not found);
    the smoothed-nuclear-norm map is our reading of its regularized Muon.
    """
    return muon().replace(
        "regularized_muon",
        chains={"matrix": chain(EMAMomentum(), RegularizedPolar(), ScaleByShape(), DecoupledDecay())},
        defaults={"matrix": {"lr": 0.02, "momentum": 0.95, "nesterov": False, "weight_decay": 0.01}},
        summary="Regularized Muon: momentum through the smoothed polar map M(MᵀM + εI)^{-1/2}",
        paper="Move on Muon: A Hamiltonian probability gradient flow perspective of Muon (2026, no arXiv id "
              "found); Jordan et al., Muon (2024)",
        rule="M ← β·M + (1−β)·G;  W ← (1 − lr·λ)·W − lr·s(m, n)·M(MᵀM + εI)^{-1/2}",
    )
