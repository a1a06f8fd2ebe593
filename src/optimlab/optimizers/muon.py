"""Muon: orthogonalized momentum for hidden matrices, AdamW for everything else."""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import DecoupledDecay, EMAMomentum, Orthogonalize, ScaleByShape
from .adam import adamw

MUON_MATRIX = chain(EMAMomentum(), Orthogonalize(), ScaleByShape(), DecoupledDecay())


@register("muon")
def muon() -> Recipe:
    """Muon: momentum, then its orthogonal polar factor, for the ``matrix`` role; AdamW for the others.

    Update (matrix role): ``b ← μ b + (1−μ) g``; ``u = NS_k((1−μ) g + μ b)`` (Nesterov) ≈ ``U Vᵀ``;
    ``p ← (1 − lr λ) p − lr · s(shape) · u`` with ``s = sqrt(max(1, rows/cols))`` (``adjust_lr_fn``).
    Matrix defaults: lr 0.02 (spectral norm of the step, before s), momentum 0.95, nesterov True,
    weight_decay 0.01, ns_steps 5, ns_coefficients "jordan", ns_dtype bfloat16.
    Other roles (embedding, head, vector): AdamW with lr 3e-4, betas (0.9, 0.95), weight_decay 0.01,
    configured with ``per_role=`` (defaults from Keller Jordan's Muon README, MuonWithAuxAdam example).
    Configured like torch.optim.Muon (lr, weight_decay, ns_coefficients=(3.4445, -4.7750, 2.0315),
    bf16, adjust_lr_fn) it computes torch's update on 2-D weights.
    Paper: Jordan et al., Muon: An optimizer for hidden layers in neural networks (2024, blog post);
    Liu et al., Muon is Scalable for LLM Training (arXiv:2502.16982).
    """
    return adamw().replace(
        "muon",
        chains={"matrix": MUON_MATRIX},
        defaults={"matrix": {"lr": 0.02, "momentum": 0.95, "nesterov": True, "weight_decay": 0.01},
                  "*": {"lr": 3e-4, "betas": (0.9, 0.95), "weight_decay": 0.01}},
        main=("matrix",),
        summary="Muon: orthogonalized momentum (Newton–Schulz) for hidden matrices, AdamW elsewhere",
        paper="Jordan et al., Muon: An optimizer for hidden layers in neural networks (2024); "
              "Liu et al., Muon is Scalable for LLM Training (arXiv:2502.16982)",
    )
