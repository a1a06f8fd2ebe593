"""Dion: low-rank orthonormalized updates with error feedback (single-device form)."""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import DecoupledDecay, DionLowRank
from .muon import muon


@register("dion")
def dion() -> Recipe:
    """Dion: a rank-r orthonormal step from one warm-started power iteration, with error feedback.

    Update (matrix role, ``X`` flattened to m × n, state ``M`` and ``Q`` (n × r)):
    ``B = M + G``;  ``P = orth(B Q)`` (QR);  ``R = Bᵀ P``;  ``M ← B − (1−μ) P Rᵀ``;
    ``Q ← ColumnNormalize(R)``;  ``X ← (1 − lr λ) X − lr·sqrt(m/n)·P Qᵀ``.
    At full rank ``M = μ B`` (heavy-ball momentum) and ``P Qᵀ`` approaches the polar factor of ``B`` as the
    power iteration converges: Dion then approaches Muon's direction (not equal to it at any given step).
    Matrix defaults: lr 0.02 (spectral norm of the step before sqrt(m/n)), momentum μ 0.95, rank_fraction
    1.0 (r = min(m, n); the authors' 160M config uses 0.5), eps 1e-8, weight_decay 0.01, q_seed 0
    (all from github.com/microsoft/dion: ``dion_simple.py`` and ``configs/dion_160m.yaml``).
    Distributed (``process_group=`` or FSDP2): the paper's sharded power iteration with small collectives
    (``optimlab.distributed.dion``, docs/distributed.md). QR runs in float32 (the reference code does too),
    ``M`` and ``Q`` are stored in the parameter's dtype.
    Paper: Ahn, Xu, Abreu & Langford, Dion: Distributed Orthonormalized Updates (arXiv:2504.05295).
    """
    return muon().replace(
        "dion",
        chains={"matrix": chain(DionLowRank(), DecoupledDecay())},
        defaults={"matrix": {"lr": 0.02, "momentum": 0.95, "rank_fraction": 1.0, "weight_decay": 0.01}},
        summary="Dion: rank-r orthonormal step via warm-started power iteration with error feedback",
        paper="Ahn et al., Dion: Distributed Orthonormalized Updates (arXiv:2504.05295)",
        rule="B = M + G;  P = orth(B Q);  R = Bᵀ P;  M ← B − (1 − μ)·P Rᵀ;  Q ← colnorm(R);\n"
             "X ← (1 − lr·λ)·X − lr·√(m/n)·P Qᵀ",
    )
