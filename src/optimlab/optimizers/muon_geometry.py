"""Muon relatives that change the geometry of the matrix step: Pion (rotations), Kaon (random spectrum),
AuON / Hybrid-AuON (cosh-RMS scaling), ROOT (outlier clipping, shape-specific Newton–Schulz) and
Drop-Muon (a random subset of layers per step).

Each is Muon's recipe with the ``matrix`` role replaced; embeddings, heads and vectors keep Muon's AdamW
(lr 3e-4, betas (0.9, 0.95), weight_decay 0.01, set with ``per_role=``) unless a docstring says otherwise.
"""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import (CoshRMSNormalize, DecoupledDecay, EMAMomentum, HeavyBall, Orthogonalize, OutlierClip,
                          PionRotation, RandomSpectrum, ScaleByShape, ShapeOrthogonalize, subset_chain)
from .muon import muon


@register("pion")
def pion() -> Recipe:
    """Pion: rotate each hidden matrix on both sides, ``W ← R_out W R_in``; its singular values never change.

    Update (matrix role, ``W`` flattened to m × n): ``G_out = g Wᵀ − W gᵀ``, ``G_in = Wᵀ g − gᵀ W``;
    per side ``m ← β1 m + (1−β1) G``, ``v ← β2 v + (1−β2) G⊙G``, ``A = −m / (sqrt(v) + ε)``;
    ``α = c·sqrt(mn) / (‖A_out W + W A_in‖_F + ε)``;  ``W ← exp(lr α A_out) · W · exp(lr α A_in)``.
    Matrix defaults: lr 0.01 and rms_target c 0.2 (the first-order change has RMS lr·c = 2e-3 weight units
    per step), betas (0.9, 0.999), eps 1e-8, rotation_map "expm"; no weight decay. State: 2(m² + n²) numbers.
    Choices: the rule follows the public description of the paper (the second-order truncation
    ``I + X + X²/2`` it names is ``rotation_map="taylor2"``; it is not exactly orthogonal, so the default
    is the exact exponential — "cayley" is the other exact option); lr, c and betas are ours (not published).
    Paper: Shi, Li, Qiu, Wen, Buchholz & Liu, Pion: A Spectrum-Preserving Optimizer via Orthogonal
    Equivalence Transformation (arXiv:2605.12492).
    """
    return muon().replace(
        "pion",
        chains={"matrix": chain(PionRotation())},
        defaults={"matrix": {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "rms_target": 0.2}},
        summary="Pion: two-sided rotations of each hidden matrix (spectrum preserved), AdamW elsewhere",
        paper="Shi et al., Pion: A Spectrum-Preserving Optimizer via Orthogonal Equivalence Transformation "
              "(arXiv:2605.12492)",
        rule="G_out = gWᵀ − Wgᵀ, G_in = Wᵀg − gᵀW;  A = −m/(√v + ε) per side (Adam moments of G);\n"
             "α = c·√(mn)/‖A_out W + W A_in‖_F;  W ← R(lr·α·A_out)·W·R(lr·α·A_in)",
    )


@register("kaon")
def kaon() -> Recipe:
    """Kaon: Muon's step with the singular values of the momentum replaced by random noise.

    Update (matrix role): ``B ← μ B + (1−μ) G``;  ``M = (1−μ) G + μ B`` (Nesterov) ``= U Σ Vᵀ``;
    ``W ← (1 − lr λ) W − lr·s·U diag(ξ) Vᵀ`` with ``ξ_i ~ Uniform[kaon_low, kaon_high]`` i.i.d., drawn from
    ``(kaon_seed, step, position of W in its group)`` (reproducible, nothing to checkpoint), and
    ``s = sqrt(max(1, m/n))``.
    Matrix defaults: Muon's (lr 0.02 spectral units per step before s, momentum 0.95, nesterov True,
    weight_decay 0.01) and kaon_noise "uniform", kaon_low 0, kaon_high 1, kaon_seed 0 (exact SVD).
    ``kaon_noise="chaotic"`` is the matmul-only form: ``kaon_steps`` (5) iterations of
    ``X ← 4.1 (I − X Xᵀ)² X`` from ``X = M/‖M‖_F``, divided by 1.175.
    Choices: the abstract says only "replaces singular values with random noise"; the distribution
    (uniform on [0, 1]) is ours. The chaotic map and its constants come from a third-party summary of the
    paper (not verified against the paper); its number of iterations is ours.
    Paper: Shumaylov et al., Muon is Not That Special: Random or Inverted Spectra Work Just as Well
    (arXiv:2605.11181).
    """
    return muon().replace(
        "kaon",
        chains={"matrix": chain(EMAMomentum(), RandomSpectrum(), ScaleByShape(), DecoupledDecay())},
        defaults={"matrix": {"lr": 0.02, "momentum": 0.95, "nesterov": True, "weight_decay": 0.01}},
        summary="Kaon: Muon with the momentum's singular values replaced by random noise",
        paper="Shumaylov et al., Muon is Not That Special: Random or Inverted Spectra Work Just as Well "
              "(arXiv:2605.11181)",
        rule="M = Nesterov momentum = U Σ Vᵀ;\nW ← (1 − lr·λ)·W − lr·s(m, n)·U diag(ξ) Vᵀ,  ξ ~ U[low, high]",
    )


