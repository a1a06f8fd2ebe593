"""Schedule-free optimizers: SF-SGD and SF-AdamW (Defazio et al.) and SF-NorMuon (Apte et al.).

All three end in :class:`~optimlab.transforms.ScheduleFree`: parameters hold the gradient point ``y``
during training; call ``opt.eval()`` before evaluating or checkpointing for deployment (parameters then
hold the average ``x``) and ``opt.train()`` before the next training step, next to ``model.eval()`` /
``model.train()``. No learning-rate schedule is needed (use ``warmup_steps`` for warmup); a scheduler
still works (the averaging weights follow the scheduled rate).
"""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import EMAMomentum, NorMuonNormalize, Orthogonalize
from ..transforms.schedule_free import ScheduleFree, SecondMomentNormalize

SF_PAPER = "Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, The Road Less Scheduled (arXiv:2405.15682)"
SF_ADAMW = chain(SecondMomentNormalize(), ScheduleFree("betas", adam_bias_correction=True))


@register("sf_sgd")
def sf_sgd() -> Recipe:
    """Schedule-Free SGD: interpolation and averaging in place of momentum and of a schedule.

    Update (t = 1, 2, ...; the parameter holds ``y_t``, the gradient is taken there)::

        γ_t = lr·min(1, t/warmup_steps);   z_{t+1} = z_t − γ_t·(∇f(y_t) + λ·y_t)
        c_{t+1} = t^r·γ_t^p / Σ_{i≤t} i^r·γ_i^p;   x_{t+1} = (1 − c_{t+1})·x_t + c_{t+1}·z_{t+1}
        y_{t+1} = (1 − β)·z_{t+1} + β·x_{t+1}

    Defaults (the authors' SGDScheduleFree): lr 1.0 (parameter units per gradient unit; the authors
    advise 10–50× a scheduled SGD's rate), momentum β 0.9 (unitless; 0.95–0.98 for long runs),
    weight_decay λ 0 (at y), warmup_steps 0, r 0, weight_lr_power p 2. Every role.
    State: ``z`` and ``x`` (8 bytes per fp32 parameter) and a scalar weight sum.
    """
    return Recipe(name="sf_sgd", chains={"*": chain(ScheduleFree("momentum"))},
                  defaults={"*": {"lr": 1.0}},
                  summary="Schedule-Free SGD: z/x interpolation and warmup-weighted averaging, no schedule",
                  paper=SF_PAPER)


@register("sf_adamw")
def sf_adamw() -> Recipe:
    """Schedule-Free AdamW (Algorithm 1 of the paper).

    Update (the parameter holds ``y_t``)::

        v_t = β2·v_{t−1} + (1−β2)·g_t²;   γ_t = lr·sqrt(1 − β2^t)·min(1, t/warmup_steps)
        z_{t+1} = z_t − γ_t·g_t/(√v_t + ε) − γ_t·λ·y_t
        c_{t+1} = γ_t² / Σ_{i≤t} γ_i²  (general: t^r·γ_t^p);   x_{t+1} = (1 − c_{t+1})·x_t + c_{t+1}·z_{t+1}
        y_{t+1} = (1 − β1)·z_{t+1} + β1·x_{t+1}

    Defaults (the authors' AdamWScheduleFree): lr 0.0025 (parameter units per step; 1–10× a scheduled
    AdamW's), betas (0.9, 0.999) — β1 is the interpolation, not a momentum —, eps 1e-8 (gradient units),
    weight_decay 0, warmup_steps 0 (the authors recommend warmup), r 0, weight_lr_power 2.
    State: ``z``, ``x``, ``exp_avg_sq`` (12 bytes per fp32 parameter) and a scalar weight sum.
    """
    return Recipe(name="sf_adamw", chains={"*": SF_ADAMW}, defaults={"*": {"lr": 0.0025}},
                  summary="Schedule-Free AdamW: Adam's denominator, z/x interpolation and averaging, no schedule",
                  paper=SF_PAPER)


@register("sf_normuon")
def sf_normuon() -> Recipe:
    """SF-NorMuon: schedule-free NorMuon for hidden matrices, Schedule-Free AdamW for the other roles.

    Update (matrix role; the parameter holds ``y_t``, ``η_t = lr·min(1, t/warmup_steps)``)::

        m_t = μ·m_{t−1} + (1−μ)·g_t;   P_t = polar(m_t)  (Newton–Schulz)
        v_t = β2·v_{t−1} + (1−β2)·mean_cols(P_t²);   P̂_t = P_t/(√v_t + ε)
        z_{t+1} = (1 − lr·λ)·z_t − η_t·0.2·sqrt(mn)·P̂_t/‖P̂_t‖_F        (weight decay at the fast iterate z)
        c_{t+1} = η_t² / Σ_{i≤t} η_i²;   x_{t+1} = (1 − c_{t+1})·x_t + c_{t+1}·z_{t+1}
        y_{t+1} = (1 − β1)·z_{t+1} + β1·x_{t+1}

    The abstract names "weight decay at the fast iterate" as essential for long horizons; we read the
    fast iterate as ``z`` (it moves at the constant rate, ``x`` averages it, ``y`` lies between), decayed by
    the base ``lr·λ`` as in the public description we follow; the paper's exact placement of momentum
    (no Nesterov here) and of the decay could not be checked against its full text.
    Matrix defaults: lr 0.0025 (the update has RMS 0.2·lr, AdamW's scale; SF-AdamW's default rate),
    momentum μ 0.95, nesterov False, beta1 (interpolation) 0.9, beta2 0.95, eps 1e-7, weight_decay 0.1,
    warmup_steps 0, ns_steps 5 ("jordan" coefficients, bfloat16). Every other role: Schedule-Free AdamW
    at its defaults (set with ``per_role=``), so that ``eval()`` swaps every parameter.
    Paper: Apte, Deshpande, Kumar, Chakrabarti & Kim, Anytime Training with Schedule-Free Spectral
    Optimization (arXiv:2605.23061); NorMuon: Li et al. (arXiv:2510.05491).
    """
    matrix = chain(EMAMomentum(), Orthogonalize(), NorMuonNormalize(), ScheduleFree("beta1", decay_at="z"))
    return Recipe(
        name="sf_normuon", chains={"matrix": matrix, "*": SF_ADAMW},
        defaults={"matrix": {"lr": 0.0025, "momentum": 0.95, "nesterov": False, "weight_decay": 0.1},
                  "*": {"lr": 0.0025}},
        main=("matrix",),
        summary="SF-NorMuon: schedule-free NorMuon (decay at z) for hidden matrices, SF-AdamW elsewhere",
        paper="Apte, Deshpande, Kumar, Chakrabarti & Kim, Anytime Training with Schedule-Free Spectral "
              "Optimization (arXiv:2605.23061); " + SF_PAPER)
