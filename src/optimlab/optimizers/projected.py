"""Low-rank projected optimizers: GaLore, DCT column selection, Online Subspace Descent, Subset-Norm/SNSM.

Each keeps the ``matrix`` role's optimizer state on a rank-r projection of the gradient (r = rank_fraction ·
min(m, n)); the other roles (embedding, head, vector) use AdamW, as the papers do for non-matrix weights.
"""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import AdamMoments, DecoupledDecay, LionSign
from ..transforms.projected import DCTProjector, OSDProjector, Projected, SVDProjector
from ..transforms.subset_norm import SubsetNormMomentum
from .adam import adamw

GALORE_PAPER = ("Zhao et al., GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection "
                "(arXiv:2403.03507)")
_PROJ_DEFAULTS = {"rank_fraction": 0.25, "update_proj_gap": 200, "proj_scale": 0.25}
_PROJECTED_RULE = ("X = G (m ≥ n) or Gᵀ;  every T steps refresh the basis Q (N × r);  R = X Q;\n"
                   "U = Adam(R) (state of the projected shape, carried across refreshes);\n"
                   "p ← (1 − lr·λ)·p − lr·α·U Qᵀ (transposed back when m < n)")


def _projected(name: str, projector, inner, summary: str, paper: str, rule: str, **matrix) -> Recipe:
    return adamw().replace(
        name,
        chains={"matrix": chain(Projected(name.split("_")[0], projector, inner), DecoupledDecay())},
        defaults={"matrix": {**_PROJ_DEFAULTS, **matrix}},
        summary=summary, paper=paper, rule=rule)


@register("galore_adamw")
def galore_adamw() -> Recipe:
    """GaLore-AdamW: Adam on the gradient projected onto its top-r singular subspace, refreshed every T steps.

    Update (matrix role, ``X`` the m × n gradient or its transpose, whichever is tall): every T steps
    ``Q ← top-r right singular vectors of X`` (exact SVD; ``proj_iters > 0``: that many power-iteration steps
    warm-started from the previous Q); ``R = X Q``; Adam moments on ``R`` (bias-corrected, kept across
    refreshes as GaLore does); ``p ← (1 − lr λ) p − lr·α·Adam(R) Qᵀ``.
    Defaults: lr 1e-3 (every role; parameter units per step), betas (0.9, 0.999), eps 1e-8,
    weight_decay 0.01, rank_fraction 0.25 (r = n/4, the paper's 128 of 512), update_proj_gap T = 200,
    proj_scale α = 0.25, proj_iters 0 (GaLore's SVD), proj_type "std" (the paper's side; "reverse_std", the
    reference projector's other option, puts the basis on the large side). Other roles: AdamW.
    State (matrix role): Adam on max(m, n) × r plus the basis min(m, n) × r (reverse_std: Adam on
    min(m, n) × r plus the basis max(m, n) × r).
    Paper: Zhao et al., GaLore (arXiv:2403.03507).
    """
    return _projected("galore_adamw", SVDProjector(), [AdamMoments()],
                      "GaLore: Adam on the top-r SVD projection of the gradient (matrix role), AdamW elsewhere",
                      GALORE_PAPER, "Q ← top-r singular vectors of G every T steps;\n" + _PROJECTED_RULE)


@register("galore_lion")
def galore_lion() -> Recipe:
    """GaLore-Lion: Lion on the top-r SVD projection of the gradient (any inner chain works; this one is Lion).

    Update (matrix role): as galore_adamw with Lion's ``sign(β1 m + (1−β1) R)``, ``m ← β2 m + (1−β2) R``
    in place of Adam. Defaults: matrix lr 1e-4 (Lion's usual 3-10× below Adam's), betas (0.9, 0.99),
    weight_decay 0.01, rank_fraction 0.25, update_proj_gap 200, proj_scale 0.25. Other roles: AdamW, lr 1e-3.
    Papers: GaLore (arXiv:2403.03507), whose reference code ships a GaLore-Lion; Lion (arXiv:2302.06675).
    """
    return _projected("galore_lion", SVDProjector(), [LionSign()],
                      "GaLore with Lion as the inner optimizer (matrix role), AdamW elsewhere",
                      GALORE_PAPER + "; Chen et al., Lion (arXiv:2302.06675)",
                      "Q ← top-r singular vectors of G every T steps;\n" + _PROJECTED_RULE.replace("Adam", "Lion"),
                      lr=1e-4, betas=(0.9, 0.99))


@register("dct_adamw")
def dct_adamw() -> Recipe:
    """DCT-AdamW: GaLore with the SVD replaced by a selection of r columns of the DCT-II matrix.

    Update (matrix role): every T steps ``I ← the r indices j with the largest ‖(X C)_{:,j}‖`` (``C``: the
    orthonormal DCT-II matrix of size min(m, n), a shared constant; only ``I`` is stored); ``Q = C[:, I]``;
    then as galore_adamw: Adam on ``R = X Q``, ``p ← (1 − lr λ) p − lr·α·Adam(R) Qᵀ``.
    Defaults: as galore_adamw (rank_fraction 0.25, T = 200, α = 0.25, lr 1e-3, weight_decay 0.01).
    State (matrix role): Adam on max(m, n) × r plus an index mask of min(m, n) entries.
    Paper: Modoranu et al., SVD-Free Low-Rank Adaptive Gradient Optimization for Large Language Models
    (arXiv:2505.17967).
    """
    return _projected("dct_adamw", DCTProjector(), [AdamMoments()],
                      "DCT column-selection projector (SVD-free GaLore) with Adam, AdamW elsewhere",
                      "Modoranu et al., SVD-Free Low-Rank Adaptive Gradient Optimization for Large Language "
                      "Models (arXiv:2505.17967)",
                      "I ← top-r columns of ‖X C‖ (C: DCT-II) every T steps; Q = C[:, I];\n" + _PROJECTED_RULE)


