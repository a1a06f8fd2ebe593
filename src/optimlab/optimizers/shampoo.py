"""Kronecker-factored preconditioners: Shampoo, SOAP, ASGO / DASGO (matrices), AdamW elsewhere."""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import DecoupledDecay
from ..transforms.asgo import ASGOPrecondition
from ..transforms.shampoo import ShampooPrecondition
from ..transforms.soap import SOAPPrecondition
from .adam import adamw

SHAMPOO_PAPER = ("Gupta, Koren & Singer, Shampoo: Preconditioned Stochastic Tensor Optimization (arXiv:1802.09568); "
                 "grafting and blocking: Anil et al., Scalable Second Order Optimization for Deep Learning "
                 "(arXiv:2002.09018)")


@register("shampoo")
def shampoo() -> Recipe:
    """Shampoo: Kronecker-factored inverse 4th roots of the gradient statistics, grafted to Adam's norm.

    Update (matrix role, per block of at most ``block_size`` × ``block_size``)::

        m ← β1 m + (1−β1) G;  L ← β2 L + (1−β2) G Gᵀ;  R ← β2 R + (1−β2) Gᵀ G    (β2 = 1: sums)
        every k steps: P_L = (L + εI)^{-1/4}, P_R = (R + εI)^{-1/4}   (eigh or coupled Newton; cached)
        D = P_L m̂ P_R;   u = D · ‖A‖_F / ‖D‖_F,  A = m̂ / (√v̂ + eps)   (Adam grafting, per layer)
        p ← (1 − lr λ) p − lr u

    With ``betas=(0, 1)``, ``grafting="none"``, ``precondition_frequency=1`` and one block it is the paper's
    Algorithm 1 (``L₀ = R₀ = εI``): ``W ← W − η L^{-1/4} G R^{-1/4}``.
    Matrix defaults: lr 1e-3 (Adam units: RMS step per unit lr ≈ Adam's), betas (0.9, 0.999), matrix_eps 1e-12
    (damping, gradient² units), eps 1e-8 (grafting), precondition_frequency 10 steps, block_size 1024,
    grafting "adam", root_method "eigh", weight_decay 0.01. Parameters of fewer than 2 dims in a Shampoo group
    use the Adam direction. Other roles (embedding, head, vector): AdamW, lr 1e-3, betas (0.9, 0.999),
    weight_decay 0.01. State: 12 bytes per parameter plus 8·(br² + bc²) per block (fp32).
    """
    return adamw().replace(
        "shampoo",
        chains={"matrix": chain(ShampooPrecondition(), DecoupledDecay())},
        defaults={"matrix": {"lr": 1e-3, "weight_decay": 0.01}, "*": {"lr": 1e-3, "weight_decay": 0.01}},
        main=("*",),
        summary="Shampoo (L^-1/4 G R^-1/4, Adam-grafted, blocked) for hidden matrices, AdamW elsewhere",
        paper=SHAMPOO_PAPER,
    )


@register("soap")
def soap() -> Recipe:
    """SOAP: Adam in the eigenbasis of Shampoo's statistics, basis refreshed by one QR power step every k steps.

    Update (matrix role; reference code of Vyas et al.)::

        G' = Q_Lᵀ G Q_R;  m ← β1 m + (1−β1) G;  v ← β2 v + (1−β2) G'²
        u = Q_L [(Q_Lᵀ m Q_R) / (√v + ε)] Q_Rᵀ · √(1−β2^s)/(1−β1^s)     (s = t − 1; no step at t = 1)
        L ← β_s L + (1−β_s) G Gᵀ, R likewise;  every k steps Q ← qr(L Q) (columns by Rayleigh quotient)
        p ← (1 − lr λ) p − lr u

    Defaults (the reference code's): lr 3e-3, betas (0.95, 0.95), shampoo_beta 0.95, eps 1e-8,
    precondition_frequency 10, max_precondition_dim 10000, weight_decay 0.01 — also for the other roles
    (embedding, head, vector: AdamW at lr 3e-3, betas (0.95, 0.95)). State: 16 bytes per parameter plus
    8·(m² + n²) per matrix (fp32). Differences from the reference code: decay is applied before the step
    (AdamW's order) and also at t = 1; vectors run AdamW instead of SOAP's identity-basis Adam (which skips
    step 1 and leaves ε unscaled by the bias correction).
    Paper: Vyas et al., SOAP: Improving and Stabilizing Shampoo using Adam (arXiv:2409.11321).
    """
    hp = {"lr": 3e-3, "betas": (0.95, 0.95), "weight_decay": 0.01}
    return adamw().replace(
        "soap",
        chains={"matrix": chain(SOAPPrecondition(), DecoupledDecay())},
        defaults={"matrix": dict(hp), "*": dict(hp)},
        main=("*",),
        summary="SOAP: Adam in Shampoo's eigenbasis (QR refresh every k steps) for hidden matrices, AdamW elsewhere",
        paper="Vyas et al., SOAP: Improving and Stabilizing Shampoo using Adam (arXiv:2409.11321)",
    )


ASGO_PAPER = "An et al., ASGO: Adaptive Structured Gradient Optimization (arXiv:2503.20762)"