AUON_PAPER = ("Maity, AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates "
              "(arXiv:2509.24320)")
AUON_DEFAULTS = {"lr": 0.08, "momentum": 0.95, "nesterov": True, "weight_decay": 0.01}


@register("auon")
def auon() -> Recipe:
    """AuON: Muon's outer loop with Newton–Schulz replaced by a linear-time cosh-RMS normalization.

    Update (matrix role): ``B ← μ B + (1−μ) G``;  ``M = (1−μ) G + μ B`` (Nesterov);
    ``G' = M / (‖M‖_F + 1e-7)``;  ``U = G' / (sqrt(mean(cosh(G')²)) + 1e-8)``;
    ``W ← (1 − lr λ) W − lr·sqrt(max(1, m/n))·U``.  ``‖U‖₂ ≤ ‖U‖_F < 1``: a spectral trust region.
    Matrix defaults: lr 0.08 (Frobenius norm of the step before the shape factor), momentum 0.95,
    nesterov True, weight_decay 0.01 (both the authors' README example).
    Choices: the rule is the paper's (v1); the authors' repository (github.com/ryyzn9/AuON,
    ``auon/optimizer.py``) instead divides the *unnormalized* momentum by the cosh-RMS of
    ``1.5·G'`` and has no shape factor — not what the paper writes, not followed here.
    Paper: Maity, AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates (arXiv:2509.24320).
    """
    return muon().replace(
        "auon",
        chains={"matrix": chain(EMAMomentum(), CoshRMSNormalize(), ScaleByShape(), DecoupledDecay())},
        defaults={"matrix": dict(AUON_DEFAULTS)},
        summary="AuON: momentum normalized by Frobenius norm and cosh-RMS (linear time), AdamW elsewhere",
        paper=AUON_PAPER,
        rule="M = Nesterov momentum;  G = M/(‖M‖_F + 1e-7);  U = G/(√mean(cosh(G)²) + 1e-8);\n"
             "W ← (1 − lr·λ)·W − lr·s(m, n)·U",
    )


@register("hybrid_auon")
def hybrid_auon() -> Recipe:
    """Hybrid-AuON: one Newton–Schulz step on the momentum, then AuON's cosh-RMS normalization.

    Update (matrix role): ``M`` as in AuON;  ``X = NS_1(M / ‖M‖_F)`` (one quintic step, Jordan's
    ``(3.4445, −4.7750, 2.0315)``);  ``U = AuON(X)`` (Frobenius then cosh-RMS normalization);
    ``W ← (1 − lr λ) W − lr·sqrt(max(1, m/n))·U``.
    Matrix defaults: AuON's (lr 0.08, momentum 0.95, nesterov True, weight_decay 0.01) and ns_steps 1,
    ns_coefficients "jordan", ns_dtype bfloat16.
    Choices: the paper (v1) says "a single Newton–Schulz iteration"; we apply AuON's full map after it
    (re-normalizing the Frobenius norm), so lr means the same as in AuON. The authors' training script
    passes ns_steps=5 to its HybridAuON, whose code is not public.
    Paper: Maity, AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates (arXiv:2509.24320).
    """
    return muon().replace(
        "hybrid_auon",
        chains={"matrix": chain(EMAMomentum(), Orthogonalize(), CoshRMSNormalize(), ScaleByShape(),
                                DecoupledDecay())},
        defaults={"matrix": {**AUON_DEFAULTS, "ns_steps": 1}},
        summary="Hybrid-AuON: one Newton–Schulz step, then AuON's cosh-RMS normalization",
        paper=AUON_PAPER,
        rule="M = Nesterov momentum;  X = NS_1(M/‖M‖_F);  U = AuON(X);  W ← (1 − lr·λ)·W − lr·s(m, n)·U",
    )


