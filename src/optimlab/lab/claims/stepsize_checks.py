"""Exact-property claims of step-size rules: SANIA's scale invariance and AEGD's energy stability.
Protocols fixed before the first run."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ._loop import run, task_problem
from .base import Claim, Outcome, new_figure, register


# ------------------------------------------------------------------ sania-scale-invariance
def _scaled_logistic(seed: int, scaled: bool, steps: int) -> tuple:
    from ..tasks.classification import _digits

    x_np, y_np = _digits()
    x, y = torch.tensor(x_np / 16.0, dtype=torch.float64), torch.tensor(y_np)
    g = torch.Generator().manual_seed(seed)
    s = 10.0 ** (6 * torch.rand(64, generator=g, dtype=torch.float64) - 3)  # s ~ 10^U(−3, 3)
    order = torch.randint(0, len(x), (steps + 1, 64), generator=g)
    if scaled:
        x = x * s
    w = nn.Parameter(torch.zeros(64, 10, dtype=torch.float64))  # w = 0: the same point in both parametrizations
    b = nn.Parameter(torch.zeros(10, dtype=torch.float64))

    def final() -> float:
        with torch.no_grad():
            return float(nn.functional.cross_entropy(x @ w + b, y))

    return [w, b], lambda t: nn.functional.cross_entropy(x[order[t]] @ w + b, y[order[t]]), final


def _sania_exp(fast: bool, seeds: Sequence[int]) -> Outcome:
    steps = 50 if fast else 200
    per_seed, passed, curves = {}, {}, {}
    for s in seeds:
        row = {}
        for name, hp in (("sania_adam_sqr", {}), ("adam", {"lr": 1e-2})):
            plain = _scaled_logistic(s, False, steps)
            sc = _scaled_logistic(s, True, steps)
            _, c0 = run(plain[0], name, steps, plain[1], plain[2], hp)
            _, c1 = run(sc[0], name, steps, sc[1], sc[2], hp)
            a, b = np.array(c0), np.array(c1)
            row[f"{name}_max_rel_diff"] = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300)))
            curves[(s, name)] = (c0, c1)
        per_seed[s] = row
        passed[s] = row["sania_adam_sqr_max_rel_diff"] <= 1e-6 and row["adam_max_rel_diff"] > 1e-2
    fig, axes = new_figure(1)
    for name, col in (("sania_adam_sqr", "C1"), ("adam", "C0")):
        c0, c1 = curves[(seeds[0], name)]
        axes[0].semilogy(c0, color=col, label=f"{name} unscaled")
        axes[0].semilogy(c1, color=col, ls="--", label=f"{name} features × diag(s)")
    axes[0].set(xlabel="step", ylabel="batch loss", title="sania-scale-invariance")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    expl = (f"digits logistic regression, fp64, {steps} steps, features × diag(s), s ~ 10^U(−3,3); max relative "
            "difference of the loss curves: " + "; ".join(
                f"seed {s}: SANIA-Adam-SQR {v['sania_adam_sqr_max_rel_diff']:.3g}, Adam {v['adam_max_rel_diff']:.3g}"
                for s, v in per_seed.items()) + "; rule ≤ 1e-6 vs > 1e-2")
    return Outcome(per_seed, passed, expl, fig)


register(Claim(
    id="sania-scale-invariance",
    paper="SANIA: Polyak-type Optimization Framework Leads to Scale Invariant Stochastic Algorithms",
    arxiv="2312.17369",
    statement="SANIA's Polyak-type steps with a square-root-free diagonal preconditioner are scale invariant.",
    optimizers=("sania_adam_sqr", "adam"),
    protocol="multinomial logistic regression on digits (pixels/16), fp64, batches of 64 (same order), w = 0 start; "
             "features multiplied by diag(s), s ~ 10^U(−3, 3) from the seed; 200 steps (fast 50); the loss curves "
             "of the scaled and unscaled runs compared; SANIA-Adam-SQR at defaults, Adam at lr 1e-2.",
    rule="max relative difference of the curves ≤ 1e-6 for SANIA-Adam-SQR and > 1e-2 for Adam, every seed",
    margin="1e-6 (fp64 rounding) vs 1e-2",
    experiment=_sania_exp,
))


# ------------------------------------------------------------------ aegd-energy-stability
ETAS = (0.01, 0.1, 1.0, 10.0)


def _problem(kind: str, seed: int) -> tuple:
    if kind == "rosenbrock":
        return task_problem("rosenbrock", seed)
    return task_problem("digits_mlp", seed)


def _aegd_exp(fast: bool, seeds: Sequence[int]) -> Outcome:
    steps = 100 if fast else 1000
    per_seed, passed, details = {}, {}, {}
    for s in seeds:
        row, ok = {}, True
        for kind in ("rosenbrock", "digits_mlp"):
            for eta in ETAS:
                rises = [0]
                last: dict[int, torch.Tensor] = {}

                def watch(opt: Any, loss: float) -> None:
                    for p, st in opt.state.items():
                        r = st["aegd.r"]
                        if id(p) in last and bool((r > last[id(p)]).any()):
                            rises[0] += 1
                        last[id(p)] = r.clone()

                params, step_loss, final = _problem(kind, s)
                aegd, _ = run(params, "aegd", steps, step_loss, final, {"lr": eta}, on_step=watch)
                params, step_loss, final = _problem(kind, s)
                gd, _ = run(params, "sgd", steps, step_loss, final, {"lr": eta})
                gd_diverged = not math.isfinite(gd) or gd > 1e6
                row[f"{kind}_{eta:g}_r_increases"] = float(rises[0])
                row[f"{kind}_{eta:g}_aegd"] = aegd
                row[f"{kind}_{eta:g}_gd_diverged"] = float(gd_diverged)
                ok = ok and rises[0] == 0 and (not gd_diverged or math.isfinite(aegd))
        per_seed[s] = row
        passed[s] = ok
    diverged = sum(v for r in per_seed.values() for k, v in r.items() if k.endswith("gd_diverged"))
    fig, axes = new_figure(1)
    for kind, c in (("rosenbrock", "C0"), ("digits_mlp", "C1")):
        for s in seeds:
            axes[0].loglog(ETAS, [per_seed[s][f"{kind}_{e:g}_aegd"] for e in ETAS], "o-", color=c,
                           label=f"AEGD {kind}" if s == seeds[0] else None)
    axes[0].set(xlabel="η", ylabel="final loss", title="aegd-energy-stability")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    expl = (f"{steps} steps, η ∈ {ETAS}, Rosenbrock (2-D) and digits_mlp; increases of any r_t: "
            + ", ".join(f"seed {s}: {int(sum(v for k, v in r.items() if k.endswith('increases')))}"
                        for s, r in per_seed.items())
            + f"; GD diverged in {int(diverged)} runs, AEGD's loss finite in all of them: "
            + str(all(math.isfinite(r[k.replace('gd_diverged', 'aegd')]) for r in per_seed.values()
                      for k, v in r.items() if k.endswith("gd_diverged") and v)))
    verdict = "inconclusive" if diverged == 0 else None
    if diverged == 0:
        expl += "; inconclusive: GD never diverged, so the comparison is empty"
    return Outcome(per_seed, passed, expl, fig, details, verdict)


register(Claim(
    id="aegd-energy-stability",
    paper="AEGD: Adaptive Gradient Descent with Energy (Liu & Tian); Adaptive Preconditioned Gradient Descent with "
          "Energy",
    arxiv="2010.05109",
    statement="AEGD is unconditionally energy stable: its energy r_t never increases, for any step size.",
    optimizers=("aegd", "sgd"),
    protocol="Rosenbrock (2-D lab task, start from the seed) and digits_mlp; η ∈ {0.01, 0.1, 1, 10}; 1,000 steps "
             "(fast 100); every r_t element compared with the previous step's; GD (SGD without momentum) at the "
             "same η; a GD run diverges when its final loss is non-finite or > 1e6.",
    rule="no element of r ever increases (exact), and AEGD's final loss is finite wherever GD diverges, every seed; "
         "no GD divergence at all: inconclusive",
    margin="exact (0 increases)",
    experiment=_aegd_exp,
))