@register("osd_adamw")
def osd_adamw() -> Recipe:
    """Online Subspace Descent with Adam: the projection basis is learned online instead of by periodic SVD.

    Update (matrix role): step 1: ``Q ← top-r SVD``; every step ``R = X Q``, Adam on ``R``,
    ``p ← (1 − lr λ) p − lr·α·Adam(R) Qᵀ``; then ``Q`` takes one AdamW step (β (0.9, 0.999), ε 1e-8,
    weight decay 0.01: torch's AdamW defaults, as the reference code) on ``‖X̂ Q Qᵀ − X̂‖²_F``,
    ``X̂ = X/‖X‖_F``, with lr ``proj_lr``.
    Defaults: proj_lr 5e-3 (the reference code's 1/T at T = 200), rank_fraction 0.25, proj_scale 0.25, lr 1e-3,
    weight_decay 0.01. State (matrix role): Adam on max(m, n) × r, the basis and its two AdamW moments.
    Paper: Liang et al., Memory-Efficient LLM Training with Online Subspace Descent (arXiv:2408.12857);
    details from github.com/kyleliang919/Online-Subspace-Descent (``continuous`` projection type).
    """
    return _projected("osd_adamw", OSDProjector(), [AdamMoments()],
                      "Online Subspace Descent: Adam in a subspace learned online (matrix role), AdamW elsewhere",
                      "Liang et al., Memory-Efficient LLM Training with Online Subspace Descent (arXiv:2408.12857)",
                      "Q ← SVD at step 1, then AdamW on ‖X̂QQᵀ − X̂‖² after each use;\n" + _PROJECTED_RULE)


SNSM_PAPER = ("Nguyen et al., Efficient Adaptive Optimization via Subset-Norm and Subspace-Momentum "
              "(arXiv:2411.07120)")


@register("snsm")
def snsm() -> Recipe:
    """AdamW-SNSM: Subset-Norm step sizes with Subspace-Momentum for the ``matrix`` role, AdamW elsewhere.

    Update (matrix role, ``X`` the tall view of the gradient, M × N): ``v_i ← β2 v_i + (1−β2) Σ_j X_ij²``
    (one number per row); every T steps ``Q ← top-r SVD`` and the momentum restarts; ``R = X Q``;
    ``m ← β1 m + (1−β1) R``; ``u = (m Qᵀ + X − R Qᵀ) / (sqrt(v) + ε)``;
    ``p ← (1 − lr λ) p − lr·sqrt(1−β2^t)/(1−β1^t)·u``.
    Matrix defaults (the paper's LLaMA-60M run): lr 0.05 (the subset norm sums N squares: a step of about
    lr/sqrt(N) per entry), betas (0.9, 0.999), eps 1e-8, weight_decay 0, rank_fraction 0.25 (128 of 512),
    update_proj_gap 200, proj_iters 0. Other roles: AdamW lr 1e-3 (set with ``per_role=``).
    State (matrix role): momentum max(m, n) × r, basis min(m, n) × r, v of max(m, n).
    """
    return adamw().replace(
        "snsm",
        chains={"matrix": chain(SubsetNormMomentum(subspace=True), DecoupledDecay())},
        defaults={"matrix": {"lr": 0.05, "weight_decay": 0.0, "rank_fraction": 0.25, "update_proj_gap": 200}},
        main=("matrix",),
        summary="Subset-Norm step size + Subspace-Momentum (matrix role), AdamW elsewhere",
        paper=SNSM_PAPER,
        rule="v_i ← β2·v_i + (1−β2)·Σ_j X_ij²;  Q ← top-r SVD every T steps (momentum reset);\n"
             "R = X Q;  m ← β1·m + (1−β1)·R;  p ← (1 − lr·λ)·p − lr·c_t·(m Qᵀ + X − R Qᵀ)/(sqrt(v) + ε)")


@register("adamw_sn")
def adamw_sn() -> Recipe:
    """AdamW-SN: Adam's momentum with a Subset-Norm second moment (one number per row of the tall view).

    Update (matrix role): ``v_i ← β2 v_i + (1−β2) Σ_j X_ij²``; ``m ← β1 m + (1−β1) X``;
    ``p ← (1 − lr λ) p − lr·sqrt(1−β2^t)/(1−β1^t)·m/(sqrt(v) + ε)``.
    Matrix defaults: lr 0.05, betas (0.9, 0.999), eps 1e-8, weight_decay 0 (the paper's AdamSN run).
    Other roles: AdamW lr 1e-3. Paper: Nguyen et al. (arXiv:2411.07120).
    """
    return adamw().replace(
        "adamw_sn",
        chains={"matrix": chain(SubsetNormMomentum(subspace=False), DecoupledDecay())},
        defaults={"matrix": {"lr": 0.05, "weight_decay": 0.0}},
        main=("matrix",),
        summary="Adam with a Subset-Norm (per-row) second moment (matrix role), AdamW elsewhere",
        paper=SNSM_PAPER,
        rule="v_i ← β2·v_i + (1−β2)·Σ_j X_ij²;  m ← β1·m + (1−β1)·X;  "
             "p ← (1 − lr·λ)·p − lr·c_t·m/(sqrt(v) + ε)")
