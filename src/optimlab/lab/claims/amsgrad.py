"""Adam fails and AMSGrad converges on Reddi et al.'s online convex counterexample.

Theorem 1 of "On the Convergence of Adam and Beyond": on F = [−1, 1] the online losses
f_t(x) = C·x for t mod 3 = 1 and f_t(x) = −x otherwise (C > 2) have the minimizer of the regret
x* = −1, yet Adam with β1 = 0, β2 = 1/(1 + C²) and α_t = α/√t converges to x = +1 (average regret
does not vanish); AMSGrad's max of the second moment fixes it. Both are optimlab's optimizers
(bias-corrected like torch); the step size α/√t is set in the param group before each step, and x
is projected onto [−1, 1] after each step. The problem is deterministic; seeds draw x_1 uniformly.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .base import Claim, Outcome, new_figure, register

C = 3.0
ALPHA = 0.5
FAST = {"steps": 1500}
FULL = {"steps": 30000}
TOL = 0.1


def _run(name: str, x0: float, steps: int) -> dict:
    import optimlab

    x = torch.nn.Parameter(torch.tensor([x0], dtype=torch.float64))
    opt = optimlab.create([x], name, lr=ALPHA, betas=(0.0, 1.0 / (1.0 + C * C)), eps=1e-8)
    xs, regret = [], 0.0
    for t in range(1, steps + 1):
        coef = C if t % 3 == 1 else -1.0
        xs.append(float(x.detach()))
        regret += coef * float(x.detach()) - coef * (-1.0)  # f_t(x_t) − f_t(x*)
        for g in opt.param_groups:
            g["lr"] = ALPHA / t ** 0.5
        x.grad = torch.tensor([coef], dtype=torch.float64)
        opt.step()
        with torch.no_grad():
            x.clamp_(-1.0, 1.0)
    return {"final_x": float(x.detach()), "avg_regret": regret / steps, "xs": xs}


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = FAST if fast else FULL
    per_seed, passed, traces = {}, {}, {}
    for seed in seeds:
        x0 = float(torch.empty(1).uniform_(-1, 1, generator=torch.Generator().manual_seed(seed)))
        adam, ams = _run("adam", x0, cfg["steps"]), _run("amsgrad", x0, cfg["steps"])
        per_seed[seed] = {"x1": x0, "adam_final_x": adam["final_x"], "amsgrad_final_x": ams["final_x"],
                          "adam_avg_regret": adam["avg_regret"], "amsgrad_avg_regret": ams["avg_regret"]}
        passed[seed] = abs(adam["final_x"] - 1.0) <= TOL and abs(ams["final_x"] + 1.0) <= TOL
        traces[seed] = (adam["xs"], ams["xs"])
    fig, (ax, ax2) = new_figure(2)
    for i, seed in enumerate(seeds):
        a, m = traces[seed]
        t = np.arange(1, len(a) + 1)
        ax.plot(t, a, color="C3", alpha=0.7, label="Adam" if i == 0 else None)
        ax.plot(t, m, color="C0", alpha=0.7, label="AMSGrad" if i == 0 else None)
        ra = np.cumsum([(C if k % 3 == 1 else -1.0) * (x + 1.0) for k, x in enumerate(a, 1)]) / t
        rm = np.cumsum([(C if k % 3 == 1 else -1.0) * (x + 1.0) for k, x in enumerate(m, 1)]) / t
        ax2.semilogx(t, ra, color="C3", alpha=0.7, label="Adam" if i == 0 else None)
        ax2.semilogx(t, rm, color="C0", alpha=0.7, label="AMSGrad" if i == 0 else None)
    ax.axhline(-1, color="k", ls="--", lw=1, label="optimum x* = −1")
    ax.set(xscale="log", xlabel="t", ylabel="x_t", title=f"f_t = {C:g}x (t mod 3 = 1), −x otherwise; β1=0, β2=0.1")
    ax.legend(fontsize=8)
    ax2.axhline(0, color="k", lw=1)
    ax2.set(xlabel="t", ylabel="average regret R_t / t", title="Average regret (→ 0 means convergence)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    v = list(per_seed.values())
    explanation = (f"after {cfg['steps']} steps: Adam x_T ∈ [{min(p['adam_final_x'] for p in v):.3f}, "
                   f"{max(p['adam_final_x'] for p in v):.3f}] (avg regret {np.mean([p['adam_avg_regret'] for p in v]):.3f}), "
                   f"AMSGrad x_T ∈ [{min(p['amsgrad_final_x'] for p in v):.3f}, "
                   f"{max(p['amsgrad_final_x'] for p in v):.3f}] (avg regret "
                   f"{np.mean([p['amsgrad_avg_regret'] for p in v]):.3f})")
    return Outcome(per_seed, passed, explanation, fig, {"config": dict(cfg), "C": C, "alpha": ALPHA})


AMSGRAD = register(Claim(
    id="adam-fails-amsgrad-converges",
    paper="On the Convergence of Adam and Beyond (Reddi, Kale, Kumar, ICLR 2018)",
    arxiv="1904.09237",
    statement="On the online convex problem f_t(x) = Cx (t mod 3 = 1), −x otherwise, x ∈ [−1, 1], C > 2, Adam "
              "with β1 = 0, β2 = 1/(1+C²) converges to x = +1 (the worst point; average regret stays positive) "
              "while AMSGrad converges to the optimum x* = −1.",
    optimizers=("adam", "amsgrad"),
    protocol=f"C = {C:g}, α_t = {ALPHA}/√t, β1 = 0, β2 = 1/(1+C²) = 0.1, eps 1e-8, projection onto [−1, 1] after "
             "each step, x_1 ~ U(−1, 1) from the seed; fast: 1,500 steps; full: 30,000 steps.",
    rule="Adam's final x is within 0.1 of +1 and AMSGrad's within 0.1 of −1",
    margin=f"|x_T(Adam) − 1| ≤ {TOL} and |x_T(AMSGrad) + 1| ≤ {TOL}",
    experiment=_experiment,
))
