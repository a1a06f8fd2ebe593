"""Adaptive Muon variants: NorMuon (per-neuron), AdaMuon (per-element), AdaGO (per-matrix AdaGrad-norm).

Each is Muon's recipe with the ``matrix`` role replaced; embeddings, heads and vectors keep Muon's AdamW
(lr 3e-4, betas (0.9, 0.95), weight_decay 0.01, set with ``per_role=``).
"""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import (AdaGradNormStep, DecoupledDecay, EMAMomentum, MatchRMS, NorMuonNormalize, Orthogonalize,
                          OrthoSecondMoment, Sign)
from .muon import muon


@register("normuon")
def normuon() -> Recipe:
    """NorMuon: Muon followed by a neuron-wise (per-row) second-moment normalisation, at AdamW's RMS.

    Update (matrix role, ``W`` of shape m × n, rows = output neurons), the paper's Algorithm 1:
    ``M ← β1 M + (1−β1) G``;  ``O = NS(M)``;  ``v ← β2 v + (1−β2)·mean_cols(O ⊙ O)``  (v ∈ R^m);
    ``Ô = O / (sqrt(v) + ε)``;  ``W ← (1 − lr λ) W − lr · 0.2·sqrt(mn)/‖Ô‖_F · Ô``.
    Matrix defaults: lr 1e-3 (AdamW-equivalent: the step's RMS is 0.2·lr), momentum β1 0.95, nesterov False,
    beta2 0.95, eps 1e-8 (update units; also the floor of NS's Frobenius normalisation), weight_decay 0.01,
    Newton–Schulz as Muon (ns_steps 5, "jordan", bfloat16). State: Muon's buffer + one value per row.
    Choices: the paper's Algorithm 1 has no Nesterov and ``η̂ = 0.2 η sqrt(mn)/‖Ô‖_F`` (we follow it); the
    authors' reference code (zichongli5/NorMuon) uses Nesterov and instead keeps the pre-normalisation
    Frobenius norm and Muon's ``sqrt(max(1, m/n))`` factor — ``nesterov=True`` gives its momentum.
    Paper: Li, Liu, Liang, Chen & Zhao, NorMuon: Making Muon more efficient and scalable (arXiv:2510.05491).
    """
    return muon().replace(
        "normuon",
        chains={"matrix": chain(EMAMomentum(), Orthogonalize(), NorMuonNormalize(), DecoupledDecay())},
        defaults={"matrix": {"lr": 1e-3, "momentum": 0.95, "nesterov": False, "beta2": 0.95, "eps": 1e-8,
                             "weight_decay": 0.01}},
        summary="NorMuon: orthogonalized momentum, normalized per neuron by a second moment, at AdamW's RMS",
        paper="Li, Liu, Liang, Chen & Zhao, NorMuon: Making Muon more efficient and scalable (arXiv:2510.05491)",
        rule="M ← β1·M + (1−β1)·G;  O = NS(M);  v ← β2·v + (1−β2)·mean_cols(O²);  Ô = O/(√v + ε);\n"
             "W ← (1 − lr·λ)·W − lr·0.2·√(mn)·Ô/‖Ô‖_F",
    )


@register("adamuon")
def adamuon() -> Recipe:
    """AdaMuon: sign, then orthogonalize, then an element-wise second moment, at AdamW's RMS.

    Update (matrix role, m × n): ``M ← β1 M + (1−β1) G``;  ``O = NS(sign(M))``;
    ``V ← β2 V + (1−β2) O ⊙ O``;  ``Ô = O / (sqrt(V) + ε)``;  ``W ← (1 − lr λ) W − lr·0.2·sqrt(mn)/‖Ô‖_F·Ô``.
    Matrix defaults: lr 1e-3 (AdamW-equivalent: the step's RMS is 0.2·lr), momentum 0.95, nesterov False,
    beta2 0.999, eps 1e-8, weight_decay 0.01, Newton–Schulz as Muon. State: 8 bytes per fp32 parameter.
    Choices: the sign before NS ("sign-stabilized orthogonal update") is in the paper from v2 on (v1 and the
    authors' code Chongjie-Si/AdaMuon have no sign); no bias correction on V as in the paper (the authors'
    code corrects it, which the RMS rescale cancels up to ε); beta2 0.999 and the 0.2 target are the authors'
    code's; the code's Nesterov momentum is ``nesterov=True``.
    Paper: Si, Zhang & Shen, AdaMuon: Adaptive Muon Optimizer (arXiv:2507.11005).
    """
    return muon().replace(
        "adamuon",
        chains={"matrix": chain(EMAMomentum(), Sign(), Orthogonalize(), OrthoSecondMoment(), MatchRMS(),
                                DecoupledDecay())},
        defaults={"matrix": {"lr": 1e-3, "momentum": 0.95, "nesterov": False, "beta2": 0.999, "eps": 1e-8,
                             "weight_decay": 0.01}},
        summary="AdaMuon: orthogonalized sign-momentum with an element-wise second moment, at AdamW's RMS",
        paper="Si, Zhang & Shen, AdaMuon: Adaptive Muon Optimizer (arXiv:2507.11005)",
        rule="M ← β1·M + (1−β1)·G;  O = NS(sign(M));  V ← β2·V + (1−β2)·O²;  Ô = O/(√V + ε);\n"
             "W ← (1 − lr·λ)·W − lr·0.2·√(mn)·Ô/‖Ô‖_F",
    )


@register("adago")
def adago() -> Recipe:
    """AdaGO: Muon's orthogonal direction with an AdaGrad-norm step size (one scalar of state per matrix).

    Update (matrix role): ``M ← μ M + (1−μ) G``;  ``v² ← v² + min(‖G‖_F, γ)²``  (``v_0`` = v0);
    ``α = max(ε, lr·min(‖G‖_F, γ)/v)``;  ``W ← (1 − lr λ) W − α·Orth(M)``.
    Matrix defaults: lr 0.05 (η: spectral norm of the step before adaptation), momentum μ 0.95, nesterov False,
    gamma 10 (gradient Frobenius-norm units), min_step ε 5e-4 (spectral norm per step), v0 1e-6 (so the first
    step is ``α = lr``), weight_decay 0 (the paper has none), Newton–Schulz as Muon, no shape factor.
    Choices: the paper leaves γ, ε, v_0 to the user; lr, μ, γ, ε, v_0 and nesterov are the defaults of the
    public implementation kozistr/pytorch_optimizer (``AdaGO``). The floor ε is skipped at lr = 0 (a
    scheduler's zero means stop).
    Paper: Zhang, Liu & Schaeffer, AdaGrad Meets Muon: Adaptive Stepsizes for Orthogonal Updates
    (arXiv:2509.02981).
    """
    return muon().replace(
        "adago",
        chains={"matrix": chain(EMAMomentum(), Orthogonalize(), AdaGradNormStep(), DecoupledDecay())},
        defaults={"matrix": {"lr": 0.05, "momentum": 0.95, "nesterov": False, "weight_decay": 0.0}},
        summary="AdaGO: orthogonalized momentum with an AdaGrad-norm step size per matrix",
        paper="Zhang, Liu & Schaeffer, AdaGrad Meets Muon: Adaptive Stepsizes for Orthogonal Updates "
              "(arXiv:2509.02981)",
        rule="M ← μ·M + (1−μ)·G;  v² ← v² + min(‖G‖_F, γ)²;  α = max(ε, lr·min(‖G‖_F, γ)/v);\n"
             "W ← (1 − lr·λ)·W − α·Orth(M)",
    )