@register("root")
def root() -> Recipe:
    """ROOT: momentum with proximal outlier clipping, then Newton–Schulz with shape-specific coefficients.

    Update (matrix role): ``M ← μ M + G``;  ``M̃ = G + μ M`` (Nesterov);  ``ε = q-quantile(|M̃|) + 1e-9``;
    ``O = T_ε(M̃)`` (soft threshold);  ``B = M̃ − O = clamp(M̃, −ε, ε)``;
    ``X = NS_5^{(a,b,c)(m,n)}(B / ‖B‖_F)``;  ``W ← (1 − lr λ) W − lr·0.2·sqrt(max(m, n))·X``.
    Matrix defaults (ROOT's reference code): lr 1e-3 (AdamW-equivalent: the step RMS is 0.2·lr), momentum
    0.95, nesterov True, outlier_quantile 0.9, ns_steps 5 in float32, weight_decay 0.1,
    adjust_lr_fn "match_rms_adamw". Other roles: AdamW lr 1e-3, betas (0.9, 0.95), weight_decay 0.1
    (the reference code's one optimizer for all parameters).
    Choices: ``(a, b, c)`` are published for four shapes (2048 × {2048, 3072, 8192, 16384}, reference code);
    every other shape uses Jordan's quintic, as that code does.
    Paper: He et al., ROOT: Robust Orthogonalized Optimizer for Neural Network Training (arXiv:2511.20626).
    """
    return muon().replace(
        "root",
        chains={"matrix": chain(HeavyBall(), OutlierClip(), ShapeOrthogonalize(), ScaleByShape(),
                                DecoupledDecay())},
        defaults={"matrix": {"lr": 1e-3, "momentum": 0.95, "nesterov": True, "weight_decay": 0.1,
                             "adjust_lr_fn": "match_rms_adamw"},
                  "*": {"lr": 1e-3, "betas": (0.9, 0.95), "weight_decay": 0.1}},
        summary="ROOT: outlier-clipped momentum, shape-specific Newton–Schulz, AdamW elsewhere",
        paper="He et al., ROOT: Robust Orthogonalized Optimizer for Neural Network Training (arXiv:2511.20626)",
        rule="M ← μM + G;  M̃ = G + μM;  B = M̃ − T_ε(M̃),  ε = quantile_0.9(|M̃|);\n"
             "W ← (1 − lr·λ)·W − lr·0.2√max(m, n)·NS_5^{(a,b,c)(m,n)}(B)",
    )


@register("drop_muon")
def drop_muon() -> Recipe:
    """Drop-Muon: Muon on a random subset of the hidden matrices each step; the others stand still.

    Update (matrix role, layers ordered input side first): draw ``s ~ Uniform{0, …, L−1}`` from
    ``(subset_seed, step)``;  for layers ``i ≥ s``: Muon's step (``B ← μB + (1−μ)G``,
    ``W ← (1 − lr λ) W − lr·s(m, n)·NS(B)``);  for ``i < s`` the momentum buffer and the weight are
    unchanged (no decay either).
    ``subset_sampling="independent"``: each layer active with probability keep_prob instead.
    Matrix defaults: Muon's, except nesterov False (the paper's update uses the momentum itself);
    subset_sampling "progressive" (Randomized Progressive Training with uniform start index, the paper's
    experiments), keep_prob 0.5, subset_seed 0. Other roles are updated every step (AdamW).
    Choices: the paper's cost model also allows non-uniform start distributions; only the uniform one
    and independent Bernoulli selection are offered. Step counts of dropped layers still advance. The
    paper's wall-clock gain comes from not back-propagating into the frozen early layers; the optimizer
    only skips their update (a training loop can ask ``transforms.subset.active_layers`` what to skip).
    Paper: Gruntkowska, Maziane, Qu & Richtárik, Drop-Muon: Update Less, Converge Faster (arXiv:2510.02239).
    """
    return muon().replace(
        "drop_muon",
        chains={"matrix": subset_chain(EMAMomentum(), Orthogonalize(), ScaleByShape(), DecoupledDecay())},
        defaults={"matrix": {"lr": 0.02, "momentum": 0.95, "nesterov": False, "weight_decay": 0.01}},
        summary="Drop-Muon: Muon on a randomly drawn suffix of the hidden layers each step, AdamW elsewhere",
        paper="Gruntkowska et al., Drop-Muon: Update Less, Converge Faster (arXiv:2510.02239)",
        rule="S = {s, …, L−1},  s ~ U{0..L−1};  i ∈ S: Muon step;  i ∉ S: momentum and weight unchanged",
    )
