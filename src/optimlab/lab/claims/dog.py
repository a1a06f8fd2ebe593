"""DoG, with no learning rate to tune, comes close to SGD with a tuned learning rate on convex problems.

Ivgi, Hinder, Carmon, "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule" (ICML 2023,
arXiv:2302.12022). The runs call ``opt.step(closure)`` directly (not the lab runner).

Protocol (fixed before the first run):

- Two stochastic convex problems. (a) ``quadratic`` lab task: d = 100, condition 100, rotated, gradient
  noise std 0.1 (the step loss is f(x) + ξᵀ(x − x*)); the measured loss is the noise-free f at the last
  iterate. (b) Multinomial logistic regression on the 8×8 digits (1,797 images, pixels / 16, ℓ2 penalty
  1e-4·‖W‖²/2), minibatches of 64 drawn with the seed; the measured loss is the full-batch objective at the
  last iterate. Initial point from the seed (quadratic: the task's; logistic: W ~ N(0, 0.01²), b = 0).
- DoG at its defaults (reps_rel 1e-6, lr 1, no averaging, last iterate). SGD: constant lr, no momentum,
  lr from the grid 10^{k/2}, k = −6..2 (1e-3 … 10; fast: 10^k, k = −3..1); the tuned lr minimises the mean over seeds of the
  final loss (a diverged run counts as +inf). Same seeds, same batches for every run.
- Steps: fast 100 (the tests run it), full 2,000. Seeds: fast (0, 1), full (0, 1, 2).
- Verdict per seed: on both problems loss(DoG) ≤ 1.5 · loss(SGD at the tuned lr). If the tuned lr of
  either problem sits at an edge of the grid, the verdict is "inconclusive" (the grid did not bracket it).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ._loop import run
from .base import Claim, Outcome, new_figure, register

FACTOR = 1.5
FAST = {"steps": 100, "grid": tuple(10.0 ** k for k in range(-3, 2))}
FULL = {"steps": 2000, "grid": tuple(10 ** (k / 2) for k in range(-6, 3))}
L2, BATCH = 1e-4, 64


def _quadratic(seed: int) -> tuple[list[torch.Tensor], Callable[[int], torch.Tensor], Callable[[], float]]:
    from ..tasks import get_task

    inst = get_task("quadratic", dim=100, condition=100.0, noise=0.1).build(seed=seed)
    model = inst.model
    return (list(model.parameters()), lambda t: inst.loss(model, inst.batch(t)),
            lambda: inst.evaluate(model)["eval_loss"])


def _logistic(seed: int) -> tuple[list[torch.Tensor], Callable[[int], torch.Tensor], Callable[[], float]]:
    from ..tasks.classification import _digits  # the lab's cached copy of sklearn's digits

    x_np, y_np = _digits()
    x, y = torch.tensor(x_np / 16.0, dtype=torch.float32), torch.tensor(y_np, dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    w = nn.Parameter(0.01 * torch.randn(64, 10, generator=g))
    b = nn.Parameter(torch.zeros(10))
    order = torch.randint(0, len(x), (FULL["steps"] + 1, BATCH), generator=g)

    def objective(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(xs @ w + b, ys) + 0.5 * L2 * (w * w).sum()

    def full() -> float:
        with torch.no_grad():
            return float(objective(x, y))

    return [w, b], lambda t: objective(x[order[t]], y[order[t]]), full


PROBLEMS = {"quadratic": _quadratic, "logistic": _logistic}


def _run(problem: str, seed: int, steps: int, name: str, **hp: Any) -> tuple[float, list[float]]:
    params, step_loss, final = PROBLEMS[problem](seed)
    return run(params, name, steps, step_loss, final, hp)


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = FAST if fast else FULL
    steps, GRID = cfg["steps"], cfg["grid"]
    per_seed: dict[int, dict[str, float]] = {s: {} for s in seeds}
    passed = {s: True for s in seeds}
    edges, details, sweeps, curves = [], {}, {}, {}
    for problem in PROBLEMS:
        sgd = {lr: {s: _run(problem, s, steps, "sgd", lr=lr) for s in seeds} for lr in GRID}
        means = {lr: float(np.mean([v[0] for v in runs.values()])) for lr, runs in sgd.items()}
        best = min(GRID, key=lambda lr: means[lr])
        if best in (GRID[0], GRID[-1]):
            edges.append(f"{problem}: tuned SGD lr {best:g} is at the edge of the grid")
        dog = {s: _run(problem, s, steps, "dog") for s in seeds}
        for s in seeds:
            d, b = dog[s][0], sgd[best][s][0]
            per_seed[s][f"{problem}_dog"] = d
            per_seed[s][f"{problem}_sgd_tuned"] = b
            per_seed[s][f"{problem}_ratio"] = d / b if b > 0 else math.inf
            passed[s] = passed[s] and d <= FACTOR * b
        details[problem] = {"best_lr": best, "mean_by_lr": {f"{lr:g}": means[lr] for lr in GRID}}
        sweeps[problem] = (means, float(np.mean([dog[s][0] for s in seeds])), best)
        curves[problem] = (dog[seeds[0]][1], sgd[best][seeds[0]][1])
    fig, axes = new_figure(4, width=4.2)
    for i, problem in enumerate(PROBLEMS):
        means, dog_mean, best = sweeps[problem]
        ax = axes[i]
        ax.loglog(GRID, [means[lr] if math.isfinite(means[lr]) else np.nan for lr in GRID], "o-", label="SGD")
        ax.axhline(dog_mean, color="C1", label="DoG (no lr)")
        ax.axhline(FACTOR * means[best], color="C1", ls=":", lw=1, label=f"{FACTOR}× tuned SGD")
        ax.set(xlabel="SGD lr", ylabel="final loss (mean over seeds)", title=f"{problem}: lr sweep")
        ax.legend(fontsize=7)
        ax2 = axes[2 + i]
        dog_c, sgd_c = curves[problem]
        ax2.plot(dog_c, color="C1", lw=0.8, label="DoG")
        ax2.plot(sgd_c, color="C0", lw=0.8, label=f"SGD lr {best:g}")
        ax2.set(yscale="symlog" if problem == "quadratic" else "log", xlabel="step", ylabel="step loss",
                title=f"{problem}: seed {seeds[0]}")
        ax2.legend(fontsize=7)
    fig.tight_layout()
    ratios = {p: [per_seed[s][f"{p}_ratio"] for s in seeds] for p in PROBLEMS}
    explanation = (f"{steps} steps; loss(DoG)/loss(tuned SGD) per seed: "
                   + "; ".join(f"{p} {', '.join(f'{r:.3g}' for r in ratios[p])} (SGD lr {details[p]['best_lr']:g})"
                               for p in PROBLEMS)
                   + f"; rule ≤ {FACTOR}")
    verdict = None
    if edges:
        verdict = "inconclusive"
        explanation += "; inconclusive: " + "; ".join(edges)
    return Outcome(per_seed, passed, explanation, fig, {"grid": list(GRID), "problems": details}, verdict)


DOG = register(Claim(
    id="dog-vs-tuned-sgd",
    paper="DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule (Ivgi, Hinder, Carmon, ICML 2023)",
    arxiv="2302.12022",
    statement="DoG, with no learning rate to tune, comes close to SGD with a tuned learning rate on convex "
              "problems.",
    optimizers=("sgd", "dog"),
    protocol="stochastic quadratic (d=100, condition 100, noise 0.1) and ℓ2-regularised multinomial logistic "
             "regression on digits (batch 64); DoG at defaults vs constant-lr SGD tuned on 10^{k/2}, k=−6..2, "
             "by the mean final loss over seeds; last iterates; full 2,000 steps (fast: 100 steps, grid 10^k, "
             "k=−3..1).",
    rule="on both problems DoG's final loss is within 1.5× of tuned SGD's; a tuned lr at a grid edge makes the "
         "verdict inconclusive",
    margin=f"loss(DoG) ≤ {FACTOR} · loss(tuned SGD), both problems, every seed",
    experiment=_experiment,
))
