"""The stability gap: continual evaluation shows a task's accuracy dip right after each task switch, then recover.

De Lange, van de Ven, Tuytelaars, "Continual evaluation for lifelong learning: Identifying the stability gap"
(ICLR 2023, arXiv:2205.13452). Runs use ``optimlab.lab.continual`` (per-step evaluation of every task).

Protocol (fixed before the first run): split digits (5 tasks × 2 classes, one 10-way head) and rotated digits
(all classes at 0/45/90/135/180°); MLP 64-100-10; SGD lr 0.1; each step a batch of 16 new examples plus 16
replayed from a 200-example reservoir buffer; 300 steps per task (fast: 80 steps per task and the first 100
test examples of each task); task-1 test accuracy after every step. Per switch: dip = accuracy just before
the switch − its minimum within 50 steps after; recovery = accuracy at the end of that task's phase − that
minimum. Rule per seed: on split digits every switch dips ≥ 10 pp and the mean recovery is ≥ half the mean
dip; and the mean dip on rotated digits is larger than on split digits.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..continual import rotated_digits, run_continual, split_digits, stability_gap
from .base import Claim, Outcome, new_figure, register

WINDOW, DIP = 50, 0.10


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    steps, eval_size = (80, 100) if fast else (300, None)
    per_seed, passed, shown = {}, {}, {}
    for s in seeds:
        res = {}
        for name, build in (("split", split_digits), ("rotated", rotated_digits)):
            r = run_continual(build(s), optimizer="sgd", lr=0.1, steps_per_task=steps, batch=16, replay=200,
                              replay_batch=16, eval_size=eval_size, seed=s)
            res[name] = (r, stability_gap(r, task=0, window=WINDOW))
        gs, gr = res["split"][1], res["rotated"][1]
        dips_s, dips_r = [g["dip"] for g in gs], [g["dip"] for g in gr]
        rec_s = [g["recovery"] for g in gs]
        per_seed[s] = {"split_min_dip": float(min(dips_s)), "split_mean_dip": float(np.mean(dips_s)),
                       "split_mean_recovery": float(np.mean(rec_s)), "rotated_mean_dip": float(np.mean(dips_r)),
                       **{f"split_dip_{k + 2}": float(d) for k, d in enumerate(dips_s)},
                       **{f"rotated_dip_{k + 2}": float(d) for k, d in enumerate(dips_r)}}
        v = per_seed[s]
        passed[s] = (v["split_min_dip"] >= DIP and v["split_mean_recovery"] >= 0.5 * v["split_mean_dip"]
                     and v["rotated_mean_dip"] > v["split_mean_dip"])
        if s == seeds[0]:
            shown = {k: r for k, (r, _) in res.items()}
    fig, axes = new_figure(2)
    for ax, (name, r) in zip(axes, shown.items()):
        for n in r["names"]:
            ax.plot(r["steps"], r["acc"][n], lw=0.7, label=n)
        for sw in r["switches"][1:]:
            ax.axvline(sw, color="gray", lw=0.5, ls=":")
        ax.set(xlabel="step", ylabel="test accuracy", title=f"{name} digits + replay, seed {seeds[0]}")
        ax.legend(fontsize=6)
    fig.tight_layout()
    expl = "; ".join(f"seed {s}: split dips {', '.join(f'{per_seed[s][k]:.2f}' for k in per_seed[s] if k.startswith('split_dip_'))}"
                     f" (mean recovery {per_seed[s]['split_mean_recovery']:.2f}), rotated mean dip "
                     f"{per_seed[s]['rotated_mean_dip']:.2f} vs split {per_seed[s]['split_mean_dip']:.2f}" for s in seeds)
    return Outcome(per_seed, passed, expl + f" (rule: every split dip ≥ {DIP}, recovery ≥ half, rotated > split)", fig,
                   {"steps_per_task": steps, "window": WINDOW})


STABILITY_GAP = register(Claim(
    id="stability-gap",
    paper="Continual evaluation for lifelong learning: Identifying the stability gap (De Lange, van de Ven, "
          "Tuytelaars, ICLR 2023)",
    arxiv="2205.13452",
    statement="Even with replay, a learned task's accuracy drops sharply right after each switch to a new task and "
              "then recovers (the stability gap); the drop is larger when the tasks are less similar.",
    optimizers=("sgd",),
    protocol="split digits (5×2 classes) and rotated digits (0..180°), MLP 64-100-10, SGD 0.1, 16 new + 16 replayed "
             "(buffer 200) per step, 300 steps per task (fast 80), task-1 accuracy every step",
    rule="split: every switch dips ≥ 10 pp within 50 steps and mean recovery ≥ half the mean dip; rotated mean dip "
         "> split mean dip; per seed",
    margin="10 percentage points per dip; recovery ≥ 50% of the dip",
    experiment=_experiment,
))
