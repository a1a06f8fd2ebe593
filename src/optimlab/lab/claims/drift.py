"""Discretisation drift: one GD step follows the modified flow to O(h³), the gradient flow only to O(h²).

Rosca, "On discretisation drift and smoothness regularisation in neural network training" (PhD thesis,
arXiv:2310.14036), building on Barrett & Dherin, "Implicit Gradient Regularization" (arXiv:2009.11162):
gradient descent with step h follows θ̇ = −∇(L + (h/4)‖∇L‖²) more closely than the negative gradient flow
(NGF) θ̇ = −∇L.

Protocol (fixed before the first run):

- Model: tanh MLP 64 → 32 → 10 in float64 (torch default-style uniform init from the start point's
  generator), cross-entropy on 64 images of the 8×8 digits (pixels / 16) drawn with the seed.
- Start points: P independent inits. Step sizes h ∈ {1e-3, 10^-2.5, 1e-2, 10^-1.5, 1e-1}.
- For each start θ₀ and h: one GD step θ₀ − h∇L(θ₀); the NGF and the modified flow integrated from θ₀
  for time h by RK4 with 8 substeps (``optimlab.diagnostics.flows``; the modified field uses one HVP).
  Local error e(h) = ‖θ_GD − θ_flow(h)‖₂; per h the median over the P starts.
- Slopes: least-squares slope of log median e versus log h over the five h.
- Full: P = 50, seeds 0, 1, 2. Fast: P = 4, seeds 0, 1.
- Verdict per seed: |slope_NGF − 2| ≤ 0.3 and |slope_modified − 3| ≤ 0.3.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from .base import Claim, Outcome, new_figure, register

HS = tuple(10.0 ** e for e in (-3.0, -2.5, -2.0, -1.5, -1.0))
FULL = {"starts": 50}
FAST = {"starts": 4}
SUBSTEPS, TOL = 8, 0.3
N_IMAGES, HIDDEN = 64, 32


def _problem(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from ..tasks.base import generator
    from ..tasks.classification import _digits

    x_np, y_np = _digits()
    idx = torch.randperm(len(x_np), generator=generator(seed, "drift-data"))[:N_IMAGES]
    x = torch.tensor(x_np / 16.0, dtype=torch.float64)[idx]
    y = torch.tensor(y_np, dtype=torch.int64)[idx]
    return x, y


def _model(gen: torch.Generator) -> nn.Module:
    from ..tasks.base import init_module_

    model = nn.Sequential(nn.Linear(64, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 10)).double()
    init_module_(model, gen)
    return model


def local_errors(seed: int, starts: int) -> dict[str, np.ndarray]:
    """(starts, len(HS)) local errors of one GD step against the NGF and the modified flow."""
    from ...diagnostics.flows import flat_loss, gd_step, gradient_flow, modified_flow, rk4
    from ..tasks.base import generator

    x, y = _problem(seed)

    def loss_fn(model: nn.Module, batch: tuple) -> torch.Tensor:
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    ngf_err = np.zeros((starts, len(HS)))
    mod_err = np.zeros((starts, len(HS)))
    for i in range(starts):
        f, theta0 = flat_loss(_model(generator(seed, "drift-start", i)), loss_fn, (x, y))
        for j, h in enumerate(HS):
            gd = gd_step(f, theta0, h)
            ngf_err[i, j] = float((gd - rk4(gradient_flow(f), theta0, h, SUBSTEPS)).norm())
            mod_err[i, j] = float((gd - rk4(modified_flow(f, h), theta0, h, SUBSTEPS)).norm())
    return {"ngf": ngf_err, "modified": mod_err}


def _slope(errors: np.ndarray) -> float:
    return float(np.polyfit(np.log(HS), np.log(np.median(errors, axis=0)), 1)[0])


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = FAST if fast else FULL
    per_seed, passed, curves = {}, {}, {}
    for seed in seeds:
        err = local_errors(seed, cfg["starts"])
        s_ngf, s_mod = _slope(err["ngf"]), _slope(err["modified"])
        curves[seed] = {k: np.median(v, axis=0).tolist() for k, v in err.items()}
        per_seed[seed] = {"slope_ngf": s_ngf, "slope_modified": s_mod,
                          "median_err_ngf@h=0.1": curves[seed]["ngf"][-1],
                          "median_err_modified@h=0.1": curves[seed]["modified"][-1]}
        passed[seed] = bool(abs(s_ngf - 2.0) <= TOL and abs(s_mod - 3.0) <= TOL)
    fig, (ax,) = new_figure(1, width=6.0)
    for i, seed in enumerate(seeds):
        ax.loglog(HS, curves[seed]["ngf"], "o-", color=f"C{i}", label=f"NGF, seed {seed}")
        ax.loglog(HS, curves[seed]["modified"], "s--", color=f"C{i}", label=f"modified flow, seed {seed}")
    ax.set(xlabel="step size h", ylabel="median ‖θ_GD − θ_flow(h)‖",
           title=f"one GD step vs RK4 flows, tanh MLP on {N_IMAGES} digits, {cfg['starts']} starts")
    ax.legend(fontsize=7)
    fig.tight_layout()
    explanation = "; ".join(f"seed {s}: slope NGF {per_seed[s]['slope_ngf']:.3f}, modified flow "
                            f"{per_seed[s]['slope_modified']:.3f}" for s in seeds)
    explanation += f" (need 2 ± {TOL} and 3 ± {TOL})"
    return Outcome(per_seed, passed, explanation, fig,
                   {"h": list(HS), "median_errors": {str(s): c for s, c in curves.items()}, "config": dict(cfg)})


register(Claim(
    id="drift-modified-flow",
    paper="On discretisation drift and smoothness regularisation in neural network training (Rosca, PhD thesis)",
    arxiv="2310.14036",
    statement="Gradient descent follows the modified flow θ̇ = −∇(L + (h/4)‖∇L‖²) more closely than the "
              "gradient flow: the local error of one step is O(h³) against O(h²).",
    optimizers=(),
    protocol="tanh MLP 64→32→10 (float64) on 64 digits, 50 random start points, h ∈ 10^{−3, −2.5, …, −1}; one GD "
             "step vs RK4 (8 substeps, HVPs) of the NGF and of the modified flow; slope of the median local "
             "error vs h (fast: 4 start points).",
    rule=f"log-log slope of the local error: NGF 2 ± {TOL}, modified flow 3 ± {TOL}",
    margin=f"± {TOL} on each slope, every seed",
    experiment=_experiment,
))
