"""Claims on parameter-free and Polyak-type step sizes: L-DoG, U-DoG, Polyak momentum, SANIA, AEGD.

Every protocol below was fixed before its first run; lrs are tuned per optimizer on the stated grids
(mean final loss over the seeds), and a best lr at a grid edge makes the verdict inconclusive.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ._loop import run, task_problem, tune
from .base import Claim, Outcome, new_figure, register


def _bar(per_seed: dict, keys: Sequence[str], title: str, log: bool = True) -> Any:
    fig, axes = new_figure(1)
    seeds = list(per_seed)
    w = 0.8 / len(keys)
    for i, k in enumerate(keys):
        axes[0].bar(np.arange(len(seeds)) + i * w, [max(per_seed[s][k], 1e-30) for s in seeds], w, label=k)
    axes[0].set(xticks=np.arange(len(seeds)), xticklabels=[f"seed {s}" for s in seeds], title=title,
                yscale="log" if log else "linear")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _once(problem: Callable[[int], tuple], name: Any, seed: int, steps: int, **hp: Any) -> float:
    params, step_loss, final = problem(seed)
    return run(params, name, steps, step_loss, final, hp)[0]


# ------------------------------------------------------------------ l-dog-vs-tuned
def _ldog_exp(fast: bool, seeds: Sequence[int]) -> Outcome:
    steps = 100 if fast else 1000
    sgd_grid = (0.03, 0.3, 3.0) if fast else (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
    adam_grid = (1e-4, 1e-3, 1e-2) if fast else (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    problem = lambda s: task_problem("digits_mlp", s)  # noqa: E731
    sgd_lr, sgd_means, sgd, e1 = tune(problem, "sgd", sgd_grid, seeds, steps)
    adam_lr, adam_means, adam, e2 = tune(problem, "adam", adam_grid, seeds, steps)
    per_seed, passed = {}, {}
    for s in seeds:
        ld = _once(problem, "ldog", s, steps)
        per_seed[s] = {"ldog": ld, "sgd_tuned": sgd[sgd_lr][s], "adam_tuned": adam[adam_lr][s]}
        passed[s] = ld <= sgd[sgd_lr][s] and ld <= 1.2 * adam[adam_lr][s]
    expl = (f"digits_mlp {steps} steps, final train loss; tuned SGD lr {sgd_lr:g}, Adam lr {adam_lr:g}; "
            + "; ".join(f"seed {s}: L-DoG {v['ldog']:.4g}, SGD {v['sgd_tuned']:.4g}, Adam {v['adam_tuned']:.4g}"
                        for s, v in per_seed.items()) + "; rule: L-DoG ≤ SGD and ≤ 1.2 × Adam")
    return Outcome(per_seed, passed, expl, _bar(per_seed, ["ldog", "sgd_tuned", "adam_tuned"], "l-dog-vs-tuned"),
                   {"sgd_means": {f"{k:g}": v for k, v in sgd_means.items()},
                    "adam_means": {f"{k:g}": v for k, v in adam_means.items()}}, grid_edges=e1 + e2)


register(Claim(
    id="l-dog-vs-tuned",
    paper="DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule (Ivgi, Hinder, Carmon, ICML 2023)",
    arxiv="2302.12022",
    statement="The per-layer variant L-DoG generally outperforms tuned SGD and approaches tuned Adam.",
    optimizers=("ldog", "sgd", "adam"),
    protocol="digits_mlp lab task (batch 64), 1,000 steps (fast 100); final training loss; SGD lr tuned on "
             "{0.01, 0.03, 0.1, 0.3, 1, 3}, Adam on {1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2} (fast: 3-point grids); "
             "L-DoG at its defaults. The mnist1d MLP of the coverage protocol is left out (CPU budget).",
    rule="loss(L-DoG) ≤ loss(tuned SGD) and ≤ 1.2 × loss(tuned Adam), every seed",
    margin="factor 1.2 against Adam, none against SGD",
    experiment=_ldog_exp,
))


# ------------------------------------------------------------------ udog-convex
def _digits_convex(kind: str, steps: int) -> Callable[[int], tuple]:
    def build(seed: int) -> tuple:
        from ..tasks.classification import _digits

        x_np, y_np = _digits()
        x, y = torch.tensor(x_np / 16.0, dtype=torch.float32), torch.tensor(y_np)
        g = torch.Generator().manual_seed(seed)
        w = nn.Parameter(0.01 * torch.randn(64, 10, generator=g))
        b = nn.Parameter(torch.zeros(10))
        order = torch.randint(0, len(x), (steps + 1, 32), generator=g)
        onehot = nn.functional.one_hot(y, 10).float()

        def objective(idx: torch.Tensor | None) -> torch.Tensor:
            xs, ys = (x, y) if idx is None else (x[idx], y[idx])
            z = xs @ w + b
            if kind == "logistic":
                return nn.functional.cross_entropy(z, ys) + 0.5e-4 * (w * w).sum()
            return 0.5 * (z - (onehot if idx is None else onehot[idx])).square().sum(1).mean()

        def final() -> float:
            with torch.no_grad():
                return float(objective(None))

        return [w, b], lambda t: objective(order[t]), final
    return build


def _udog_exp(fast: bool, seeds: Sequence[int]) -> Outcome:
    evals = 200 if fast else 2000
    grid = tuple(10.0 ** k for k in range(-3, 2)) if fast else tuple(10 ** (k / 2) for k in range(-6, 3))
    per_seed: dict[int, dict[str, float]] = {s: {} for s in seeds}
    passed = {s: True for s in seeds}
    edges, details = [], {}
    for kind in ("least_squares", "logistic"):
        problem = _digits_convex(kind, evals)
        best, means, sgd, e = tune(problem, "sgd", grid, seeds, evals)
        edges += [f"{kind}: {x}" for x in e]
        details[kind] = {"sgd_lr": best, "sgd_means": {f"{k:g}": v for k, v in means.items()}}
        for s in seeds:
            u = _once(problem, "udog", s, evals // 2)  # two gradient evaluations per U-DoG step
            per_seed[s][f"{kind}_udog"] = u
            per_seed[s][f"{kind}_sgd_tuned"] = sgd[best][s]
            passed[s] = passed[s] and u <= 1.5 * sgd[best][s]
    expl = (f"{evals} gradient evaluations (U-DoG {evals // 2} steps), batch 32, full-batch objective at the last "
            f"iterate; " + "; ".join(f"seed {s}: " + ", ".join(f"{k} {v:.4g}" for k, v in d.items())
                                     for s, d in per_seed.items()) + "; rule U-DoG ≤ 1.5 × tuned SGD")
    keys = [f"{k}_{m}" for k in ("least_squares", "logistic") for m in ("udog", "sgd_tuned")]
    return Outcome(per_seed, passed, expl, _bar(per_seed, keys, "udog-convex"), details, grid_edges=edges)


register(Claim(
    id="udog-convex",
    paper="Accelerated Parameter-Free Stochastic Optimization (Kreisler, Ivgi, Hinder, Carmon, COLT 2024)",
    arxiv="2404.00666",
    statement="U-DoG shows consistent, strong performance on convex problems (within 1.5× of grid-tuned SGD).",
    optimizers=("udog", "sgd"),
    protocol="least squares (one-hot targets) and ℓ2-regularised logistic regression on digits (pixels/16), batch "
             "32, equal gradient evaluations: 2,000 (fast 200), U-DoG at its defaults (our reading of the rule); "
             "SGD lr on 10^{k/2}, k = −6..2 (fast 10^k, k = −3..1).",
    rule="loss(U-DoG) ≤ 1.5 × loss(tuned SGD) on both problems, every seed",
    margin="factor 1.5",
    experiment=_udog_exp,
    full_seeds=(0, 1, 2, 3, 4),
))


# ------------------------------------------------------------------ polyak-momentum-insensitive
BETAS = (0.5, 0.9, 0.99)


def _quad(seed: int) -> tuple:
    from ..tasks import get_task

    inst = get_task("quadratic", dim=100, condition=1e3).build(seed=seed)
    model = inst.model
    return (list(model.parameters()), lambda t: inst.loss(model, inst.batch(t)),
            lambda: inst.evaluate(model)["eval_loss"])


def _polyak_exp(fast: bool, seeds: Sequence[int]) -> Outcome:
    steps = 200 if fast else 2000
    per_seed, passed, details = {}, {}, {}
    for s in seeds:
        row, ups = {}, {}
        for name, hp in (("polyak_momentum", {}), ("sgd", {"lr": 1.0})):  # heavy ball at lr = 1/λ_max
            finals = []
            for beta in BETAS:
                params, step_loss, final = _quad(s)
                value, curve = run(params, name, steps, step_loss, final, {**hp, "momentum": beta})
                finals.append(value)
                ups[f"{name}_{beta}"] = int(sum(b > a for a, b in zip(curve, curve[1:])))
            row[f"{name}_spread"] = max(finals) / max(min(finals), 1e-300)
            row.update({f"{name}_b{beta}": v for beta, v in zip(BETAS, finals)})
        per_seed[s] = row
        details[s] = ups
        passed[s] = row["polyak_momentum_spread"] <= 10 and row["sgd_spread"] >= 100
    expl = (f"quadratic d=100, κ=1e3, {steps} steps, β ∈ {BETAS}; max/min final suboptimality over β: "
            + "; ".join(f"seed {s}: Polyak-momentum {v['polyak_momentum_spread']:.3g}, heavy ball (lr 1) "
                        f"{v['sgd_spread']:.3g}" for s, v in per_seed.items()) + "; rule ≤ 10 vs ≥ 100")
    fig, axes = new_figure(1)
    for s in seeds:
        for name, c in (("polyak_momentum", "C1"), ("sgd", "C0")):
            axes[0].semilogy(BETAS, [per_seed[s][f"{name}_b{b}"] for b in BETAS], "o-", color=c,
                             label=name if s == seeds[0] else None)
    axes[0].set(xlabel="β", ylabel="final f − f*", title="polyak-momentum-insensitive")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return Outcome(per_seed, passed, expl, fig, {"loss_increases": details})


register(Claim(
    id="polyak-momentum-insensitive",
    paper="Generalized Polyak Step Size for First Order Optimization with Momentum (Wang, Johansson, Zhang, ICML 2023)",
    arxiv="2305.12939",
    statement="The Polyak-type momentum steps are much less sensitive to the momentum parameter than fixed-step "
              "heavy ball on ill-conditioned problems.",
    optimizers=("polyak_momentum", "sgd"),
    protocol="quadratic lab task d=100, condition 1e3, λ_max = 1, deterministic; β ∈ {0.5, 0.9, 0.99}; 2,000 steps "
             "(fast 200); polyak_momentum at its defaults (f* = 0, our reading of the rule) vs heavy ball (SGD "
             "momentum) at the fixed lr 1 = 1/λ_max; loss increases counted in the details.",
    rule="max/min final suboptimality over β ≤ 10 for Polyak momentum and ≥ 100 for heavy ball, every seed",
    margin="ratios 10 and 100",
    experiment=_polyak_exp,
))
