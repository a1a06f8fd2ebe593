"""Curl descent: a few rule-flipped neurons leave learning intact, too many destabilize it.

Ninou, Kadmon, Cayco-Gajic, "Curl Descent: Non-Gradient Learning Dynamics with Sign-Diverse Plasticity"
(arXiv:2510.02765): small curl terms keep the solution manifold stable (learning as with gradient
descent); beyond a critical value they destabilize it.

Protocol (fixed before the first run):

- Task ``student_teacher``: d = 20 Gaussian inputs, teacher of width 4, student of width 20, 1,000
  training points, test loss on 2,000 fresh points; student hidden weights N(0, 1), readout N(0, 1/20).
- Update: full-batch SGD (optimlab ``sgd``, lr 0.5, no momentum) on gradients multiplied by the curl masks
  (``tasks.student_teacher.curl_masks``): a fraction ρ of the hidden neurons (round(20ρ), drawn with the
  seed) move their incoming weights along +∇. ρ ∈ {0, 0.05, 0.1, 0.2, 0.3, 0.5}. Full 5,000 steps, fast
  500 steps. Same init and data for every ρ of a seed.
- Measured: the final test loss L(ρ); also the first step at which the test loss falls below 10% of its
  initial value (reported, not judged).
- Verdict per seed: there is a ρ_c in the grid, above its second value, with L(ρ) ≤ 2·L(0) for every
  0 < ρ < ρ_c and L(ρ) ≥ 10·L(0) for every ρ ≥ ρ_c (ρ_c is reported; no such split: the seed fails).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .base import Claim, Outcome, new_figure, register

RHOS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
LR = 0.5
FULL = {"steps": 5000, "every": 50}
FAST = {"steps": 500, "every": 50}
STABLE, UNSTABLE = 2.0, 10.0


def _run(seed: int, rho: float, steps: int, every: int) -> dict:
    import optimlab
    from ..tasks import get_task
    from ..tasks.student_teacher import apply_masks, curl_masks

    inst = get_task("student_teacher").build(seed)
    masks = curl_masks(inst.model, rho, seed)
    opt = optimlab.create(inst.model, "sgd", lr=LR, nonfinite="ignore", **inst.role_hints)
    batch = inst.batch(0)
    steps_seen, test = [], []
    for t in range(steps + 1):
        if t % every == 0 or t == steps:
            steps_seen.append(t)
            test.append(inst.evaluate()["eval_loss"])
            if not math.isfinite(test[-1]):
                break
        if t == steps:
            break
        opt.zero_grad()
        inst.loss(inst.model, batch).backward()
        apply_masks(inst.model, masks)
        opt.step()
    final = test[-1] if math.isfinite(test[-1]) else math.inf
    hit = [s for s, v in zip(steps_seen, test) if v <= 0.1 * test[0]]
    return {"steps": steps_seen, "test": test, "final": final, "t_10pct": float(hit[0]) if hit else math.inf}


def critical_rho(ratios: Sequence[float]) -> float:
    """The smallest ρ of RHOS[2:] such that every 0 < ρ below it has ratio ≤ STABLE and every ρ from it on
    has ratio ≥ UNSTABLE; NaN when there is none. ``ratios[i]`` is L(RHOS[i]) / L(0)."""
    for j in range(2, len(RHOS)):
        if all(r <= STABLE for r in ratios[1:j]) and all(r >= UNSTABLE for r in ratios[j:]):
            return RHOS[j]
    return math.nan


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = FAST if fast else FULL
    per_seed, passed, runs, all_ratios = {}, {}, {}, {}
    for seed in seeds:
        r = {rho: _run(seed, rho, cfg["steps"], cfg["every"]) for rho in RHOS}
        runs[seed] = r
        base = r[0.0]["final"]
        ratios = [r[rho]["final"] / base if base > 0 else math.inf for rho in RHOS]
        rc = critical_rho(ratios)
        all_ratios[seed] = ratios
        # finite numbers only: a diverged run is flagged, an unreached 10% level or a missing ρ_c left out
        values: dict[str, float] = {}
        for rho, q in zip(RHOS, ratios):
            if math.isfinite(r[rho]["final"]):
                values[f"loss@rho={rho:g}"] = float(r[rho]["final"])
                if rho > 0 and math.isfinite(q):
                    values[f"ratio@rho={rho:g}"] = float(q)
            else:
                values[f"diverged@rho={rho:g}"] = 1.0
            if math.isfinite(r[rho]["t_10pct"]):
                values[f"t10%@rho={rho:g}"] = r[rho]["t_10pct"]
        values["rho_c_found"] = float(not math.isnan(rc))
        if not math.isnan(rc):
            values["rho_c"] = float(rc)
        per_seed[seed] = values
        passed[seed] = not math.isnan(rc)
    fig, axes = new_figure(2, width=5.0)
    for i, seed in enumerate(seeds):
        axes[0].semilogy(RHOS, [runs[seed][rho]["final"] for rho in RHOS], "o-", color=f"C{i}", label=f"seed {seed}")
    axes[0].set(xlabel="flipped fraction ρ", ylabel="final test loss", title=f"{cfg['steps']} steps, lr {LR}")
    axes[0].legend(fontsize=7)
    for k, rho in enumerate(RHOS):
        c = runs[seeds[0]][rho]
        axes[1].semilogy(c["steps"], c["test"], color=f"C{k}", lw=0.9, label=f"ρ = {rho:g}")
    axes[1].set(xlabel="step", ylabel="test loss", title=f"seed {seeds[0]}")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    explanation = "; ".join(
        f"seed {s}: L(ρ)/L(0) = " + ", ".join(f"{all_ratios[s][i]:.3g}" for i in range(1, len(RHOS)))
        + f" for ρ = {', '.join(f'{rho:g}' for rho in RHOS[1:])}; ρ_c = {per_seed[s].get('rho_c', math.nan):g}"
        for s in seeds)
    explanation += f" (need ≤ {STABLE:g} below some ρ_c > 0.05 and ≥ {UNSTABLE:g} from it on; L(0) = " + ", ".join(
        f"{runs[s][0.0]['final']:.3g}" for s in seeds) + ")"
    details = {"config": dict(cfg), "lr": LR, "rhos": list(RHOS),
               "curves": {str(s): {f"{rho:g}": runs[s][rho]["test"] for rho in RHOS} for s in seeds}}
    return Outcome(per_seed, passed, explanation, fig, details)


register(Claim(
    id="curl-threshold",
    paper="Curl Descent: Non-Gradient Learning Dynamics with Sign-Diverse Plasticity (Ninou, Kadmon, Cayco-Gajic)",
    arxiv="2510.02765",
    statement="Small curl terms (few rule-flipped neurons) keep the solution manifold stable and learning works "
              "as under gradient descent; beyond a critical value they destabilize learning.",
    optimizers=("sgd",),
    protocol="student_teacher (d 20, teacher width 4, student width 20, 1,000 points), full-batch GD lr 0.5 with "
             "a fraction ρ ∈ {0, .05, .1, .2, .3, .5} of hidden neurons rule-flipped; final test loss after 5,000 "
             "steps (fast 500).",
    rule=f"some ρ_c > 0.05 in the grid: L(ρ) ≤ {STABLE:g}·L(0) below it, ≥ {UNSTABLE:g}·L(0) from it on",
    margin=f"{STABLE:g}× (stable side) and {UNSTABLE:g}× (unstable side) of L(0), every seed",
    experiment=_experiment,
))
