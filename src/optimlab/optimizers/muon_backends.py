"""Muon with other engines for the matrix step: Turbo-Muon (AOL-preconditioned Newton–Schulz) and Freon
(Schatten-exponent spectral map on a QDWH polar decomposition).

Both are Muon's recipe with the ``matrix`` role changed; embeddings, heads and vectors keep Muon's AdamW
(lr 3e-4, betas (0.9, 0.95), weight_decay 0.01, set with ``per_role=``).
"""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import DecoupledDecay, EMAMomentum, ScaleByShape, SchattenMap
from .muon import muon

TURBO_PAPER = ("Boissin, Massena, Mamalet & Serrurier, Turbo-Muon: Accelerating Orthogonality-Based "
               "Optimization with Pre-Conditioning (arXiv:2512.04632)")
FREON_PAPER = ("Shumaylov et al., Muon is Not That Special: Random or Inverted Spectra Work Just as Well "
               "(arXiv:2605.11181)")


@register("turbo_muon")
def turbo_muon() -> Recipe:
    """Turbo-Muon: Muon whose Newton–Schulz starts from an AOL-rescaled momentum and runs 4 steps, not 5.

    Update (matrix role, wide orientation ``M`` (m ≤ n) of the Nesterov momentum, as Muon):
    ``A = M Mᵀ``; ``s_i = (Σ_j |A_ij|)^(-1/2)``; ``X = diag(s) M`` (‖X‖₂ ≤ 1, replaces ``M/‖M‖_F``);
    4 quintic steps ``X ← aX + b(XXᵀ)X + c(XXᵀ)²X`` with the "turbo" coefficients (You's 5-step "dion"
    list without its first entry; the first step reuses ``diag(s) A diag(s)``);
    ``W ← (1 − lr λ) W − lr·sqrt(max(1, m/n))·X``.
    Matrix defaults: Muon's (lr 0.02 spectral units per step before the shape factor, momentum 0.95,
    nesterov True, weight_decay 0.01, ns_dtype bfloat16) with ns_steps 4, ns_coefficients "turbo",
    ns_precondition "aol" — the paper's drop-in claim is "no hyperparameter tuning".
    Measured (tests/linalg/test_aol.py, BENCHMARKS.md): on Gaussian matrices 4 AOL steps reach the
    orthogonality of 5 "dion" steps (max|σ−1| ≈ 0.032, vs 0.318 for Jordan-5), as the paper claims; on
    gradient-like inputs with a power-law spectrum (σ_i = 1/(1+i)) they do not (relative Frobenius distance
    to ``U Vᵀ`` 0.475, vs 0.137 for dion-5 and 0.178 for Jordan-5). AOL also converges to the polar factor
    of ``diag(s) M``, not of ``M`` (0.3–1 % apart on Gaussian matrices, ~15 % on the power-law ones).
    Paper: Boissin et al., Turbo-Muon (arXiv:2512.04632); AOL: Prach & Lampert (arXiv:2208.03160).
    """
    return muon().replace(
        "turbo_muon",
        defaults={"matrix": {"ns_steps": 4, "ns_coefficients": "turbo", "ns_precondition": "aol"}},
        summary="Turbo-Muon: Muon with AOL-preconditioned Newton–Schulz (4 steps), AdamW elsewhere",
        paper=TURBO_PAPER,
        rule="M = Nesterov momentum (wide);  X = diag(Σ_j|MMᵀ|_ij)^(-1/2)·M;  X ← 4 quintic NS steps ('turbo');\n"
             "W ← (1 − lr·λ)·W − lr·sqrt(max(1, m/n))·X",
    )


@register("freon")
def freon() -> Recipe:
    """Freon: Muon's outer loop with the polar factor replaced by a Schatten-exponent spectral map.

    Update (matrix role): ``B ← μ B + (1−μ) G``;  ``M = (1−μ) G + μ B`` (Nesterov) ``= U diag(σ) Vᵀ``;
    ``O = U diag((σ / ‖σ‖_q)^(q−1)) Vᵀ = (M_n M_nᵀ)^(−c) M_n`` with ``M_n = M / ‖M‖_q`` (Schatten-q
    (quasi-)norm) and ``c = 1 − q/2``;  ``W ← (1 − lr λ) W − lr·sqrt(max(1, m/n))·O``.
    ``schatten_q``: 2 → SGD's direction ``M/‖M‖_F`` (c = 0); 1 → Muon's ``U Vᵀ`` (c = ½); q < 1 → the
    quasi-norm regime (c > ½: the spectrum is inverted, small singular values get the largest steps).
    For q > 1, ``O`` is the steepest-descent direction of unit Schatten-p norm, 1/p + 1/q = 1.
    Engine: QDWH polar decomposition ``M = U_p H`` (5 steps in float64, 4 in float32; see
    ``linalg/qdwh.py``), then ``eigh(H)`` and ``O = U_p V f(Λ) Vᵀ``; singular values below the rank
    tolerance map to 0. ``spectral_backend="svd"`` is the exact oracle.
    Matrix defaults: Muon's (lr 0.02 per step before the shape factor, momentum 0.95, nesterov True,
    weight_decay 0.01), schatten_q 1.0, spectral_backend "qdwh".
    Sources and choices: only the abstract was retrievable; the map ``(M_n M_nᵀ)^(−c) M_n``,
    ``c = 1 − q/2`` and the Schatten-q normalisation come from a third-party summary of the paper
    (junaidaliop/zij docs, "Freon / Kaon"), which also gives the momentum as ``m ← μ m + g`` without
    Nesterov (the map is scale invariant, so Muon's EMA is the same direction; we keep Muon's Nesterov
    default, as the sibling ``kaon`` recipe does). The paper's own "provably optimal QDWH-based
    iterative approximation" of the map is not public: we compute the map exactly on top of a QDWH
    polar decomposition (the eigendecomposition of the n × n Hermitian factor is our choice). The paper
    reports its best GPT-2 exponents in the quasi-norm regime but the values were not retrievable, so
    the default q = 1 (Muon's spectrum) is ours; q < 1 needs a smaller lr (the step's spectral norm
    grows like ``(σ_min/‖σ‖_q)^(q−1)``).
    Paper: Shumaylov et al., Muon is Not That Special: Random or Inverted Spectra Work Just as Well
    (arXiv:2605.11181).
    """
    return muon().replace(
        "freon",
        chains={"matrix": chain(EMAMomentum(), SchattenMap(), ScaleByShape(), DecoupledDecay())},
        defaults={"matrix": {"lr": 0.02, "momentum": 0.95, "nesterov": True, "weight_decay": 0.01,
                             "schatten_q": 1.0}},
        summary="Freon: Schatten-q spectral map of the momentum (QDWH engine), AdamW elsewhere",
        paper=FREON_PAPER,
        rule="M = Nesterov momentum = U diag(σ) Vᵀ;  O = U diag((σ/‖σ‖_q)^(q−1)) Vᵀ;\n"
             "W ← (1 − lr·λ)·W − lr·sqrt(max(1, m/n))·O",
    )