def _asgo(name: str, diagonal: bool, summary: str) -> Recipe:
    return adamw().replace(
        name,
        chains={"matrix": chain(ASGOPrecondition(diagonal=diagonal), DecoupledDecay())},
        # ε = 1e-8 (not Shampoo's 1e-12): float32 eigh resolves eigenvalues only to ~1e-7·λ_max, and without
        # grafting (1e-12)^{-1/2} amplifies that noise; on mnist1d lr 0.01 diverged at 1e-12, trained at 1e-8
        defaults={"matrix": {"lr": 0.01, "betas": (0.9, 0.99), "weight_decay": 0.01, "matrix_eps": 1e-8},
                  "*": {"lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0.01}},
        main=("matrix",), summary=summary, paper=ASGO_PAPER)


@register("asgo")
def asgo() -> Recipe:
    """ASGO: one-sided structured preconditioner ``(V + εI)^{-1/2}`` on the smaller side of each matrix.

    Update (matrix role; for ``m ≤ n``, else mirrored on the right)::

        V ← β2 V + (1−β2) G Gᵀ  (β2 = 1: the analysed sum);  M ← β1 M + (1−β1) G
        every k steps P = (V + εI)^{-1/2};   p ← (1 − lr λ) p − lr P M

    Matrix defaults: lr 0.01 (for i.i.d. gradients ‖P M‖₂ ≈ 1: spectral-norm units, like Muon's lr),
    betas (0.9, 0.99), matrix_eps 1e-8 (gradient² units; 1e-12 lets float32 eigh noise through: no grafting
    bounds the step), precondition_frequency 10, root_method "eigh",
    weight_decay 0.01. Other roles: AdamW (lr 1e-3, betas (0.9, 0.999)), set with ``per_role``.
    State: 4 bytes per parameter plus 8·s² per matrix, s = min(rows, cols) (fp32).
    """
    return _asgo("asgo", False, "ASGO: (V+εI)^-1/2 M on the smaller side of each hidden matrix, AdamW elsewhere")


@register("dasgo")
def dasgo() -> Recipe:
    """DASGO: ASGO with a diagonal statistic, ``u = (diag V + ε)^{-1/2} ⊙ M`` row-wise (smaller side).

    Update (matrix role, ``m ≤ n``): ``v ← β2 v + (1−β2) rowsumsq(G)``; ``M ← β1 M + (1−β1) G``;
    every k steps ``P = (v + ε)^{-1/2}``; ``p ← (1 − lr λ) p − lr diag(P) M``.
    Defaults as :func:`asgo`. State: 4 bytes per parameter plus 8·s per matrix (fp32).
    """
    return _asgo("dasgo", True, "DASGO: diagonal ASGO (row/column AdaGrad-type scaling) for hidden matrices")


PSGD_PAPER = ("Li, Curvature-Informed SGD via General Purpose Lie-Group Preconditioners (arXiv:2402.04553); "
              "Li, Preconditioned Stochastic Gradient Descent (arXiv:1512.04202)")
_PSGD_DOC_DEFAULTS = {"lr": 1e-3, "weight_decay": 0.01}


@register("psgd_kron")
def psgd_kron() -> Recipe:
    """PSGD Kron (whitening): Kronecker-factored ``P = Q_LᵀQ_L ⊗ Q_RᵀQ_R`` fitted on the triangular Lie group.

    Update (matrix role)::

        m ← β m + (1−β) g;  with probability p_t: v ~ N(0, I), A = Q_L m̂ Q_Rᵀ, B = Q_L^{-T} v Q_R^{-1},
        Q_L ← Q_L − μ triu(AAᵀ − BBᵀ) Q_L / ‖AAᵀ + BBᵀ‖₂⁻   (Q_R likewise with AᵀA, BᵀB)
        u = Q_LᵀQ_L m̂ Q_RᵀQ_R · min(1, c/RMS);   p ← (1 − lr λ) p − lr u

    Matrix defaults: lr 1e-3 (RMS-clipped update: parameter units per step), momentum 0.9, precond_lr 0.1,
    precond_init_scale 1, max_size_triangular 8192, update probability 1 for 500 steps then
    ``exp(−0.001 (t − 500))`` floored at 0.03, clip_rms 1.1, weight_decay 0.01, seed 0 (the fit's coin and
    probe vectors are counter-based draws of (seed, step, position)). Other roles: AdamW (lr 1e-3).
    State: 4 bytes per parameter plus 2·(m(m+1) + n(n+1)) per matrix (fp32: the factors' upper triangles).
    The HVP variant (``P → |H|⁻¹``) is :func:`psgd_kron_hvp`.
    """
    from ..transforms.psgd import PSGDKron

    return adamw().replace(
        "psgd_kron", chains={"matrix": chain(PSGDKron(), DecoupledDecay())},
        defaults={"matrix": dict(_PSGD_DOC_DEFAULTS), "*": dict(_PSGD_DOC_DEFAULTS)}, main=("*",),
        summary="PSGD Kron (whitening): Lie-group Kronecker preconditioner for hidden matrices, AdamW elsewhere",
        paper=PSGD_PAPER)


@register("psgd_kron_hvp")
def psgd_kron_hvp() -> Recipe:
    """PSGD Kron fitted on Hessian-vector products: pairs ``(v, H v)`` instead of ``(v, m̂)`` (``P → |H|⁻¹``).

    Same rule and defaults as :func:`psgd_kron`; ``needs={"hvp"}``: the closure calls
    ``loss.backward(create_graph=True)``; one double backward per bucket on the steps that fit ``Q``.
    ``optimlab.create(model, "psgd_kron_hvp")``, stepped as ``opt.step(closure)``.
    """
    from ..transforms.psgd import PSGDKron

    return adamw().replace(
        "psgd_kron_hvp", chains={"matrix": chain(PSGDKron(hvp=True), DecoupledDecay())},
        defaults={"matrix": dict(_PSGD_DOC_DEFAULTS), "*": dict(_PSGD_DOC_DEFAULTS)}, main=("*",),
        summary="PSGD Kron fitted on Hessian-vector products for hidden matrices, AdamW elsewhere",
        paper=PSGD_PAPER, needs=frozenset({"hvp"}))
