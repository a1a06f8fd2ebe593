"""Muon variants that change what is orthogonalized, or whether: MuonEq, MiMuon, and the non-Euclidean
trust-region family (normalized SGD / signSGD / Muon as one recipe).

Each is Muon's recipe with the ``matrix`` role replaced; embeddings, heads and vectors keep Muon's AdamW
(lr 3e-4, betas (0.9, 0.95), weight_decay 0.01, set with ``per_role=``).
"""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import (DecoupledDecay, EMAMomentum, Equilibrate, Orthogonalize, ScaleByShape, SpectralGapGate,
                          TrustRegionDirection)
from .muon import muon


@register("muoneq")
def muoneq() -> Recipe:
    """MuonEq: Muon whose momentum is row- and/or column-equilibrated before Newton–Schulz.

    Update (matrix role): ``B ← μ B + (1−μ) G``;  ``M = (1−μ) G + μ B`` (Nesterov);
    ``M̃ = D_r^{-1/2} M`` ("r"), ``M D_c^{-1/2}`` ("c") or ``D_r^{-1/2} M D_c^{-1/2}`` ("rc"), with
    ``D_r, D_c`` the row / column squared norms of ``M`` (+ eq_eps);  ``W ← (1 − lr λ) W − lr·s·NS(M̃)``.
    Matrix defaults: Muon's (lr 0.02 spectral norm per step before s, momentum 0.95, nesterov True,
    weight_decay 0.01, ns_steps 5 "jordan" bfloat16, adjust_lr_fn "original": ``s = sqrt(max(1, m/n))``)
    plus equilibrate "r" (the paper's default for hidden matrices) and eq_eps 1e-8 (squared update units).
    No extra state (the scales are recomputed from each step's momentum: O(m + n) transient memory).
    Choices: the authors' code (MaeChd/muon-eq) accumulates ``B ← μB + G`` (Nesterov ``G + μB``) — a multiple
    of ours, which row/column normalisation removes up to eq_eps — and in its LLM runs scales the step by
    ``0.2·sqrt(max(m, n))`` with lr 1e-3, weight_decay 0.1 (``adjust_lr_fn="match_rms_adamw"``); its
    ``phase`` switch (RC, then R) is not offered. Muon's defaults are kept so that muon vs muoneq isolates
    the equilibration.
    Paper: Chang et al., MuonEq: Balancing Before Orthogonalization with Lightweight Equilibration
    (arXiv:2603.28254).
    """
    return muon().replace(
        "muoneq",
        chains={"matrix": chain(EMAMomentum(), Equilibrate(), Orthogonalize(), ScaleByShape(), DecoupledDecay())},
        defaults={"matrix": {"lr": 0.02, "momentum": 0.95, "nesterov": True, "weight_decay": 0.01,
                             "equilibrate": "r"}},
        summary="MuonEq: Muon with row/column equilibration of the momentum before Newton–Schulz",
        paper="Chang et al., MuonEq: Balancing Before Orthogonalization with Lightweight Equilibration "
              "(arXiv:2603.28254)",
        rule="M = Nesterov momentum;  M̃ = D_r^{-1/2}·M (r) | M·D_c^{-1/2} (c) | D_r^{-1/2}·M·D_c^{-1/2} (rc);\n"
             "W ← (1 − lr·λ)·W − lr·s(m, n)·NS(M̃)",
    )


@register("mimuon")
def mimuon() -> Recipe:
    """MiMuon: Muon's step where the momentum's singular values are well separated, momentum SGD's elsewhere.

    Update (matrix role): ``M ← β M + (1−β) G``;  ``M = U Σ Vᵀ``;
    ``D = U Vᵀ`` if ``min_{i≠j} |σ_i − σ_j| > τ`` (over the nonzero σ), else ``D = M``;
    ``W ← (1 − lr λ) W − lr·D``  (the paper's ``U Σ^α Vᵀ`` with ``α ∈ {0, 1}``).
    Matrix defaults: lr 0.02 (spectral norm of an orthogonal step; parameter units per gradient unit on the
    SGD branch), momentum β 0.95, nesterov False, gap_threshold τ 1e-4 (gradient units), weight_decay 0.01,
    Newton–Schulz as Muon for ``U Vᵀ`` (the gap test is one exact ``svdvals`` per matrix per step).
    Choices: the public description gives the gate (the gap between singular values that the generalization
    bound ``O(1/(N κ^T))`` depends on) but no value of τ: 1e-4 is ours; the gate is per matrix and step.
    Paper: Huang, Luo & Chen, MiMuon: Mixed Muon Optimizer with Improved Generalization for Large Models
    (arXiv:2605.19619).
    """
    return muon().replace(
        "mimuon",
        chains={"matrix": chain(EMAMomentum(), SpectralGapGate(), DecoupledDecay())},
        defaults={"matrix": {"lr": 0.02, "momentum": 0.95, "nesterov": False, "weight_decay": 0.01}},
        summary="MiMuon: orthogonalized momentum when its singular values are separated, momentum SGD otherwise",
        paper="Huang, Luo & Chen, MiMuon: Mixed Muon Optimizer with Improved Generalization for Large Models "
              "(arXiv:2605.19619)",
        rule="M ← β·M + (1−β)·G = U Σ Vᵀ;  D = U Vᵀ if min_{i≠j}|σ_i − σ_j| > τ else M;\n"
             "W ← (1 − lr·λ)·W − lr·D",
    )


@register("trust_region")
def trust_region() -> Recipe:
    """Stochastic non-Euclidean trust-region gradient method with momentum: one recipe, three norms.

    Update (matrix role): ``m ← β m + (1−β) g``  (the paper's ``(1−α) m + α g`` with ``α = 1 − β``);
    ``W ← (1 − lr λ) W − lr·argmax_{‖d‖≤1} ⟨m, d⟩``, i.e. the minimiser of ``⟨m, W'⟩`` over the ball of radius
    lr around W in the norm ``norm`` (per matrix):
    ``"spectral"`` → ``U Vᵀ`` (Muon without Nesterov or shape factor), ``"frobenius"`` → ``m/‖m‖_F``
    (normalized SGD with momentum), ``"linf"`` → ``sign(m)`` (signSGD with momentum / Signum).
    Matrix defaults: lr 0.02 (trust-region radius per step, in the chosen norm), momentum 0.95, nesterov False,
    norm "spectral", weight_decay 0 (the paper analyses decoupled decay as the constrained variant; off
    unless set), Newton–Schulz as Muon for the spectral case.
    Paper: Kovalev, Understanding Gradient Orthogonalization for Deep Learning via Non-Euclidean Trust-Region
    Optimization (arXiv:2503.12645).
    """
    return muon().replace(
        "trust_region",
        chains={"matrix": chain(EMAMomentum(), TrustRegionDirection(), DecoupledDecay())},
        defaults={"matrix": {"lr": 0.02, "momentum": 0.95, "nesterov": False, "weight_decay": 0.0,
                             "norm": "spectral"}},
        summary="Non-Euclidean trust region with momentum: normalized SGD, signSGD or Muon by the norm",
        paper="Kovalev, Understanding Gradient Orthogonalization for Deep Learning via Non-Euclidean "
              "Trust-Region Optimization (arXiv:2503.12645)",
        rule="m ← β·m + (1−β)·g;  W ← (1 − lr·λ)·W − lr·argmax_{‖d‖≤1}⟨m, d⟩\n"
             "(‖·‖ = spectral: U Vᵀ;  frobenius: m/‖m‖_F;  linf: sign(m))",
    )
