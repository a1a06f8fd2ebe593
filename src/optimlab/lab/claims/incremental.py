"""Incremental learning in matrix sensing: with small init, GD learns singular values one at a time.

Task ``matrix_sensing`` (symmetric U Uᵀ, over-parameterized width k = n, PSD rank-r target with
geometric singular values σ*_1 > … > σ*_r, Gaussian measurements, small init). Full-batch GD
(optimlab ``sgd``). t_i is the first step at which the i-th singular value of the learned M
reaches σ*_i / 2. Incremental learning means t_1 < t_2 < … < t_r with a clear gap; from a small
init of scale α, the i-th direction escapes after ≈ log(1/α)/(ησ*_i) steps, so with geometric
singular values successive times should differ by a constant factor.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import Claim, Outcome, new_figure, register

FAST = {"n": 20, "rank": 3, "condition": 4.0, "init_scale": 1e-3, "lr": 0.05, "steps": 1500, "every": 5}
FULL = {"n": 30, "rank": 4, "condition": 8.0, "init_scale": 1e-4, "lr": 0.05, "steps": 6000, "every": 5}
GAP = 1.25  # t_{i+1} ≥ 1.25 t_i


def _run(cfg: dict, seed: int) -> dict:
    import optimlab
    from optimlab.lab.tasks import get_task

    task = get_task("matrix_sensing", n=cfg["n"], rank=cfg["rank"], condition=cfg["condition"],
                    init_scale=cfg["init_scale"])
    inst = task.build(seed)
    target = inst.target_singular_values.double().numpy()
    opt = optimlab.create(inst.model, "sgd", lr=cfg["lr"], **inst.role_hints)
    batch = inst.batch(0)
    steps, svs = [], []
    for step in range(cfg["steps"] + 1):
        if step % cfg["every"] == 0:
            steps.append(step)
            svs.append(inst.singular_values(inst.model).numpy()[: cfg["rank"] + 1])
        opt.zero_grad()
        inst.loss(inst.model, batch).backward()
        opt.step()
    svs = np.array(svs)
    times = []
    for i in range(cfg["rank"]):
        hit = np.nonzero(svs[:, i] >= target[i] / 2)[0]
        times.append(float(steps[hit[0]]) if len(hit) else float("nan"))
    return {"steps": steps, "svs": svs, "target": target, "times": times,
            "rel_error": float(inst.evaluate()["rel_error"])}


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = FAST if fast else FULL
    per_seed, passed, runs = {}, {}, {}
    for seed in seeds:
        r = _run(cfg, seed)
        runs[seed] = r
        t = r["times"]
        per_seed[seed] = {f"t_{i + 1}": v for i, v in enumerate(t)}
        gaps = [t[i + 1] / t[i] if t[i] > 0 else float("nan") for i in range(len(t) - 1)]
        per_seed[seed].update({f"t_{i + 2}/t_{i + 1}": g for i, g in enumerate(gaps)})
        per_seed[seed]["final_rel_error"] = r["rel_error"]
        passed[seed] = bool(all(np.isfinite(t)) and all(g >= GAP for g in gaps))
    reached = all(all(np.isfinite(r["times"])) for r in runs.values())
    fig, (ax,) = new_figure(1, width=6.5)
    for j, seed in enumerate(seeds):
        r = runs[seed]
        for i in range(cfg["rank"]):
            ax.plot(r["steps"], r["svs"][:, i], color=f"C{i}", alpha=0.8, ls="-" if j == 0 else "--",
                    label=f"σ_{i + 1} (target {r['target'][i]:.3g})" if j == 0 else None)
            if np.isfinite(r["times"][i]):
                ax.axvline(r["times"][i], color=f"C{i}", lw=0.8, alpha=0.5, ls=":")
    for i, s in enumerate(runs[seeds[0]]["target"]):
        ax.axhline(s, color=f"C{i}", lw=0.6, alpha=0.4)
    last = [t for r in runs.values() for t in r["times"] if np.isfinite(t)]
    if last:  # zoom on the learning phase; the rest of the budget is flat
        ax.set_xlim(0, min(cfg["steps"], 2.0 * max(last)))
    ax.set(xlabel="GD step", ylabel="singular values of U Uᵀ",
           title=f"Matrix sensing, init {cfg['init_scale']:g}: incremental learning (seeds {list(seeds)})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tt = {s: [f"{v:.0f}" for v in runs[s]["times"]] for s in seeds}
    explanation = (f"half-target crossing steps t_i per seed: {tt}; required t_(i+1)/t_i ≥ {GAP}")
    verdict = None if reached else "inconclusive"
    if not reached:
        explanation += "; some singular value never reached half its target within the budget"
    return Outcome(per_seed, passed, explanation, fig, {"config": dict(cfg)}, verdict)


INCREMENTAL = register(Claim(
    id="incremental-rank-learning",
    paper="Understanding Incremental Learning of Gradient Descent: A Fine-grained Analysis of Matrix Sensing "
          "(Jin, Li, Lyu, Du, Lee, ICML 2023)",
    arxiv="2301.11500",
    statement="With small initialization, GD on over-parameterized symmetric matrix sensing learns the "
              "singular values of the target one after another (largest first), so the learned rank grows "
              "in steps.",
    optimizers=("sgd",),
    protocol="task matrix_sensing (symmetric, width n, PSD target with geometric singular values, m = 5·2n·r "
             "Gaussian measurements), full-batch GD (optimlab sgd, lr 0.05). fast: n=20, r=3, condition 4, init "
             "1e-3, 1,500 steps; full: n=30, r=4, condition 8, init 1e-4, 6,000 steps.",
    rule=f"each singular value reaches half its target, in order, each crossing ≥ {GAP}× later than the previous",
    margin=f"t_(i+1) ≥ {GAP}·t_i for every i, every seed",
    experiment=_experiment,
))
