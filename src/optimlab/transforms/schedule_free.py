"""Schedule-free learning (Defazio et al., "The Road Less Scheduled", arXiv:2405.15682) as a terminal
transform, and the un-bias-corrected second moment that Schedule-Free AdamW normalises by.

The chain before :class:`ScheduleFree` computes the *base update* ``u`` (the plain gradient for SF-SGD,
``g/(√v+ε)`` for SF-AdamW, a normalised orthogonalized momentum for SF-NorMuon); ``ScheduleFree`` then
owns how it is applied. It keeps two sequences per parameter, ``z`` (the base iterate, stepped with
``u``) and ``x`` (a weighted average of the ``z``'s), and the parameter holds their interpolation ``y``,
where gradients are taken::

    γ_t = lr · min(1, t/T_warmup) [· sqrt(1 − β2^t) for SF-AdamW]
    z ← z − γ_t·(u + λ·y)                    (decay at y: SF-SGD, SF-AdamW)
      or z ← (1 − lr·λ)·z − γ_t·u            (decay at z, the fast iterate: SF-NorMuon)
    w_t = t^r · γ_t^p;  W ← W + w_t;  c = w_t / W      (p = weight_lr_power = 2: the paper's γ_t²/Σγ_i²)
    x ← (1 − c)·x + c·z
    y ← (1 − β)·z + β·x                      (written into the parameter)

``eval()`` puts ``x`` into the parameters, ``train()`` puts ``y = lerp(z, x, β)`` back, computed by the
same operation as in the step, so a round trip restores ``y`` bit for bit. Storing ``x`` as well as ``z``
(two state tensors rather than the reference package's one, which recovers ``x`` from ``y`` and ``z`` by
an extrapolation that is not exact in floating point) buys exactly that.

The averaging weight uses the scheduled ``γ_t`` of the step itself, as the paper's Algorithm 1 writes
``c_{t+1} = γ_t² / Σ_{i≤t} γ_i²``; the authors' package weights by the running maximum of ``γ`` instead.
The two agree whenever ``γ_t`` never decreases (no user schedule; warmup and bias correction only grow);
with ours, a step at ``lr = 0`` changes nothing, so an LR scheduler can pause training.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from ..linalg.scaling import saturate_
from .decay import weight_decay_spec
from .moments import BETAS, EPS

__all__ = ["ScheduleFree", "SecondMomentNormalize", "interpolate"]

_BETA_DOC = "interpolation β of the gradient point y = (1−β)·z + β·x (0: at z; →1: at the average x)"
INTERPOLATION = {
    # SF-SGD: torch's name for the coefficient that schedule-free uses in place of momentum.
    "momentum": HParam("float", 0.9, _BETA_DOC, low=0.0, high=1.0, high_open=True),
    # SF-AdamW: β1 of ``betas`` (β2 belongs to the second moment), torch.optim.AdamW's pair.
    "betas": BETAS,
    # SF-NorMuon: ``momentum`` is the momentum of the orthogonalized update, ``beta2`` NorMuon's.
    "beta1": HParam("float", 0.9, _BETA_DOC, low=0.0, high=1.0, high_open=True),
}
DECAY_AT = ("y", "z")


def interpolate(params: list[Tensor], zs: list[Tensor], xs: list[Tensor], beta: float) -> None:
    """``p ← lerp(z, x, β) = (1−β)·z + β·x`` — the only way ``y`` is ever computed (step and ``train()``),
    so that ``train()`` after ``eval()`` reproduces the parameters bit for bit."""
    torch._foreach_copy_(params, zs)
    torch._foreach_lerp_(params, xs, beta)


class ScheduleFree(Transform):
    """Terminal transform: apply the base update ``u`` the schedule-free way (see the module docstring).

    ``beta``: the name of the interpolation hyperparameter (``"momentum"``, ``"betas"`` — its β1 — or
    ``"beta1"``). ``adam_bias_correction``: multiply ``γ_t`` by ``sqrt(1 − β2^t)`` (β2 from ``betas``), as
    Schedule-Free AdamW's Algorithm 1 does in place of Adam's bias corrections. ``decay_at``: ``"y"``
    (the paper's SF-SGD/AdamW: ``λ·y`` joins the update) or ``"z"`` (``z ← (1 − lr·λ)·z``: decay at the fast
    iterate, SF-NorMuon). State: ``z``, ``x`` (like the parameter) and the scalar ``weight_sum``.
    ``z`` saturates at ±max/2 of its dtype when a step would take it beyond the range (no ±inf, hence no
    NaN in the average).
    """

    name = "schedule_free"
    scalar_state: ClassVar[dict[str, float]] = {"weight_sum": 0.0}

    def __init__(self, beta: str = "momentum", *, adam_bias_correction: bool = False, decay_at: str = "y"):
        if beta not in INTERPOLATION:
            raise ValueError(f"ScheduleFree: beta must name one of {sorted(INTERPOLATION)}, got {beta!r}")
        if decay_at not in DECAY_AT:
            raise ValueError(f"ScheduleFree: decay_at must be one of {DECAY_AT}, got {decay_at!r}")
        if adam_bias_correction and beta != "betas":
            raise ValueError("ScheduleFree: adam_bias_correction reads β2 from 'betas'; use beta='betas'")
        self.beta, self.adam_bias_correction, self.decay_at = beta, adam_bias_correction, decay_at
        self.hparams = {
            beta: INTERPOLATION[beta],
            "weight_decay": weight_decay_spec(0.0),
            "warmup_steps": HParam("int", 0, "steps of linear warmup of γ (0: none)", low=0),
            "r": HParam("float", 0.0, "power r of the polynomial weight t^r in the average (0: uniform)", low=0.0),
            "weight_lr_power": HParam("float", 2.0, "power p of γ_t in the averaging weight (2: the paper's "
                                                    "γ_t²; 0: no lr weighting)", low=0.0),
        }
        decay = "z ← (1−lr·λ)·z − γ_t·u" if decay_at == "z" else "z ← z − γ_t·(u + λ·y)"
        self.rule = (f"γ_t = lr·min(1, t/T_w){'·√(1−β2^t)' if adam_bias_correction else ''};  {decay};  "
                     "c = t^r·γ_t^p / Σ_i i^r·γ_i^p;  x ← (1−c)·x + c·z;  p ← y = (1−β)·z + β·x")

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        return {"z": p.detach().clone(memory_format=torch.preserve_format),
                "x": p.detach().clone(memory_format=torch.preserve_format)}

    def interpolation(self, group: dict[str, Any]) -> float:
        return group["betas"][0] if self.beta == "betas" else group[self.beta]

    def gamma(self, group: dict[str, Any], t: int) -> float:
        """The scheduled step size ``γ_t`` of step ``t`` (1-based)."""
        warmup = group["warmup_steps"]
        g = group["lr"] * (min(1.0, t / warmup) if warmup > 0 else 1.0)
        if self.adam_bias_correction:
            g *= math.sqrt(1 - group["betas"][1] ** t)
        return g

    def update(self, b: Bucket) -> None:
        """Nothing to transform: the work is in :meth:`apply`."""

    def apply(self, b: Bucket) -> None:
        g = b.group
        lam, beta, key = g["weight_decay"], self.interpolation(g), f"{self.name}.weight_sum"
        u = b.updates
        if u[0].dtype != b.params[0].dtype:
            u = [x.to(b.params[0].dtype) for x in u]
        zs, xs = b.state(self, "z"), b.state(self, "x")
        if lam != 0 and self.decay_at == "y":
            u = torch._foreach_add(u, b.params, alpha=lam)  # λ·y with y the current parameter
        # Parameters that skipped steps (None grads) may be at another t: one foreach call per (γ, c).
        runs: dict[tuple[float, float], list[int]] = defaultdict(list)
        for i, (t, st) in enumerate(zip(b.steps, b.states)):
            gamma = self.gamma(g, t)
            w = t ** g["r"] * gamma ** g["weight_lr_power"] if gamma > 0 else 0.0
            st[key] = st[key] + w
            runs[(gamma, w / st[key] if st[key] > 0 else 0.0)].append(i)
        for (gamma, c), idx in runs.items():
            z, x, p, ui = ([seq[i] for i in idx] for seq in (zs, xs, b.params, u))
            if lam != 0 and self.decay_at == "z":
                torch._foreach_mul_(z, 1 - g["lr"] * lam)
            if gamma != 0:
                torch._foreach_add_(z, ui, alpha=-gamma)
                # z is a plain SGD iterate: with a huge step its exact value may not fit the dtype. It
                # saturates at ±max/2 (finite, sign kept) instead of reaching ±inf, where the average
                # lerp(x, z, c) would compute inf − inf = NaN; the half keeps z − x finite too.
                saturate_(z)
            if c != 0:
                torch._foreach_lerp_(x, z, c)
            interpolate(p, z, x, beta)

    # -- modes (called by ChainOptimizer.train() / .eval()) -------------------------------------
    def to_eval(self, params: list[Tensor], states: list[dict], group: dict[str, Any]) -> None:
        torch._foreach_copy_(params, [s[f"{self.name}.x"] for s in states])

    def to_train(self, params: list[Tensor], states: list[dict], group: dict[str, Any]) -> None:
        interpolate(params, [s[f"{self.name}.z"] for s in states], [s[f"{self.name}.x"] for s in states],
                    self.interpolation(group))


class SecondMomentNormalize(Transform):
    """``v ← β2·v + (1−β2)·u²;  u ← u / (√v + ε)`` — Adam's denominator without bias correction
    (Schedule-Free AdamW folds ``sqrt(1 − β2^t)`` into its step size instead; see :class:`ScheduleFree`).
    State ``exp_avg_sq``. Hyperparameters ``betas`` (β2 used here) and ``eps`` (gradient units)."""

    name = "second_moment"
    rule = "v ← β2·v + (1−β2)·u²;  u ← u/(√v + ε)"
    hparams = {"betas": BETAS, "eps": EPS}

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        return {"exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def update(self, b: Bucket) -> None:
        beta2 = b.group["betas"][1]
        u, v = b.updates, b.state(self, "exp_avg_sq")
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, u, u, 1 - beta2)
        den = torch._foreach_sqrt(v)
        torch._foreach_add_(den, b.group["eps"])
        b.set_ratio(u, den)
