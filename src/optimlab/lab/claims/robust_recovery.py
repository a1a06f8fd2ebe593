"""SubGM recovers a low-rank matrix under dense gross outliers (seed J15).

Ma & Fattahi, "Global Convergence of Sub-gradient Method for Robust Matrix Recovery: Small Initialization,
Noisy Measurements, and Over-parameterization" (arXiv:2202.08788): the sub-gradient method on the ℓ1 loss
(1/m) Σ |⟨A_i, U Uᵀ⟩ − y_i| with small initialization and geometrically decaying steps converges to the true
low-rank matrix even under arbitrarily large, dense outliers, whether or not the factor width k exceeds the
true rank r.

Protocol (fixed before the first run):

- ``robust_matrix_sensing`` with n = 20, r = 2 (condition 4), m = 400 Gaussian measurements, 30% of them
  corrupted by N(0, (100·‖M*‖_F)²) outliers, symmetric U Uᵀ, init scale 1e-3, width k ∈ {2, 5} (fast {5});
- SubGM: optimlab ``sgd`` (no momentum) on the ℓ1 loss with lr η_t = η0·q^t, q = 10^(−4/T), T = 3000 steps
  (fast 1500); η0 tuned on {0.01, 0.03, 0.1, 0.3} (fast {0.03, 0.1, 0.3}) by the mean final relative error
  over seeds, per width;
- the comparison: GD (``sgd``) on the ℓ2 loss at a constant lr, same T and init, at every lr of
  {1e-5, 1e-4, 1e-3, 1e-2} (from "M stays ≈ 0" to "fits the outliers");
- verdict per seed: at every width, SubGM's ‖UUᵀ − M*‖_F/‖M*‖_F < 1e-3 (at its tuned η0) and GD's > 0.1 at every
  lr of its grid. A tuned η0 at the edge of its grid makes the verdict inconclusive.

Amended after the first fast run and before the full one: GD's lr was tuned on the same grid, but its best
value was always the smallest lr, where the factors barely move from the 1e-3 init (relative error 1.0, the
lr → 0 limit); larger lrs fit the outliers (relative error 1.4 to 34). The tuned version could only return
"inconclusive" (grid edge) for a reason that says nothing about the claim, so GD is judged at every lr instead,
which is stricter than judging its best one.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .base import Claim, Outcome, new_figure, register

FAST = {"widths": (5,), "steps": 1500, "subgm": (0.03, 0.1, 0.3)}
FULL = {"widths": (2, 5), "steps": 3000, "subgm": (0.01, 0.03, 0.1, 0.3)}
GD_GRID = (1e-5, 1e-4, 1e-3, 1e-2)
OPTIONS = {"n": 20, "rank": 2, "num_measurements": 400, "outlier_fraction": 0.3, "outlier_scale": 100.0,
           "init_scale": 1e-3}
SUBGM_MAX, GD_MIN = 1e-3, 0.1


def _train(seed: int, width: int, loss: str, lr0: float, steps: int, decay: bool) -> tuple[float, list[float]]:
    import optimlab

    from ..tasks import get_task

    inst = get_task("robust_matrix_sensing", width=width, loss=loss, **OPTIONS).build(seed)
    model = inst.model
    opt = optimlab.create(list(model.parameters()), "sgd", lr=lr0)
    q = 10 ** (-4.0 / steps) if decay else 1.0
    batch = inst.batch(0)
    curve = []
    for t in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr0 * q ** t
        opt.zero_grad()
        value = inst.loss(model, batch)
        if not torch.isfinite(value):
            return math.inf, curve
        value.backward()
        opt.step()
        if t % 25 == 0 or t == steps - 1:
            curve.append(float(inst.evaluate(model)["rel_error"]))
    rel = float(inst.evaluate(model)["rel_error"])
    return (rel if math.isfinite(rel) else math.inf), curve


def _tune(seeds, width, loss, grid, steps, decay):
    finals = {lr: {s: _train(s, width, loss, lr, steps, decay) for s in seeds} for lr in grid}
    means = {lr: float(np.mean([v[0] for v in finals[lr].values()])) for lr in grid}
    best = min(grid, key=lambda lr: (means[lr], lr))
    return best, means, finals


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = FAST if fast else FULL
    per_seed = {s: {} for s in seeds}
    passed = {s: True for s in seeds}
    edges, curves, tuning = [], {}, {}
    for k in cfg["widths"]:
        for label, loss, grid, decay in (("subgm", "l1", cfg["subgm"], True), ("gd_l2", "l2", GD_GRID, False)):
            best, means, finals = _tune(seeds, k, loss, grid, cfg["steps"], decay)
            tuning[f"{label}@k={k}"] = {"best": best, "means": {str(lr): v for lr, v in means.items()}}
            if label == "subgm" and best in (grid[0], grid[-1]):
                edges.append(f"{label} (k={k}) lr0={best:g} at the edge of [{grid[0]:g} .. {grid[-1]:g}]")
            for s in seeds:
                rel = finals[best][s][0]
                curves[(label, k, s)] = finals[best][s][1]
                if label == "subgm":
                    per_seed[s][f"subgm rel_error (k={k})"] = rel
                    per_seed[s][f"subgm lr0 (k={k})"] = float(best)
                    passed[s] = passed[s] and rel < SUBGM_MAX
                else:  # every lr of the grid is judged: the smallest error over the grid
                    low = min(finals[lr][s][0] for lr in grid)
                    per_seed[s][f"gd_l2 rel_error (k={k})"] = low
                    per_seed[s][f"gd_l2 best lr (k={k})"] = float(min(grid, key=lambda lr: finals[lr][s][0]))
                    passed[s] = passed[s] and low > GD_MIN
    fig, (ax,) = new_figure(1)
    for i, k in enumerate(cfg["widths"]):
        for label, style in (("subgm", "-"), ("gd_l2", "--")):
            c = curves[(label, k, seeds[0])]
            ax.semilogy([25 * j for j in range(len(c))], c, style, color=f"C{i}", label=f"{label}, k={k}")
    ax.axhline(SUBGM_MAX, color="k", lw=0.6, ls=":")
    ax.axhline(GD_MIN, color="k", lw=0.6, ls=":")
    ax.set(xlabel="step", ylabel="‖UUᵀ − M*‖_F / ‖M*‖_F",
           title=f"n=20, r=2, 30% outliers ×100, seed {seeds[0]} (tuned lr)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    explanation = "; ".join(
        f"k={k}: SubGM rel. error " + ", ".join(f"{per_seed[s][f'subgm rel_error (k={k})']:.2e}" for s in seeds)
        + f" (need < {SUBGM_MAX:g}), ℓ2 GD's smallest over its lr grid " + ", ".join(f"{per_seed[s][f'gd_l2 rel_error (k={k})']:.3g}" for s in seeds)
        + f" (need > {GD_MIN:g})" for k in cfg["widths"])
    bad = any(not math.isfinite(v) for s in seeds for key, v in per_seed[s].items() if key.startswith("subgm"))
    return Outcome(per_seed, passed, explanation, fig, {"tuning": tuning, "options": OPTIONS, "steps": cfg["steps"]},
                   grid_edges=edges, verdict="inconclusive" if bad else None)


SUBGM = register(Claim(
    id="subgm-robust-recovery",
    paper="Global Convergence of Sub-gradient Method for Robust Matrix Recovery: Small Initialization, Noisy "
          "Measurements, and Over-parameterization (Ma, Fattahi)",
    arxiv="2202.08788",
    statement="With small initialization, the sub-gradient method on the ℓ1 loss recovers the low-rank truth under "
              "arbitrarily large dense outliers, regardless of over-parameterization.",
    optimizers=("sgd",),
    protocol="robust_matrix_sensing n=20, r=2, m=400, 30% outliers ×100‖M*‖, init 1e-3, width k ∈ {2, 5}; SubGM "
             "(sgd on ℓ1, lr η0·q^t, q^T = 1e-4, T=3000, η0 tuned) vs ℓ2 GD (every lr of a grid); fast: k=5, T=1500",
    rule=f"SubGM relative error < {SUBGM_MAX:g} and ℓ2 GD relative error > {GD_MIN:g} (at every lr) at every width",
    margin=f"SubGM < {SUBGM_MAX:g} (η0 tuned, grid edge → inconclusive); GD > {GD_MIN:g} at every lr of its grid",
    experiment=_experiment,
    full_seeds=(0, 1, 2, 3, 4),
))
