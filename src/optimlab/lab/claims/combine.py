"""Gradient-combining claims: Bloop's constrained solution, UPGrad's non-conflict (and IWRM), primal–dual width.

Protocols (fixed before the first run; runs call ``optimlab.combine`` and ``opt.step()`` directly):

``bloop-constrained-solution`` (arXiv:2402.02998). Over-parameterised linear regression: X ∈ R^{50×200},
w_true, w_0 ~ N(0, I) from the seed, y = X w_true, train loss ½‖Xw − y‖²/n, auxiliary loss ‖w‖². SGD lr
0.05 on the combined direction, 3,000 steps (fast: X ∈ R^{25×100}, 1,000 steps); Bloop λ = 0.1, ρ = 0.01 vs the plain sum
(train + λ·aux). Rule per seed: Bloop's train loss ≤ 1e-6 and ‖w − w_min-norm‖ ≤ 1e-2·‖w_min-norm‖, and the
sum's train loss > 1e-3.

``upgrad-nonconflict`` (arXiv:2406.16232). (a) 1,000 random Jacobians J ∈ R^{8×50} (N(0,1), from the seed):
min_i ⟨UPGrad(J), g_i⟩ ≥ −1e-9. (b) IWRM vs ERM on 256 digits (pixels/16), linear 64→10 classifier, batches
of 32, SGD 300 steps (fast 100): ERM steps on the mean loss, IWRM on UPGrad of the 32 per-example gradients.
SGD lr 0.1 (full: tuned per method on {0.03, 0.1, 0.3, 1} by the mean over seeds of the final worst-10%
train loss; grid-edge rule). Rule per seed: (a) holds and IWRM's final worst-10% train loss (mean of the
largest 10% per-example losses on the 256) < ERM's.

``constrained-rich-parametrization`` (Elenter, Chamon, Ribeiro). Fairness-constrained classification on
synthetic data (n = 400, x ∈ R^5, a group bit shifting both features and label rate), 1-hidden-layer ReLU
MLP of width {4, 16, 64, 256} (fast {4, 64}) on (x, a); objective BCE; constraints ±(mean σ(f) over
group 1 − over group 0) ≤ 0.02; PrimalDual (dual lr 0.5), Adam lr 0.01 on the primal, full batch, 1,000 steps
(fast 300). Measured: last-iterate violation max(0, |gap| − 0.02). Rule per seed: Spearman(width, violation)
< 0 and violation(widest) < violation(narrowest); all violations ≤ 1e-4 → inconclusive (regime not reached).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...combine import Bloop, PrimalDual, Sum, UPGrad, iwrm_backward
from .base import Claim, Outcome, new_figure, register
from .protocols import best_on_grid

D = torch.float64


# ------------------------------------------------------------------ Bloop

def _bloop_run(seed: int, combiner: Any, steps: int, n: int, d: int) -> dict[str, Any]:
    import optimlab

    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=D)
    y = X @ torch.randn(d, generator=g, dtype=D)
    w = nn.Parameter(torch.randn(d, generator=g, dtype=D))
    w_mn = torch.linalg.pinv(X) @ y
    opt = optimlab.create([w], "sgd", lr=0.05)
    curve = []
    for _ in range(steps):
        opt.zero_grad()
        train = 0.5 * ((X @ w - y) ** 2).mean()
        combiner.backward([train, (w * w).sum()], [w])
        opt.step()
        curve.append(float(train.detach()))
    with torch.no_grad():
        train = float(0.5 * ((X @ w - y) ** 2).mean())
        dist = float((w - w_mn).norm() / w_mn.norm())
    return {"train": train, "dist": dist, "curve": curve}


def _bloop_experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    steps, n, d = (1000, 25, 100) if fast else (3000, 50, 200)
    per_seed, passed, curves = {}, {}, {}
    for s in seeds:
        b = _bloop_run(s, Bloop(lam=0.1, rho=0.01), steps, n, d)
        p = _bloop_run(s, Sum([1.0, 0.1]), steps, n, d)
        per_seed[s] = {"bloop_train_loss": b["train"], "bloop_rel_dist_min_norm": b["dist"],
                       "sum_train_loss": p["train"], "sum_rel_dist_min_norm": p["dist"]}
        passed[s] = b["train"] <= 1e-6 and b["dist"] <= 1e-2 and p["train"] > 1e-3
        curves[s] = (b["curve"], p["curve"])
    fig, axes = new_figure(1)
    bc, pc = curves[seeds[0]]
    axes[0].semilogy(bc, label="Bloop (λ=0.1, ρ=0.01)")
    axes[0].semilogy(pc, label="sum (train + 0.1·‖w‖²)")
    axes[0].set(xlabel="step", ylabel="train loss", title=f"d={d}, n={n}, seed {seeds[0]}")
    axes[0].legend(fontsize=7)
    expl = "; ".join(f"seed {s}: Bloop train {v['bloop_train_loss']:.2e}, ‖w−w_mn‖/‖w_mn‖ {v['bloop_rel_dist_min_norm']:.2e}; "
                     f"sum train {v['sum_train_loss']:.2e}" for s, v in per_seed.items())
    return Outcome(per_seed, passed, expl + " (rule: ≤ 1e-6, ≤ 1e-2; sum > 1e-3)", fig, {"steps": steps})


# ------------------------------------------------------------------ UPGrad / IWRM

def _worst10(model: nn.Module, X: torch.Tensor, Y: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        losses = F.cross_entropy(model(X), Y, reduction="none")
    k = max(1, len(losses) // 10)
    return float(losses.topk(k).values.mean()), float(losses.mean())


def _iwrm_run(seed: int, method: str, lr: float, steps: int) -> dict[str, Any]:
    import optimlab

    from ..tasks.classification import _digits

    x, yl = _digits()
    perm = np.random.default_rng(seed).permutation(len(x))[:256]
    X, Y = torch.tensor(x[perm] / 16.0, dtype=torch.float32), torch.tensor(yl[perm])
    torch.manual_seed(seed)
    model = nn.Linear(64, 10)
    opt = optimlab.create(model.parameters(), "sgd", lr=lr)
    g = torch.Generator().manual_seed(seed)
    curve = []
    for _ in range(steps):
        idx = torch.randint(0, 256, (32,), generator=g)
        opt.zero_grad()
        if method == "erm":
            F.cross_entropy(model(X[idx]), Y[idx]).backward()
        else:
            iwrm_backward(model, F.cross_entropy, X[idx], Y[idx])
        opt.step()
        curve.append(_worst10(model, X, Y)[0])
    worst, mean = _worst10(model, X, Y)
    return {"worst10": worst if np.isfinite(worst) else np.inf, "mean": mean, "curve": curve}


def _upgrad_experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    steps = 100 if fast else 300
    grid = (0.1,) if fast else (0.03, 0.1, 0.3, 1.0)
    per_seed: dict[int, dict[str, float]] = {}
    prop: dict[int, float] = {}
    for s in seeds:
        gen = torch.Generator().manual_seed(s)
        worst = np.inf
        up = UPGrad()
        for _ in range(1000):
            J = torch.randn(8, 50, generator=gen, dtype=D)
            worst = min(worst, float((J @ up.combine(J)).min()))
        prop[s] = worst
    runs = {(m, lr): {s: _iwrm_run(s, m, lr, steps) for s in seeds} for m in ("erm", "iwrm") for lr in grid}
    best, edges = {}, []
    for m in ("erm", "iwrm"):
        best[m], at_edge = best_on_grid(grid, lambda lr: np.mean([runs[(m, lr)][s]["worst10"] for s in seeds]))
        if at_edge:
            edges.append(f"{m} lr {best[m]:g} at the edge of {list(grid)}")
    passed = {}
    for s in seeds:
        e, i = runs[("erm", best["erm"])][s], runs[("iwrm", best["iwrm"])][s]
        per_seed[s] = {"min_inner_product": prop[s], "erm_worst10": e["worst10"], "iwrm_worst10": i["worst10"],
                       "erm_mean_loss": e["mean"], "iwrm_mean_loss": i["mean"]}
        passed[s] = prop[s] >= -1e-9 and i["worst10"] < e["worst10"]
    fig, axes = new_figure(1)
    for m in ("erm", "iwrm"):
        axes[0].plot(runs[(m, best[m])][seeds[0]]["curve"], label=f"{m.upper()} (lr {best[m]:g})")
    axes[0].set(xlabel="step", ylabel="worst-10% train loss", title=f"256 digits, seed {seeds[0]}")
    axes[0].legend(fontsize=7)
    expl = ("min ⟨d, g_i⟩ over 1000 Jacobians per seed: " + ", ".join(f"{prop[s]:.2e}" for s in seeds)
            + "; worst-10% train loss IWRM vs ERM: "
            + "; ".join(f"{per_seed[s]['iwrm_worst10']:.4f} vs {per_seed[s]['erm_worst10']:.4f}" for s in seeds))
    return Outcome(per_seed, passed, expl, fig, {"best_lr": best, "grid": list(grid)}, grid_edges=edges)


# ------------------------------------------------------------------ primal–dual vs width

LEVEL = 0.02


def _fair_data(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = 400
    a = (torch.rand(n, generator=g) < 0.5).double()
    x = torch.randn(n, 5, generator=g, dtype=D)
    x[:, 0] += 1.0 * a
    w = torch.randn(5, generator=g, dtype=D)
    y = ((x @ w + 1.0 * a + 0.5 * torch.randn(n, generator=g, dtype=D)) > 0.5).double()
    return torch.cat([x, a[:, None]], 1), y, a


def _fair_run(seed: int, width: int, steps: int) -> dict[str, Any]:
    import optimlab

    X, y, a = _fair_data(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, width), nn.ReLU(), nn.Linear(width, 1)).double()
    opt = optimlab.create(model.parameters(), "adam", lr=0.01)
    pd = PrimalDual(levels=[LEVEL, LEVEL], dual_lr=0.5)
    g1, g0 = a > 0.5, a < 0.5
    curve = []
    for _ in range(steps):
        opt.zero_grad()
        out = model(X).squeeze(1)
        p = torch.sigmoid(out)
        gap = p[g1].mean() - p[g0].mean()
        pd.backward([F.binary_cross_entropy_with_logits(out, y), gap, -gap], model)
        opt.step()
        curve.append(max(0.0, abs(float(gap.detach())) - LEVEL))
    with torch.no_grad():
        out = model(X).squeeze(1)
        p = torch.sigmoid(out)
        gap = float(p[g1].mean() - p[g0].mean())
        loss = float(F.binary_cross_entropy_with_logits(out, y))
    return {"violation": max(0.0, abs(gap) - LEVEL), "loss": loss, "curve": curve,
            "multipliers": pd.multipliers.tolist()}


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    r = spearmanr(x, y).statistic
    return float(r) if np.isfinite(r) else 0.0


def _constrained_experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    widths = (4, 64) if fast else (4, 16, 64, 256)
    steps = 300 if fast else 1000
    per_seed, passed, allv = {}, {}, {}
    regime = False
    for s in seeds:
        runs = {w: _fair_run(s, w, steps) for w in widths}
        v = [runs[w]["violation"] for w in widths]
        allv[s] = v
        rho = _spearman(list(widths), v)
        per_seed[s] = {**{f"violation_w{w}": runs[w]["violation"] for w in widths},
                       **{f"loss_w{w}": runs[w]["loss"] for w in widths}, "spearman": rho}
        passed[s] = rho < 0 and v[-1] < v[0]
        regime = regime or max(v) > 1e-4
    fig, axes = new_figure(1)
    for s in seeds:
        axes[0].plot(widths, [max(x, 1e-7) for x in allv[s]], "o-", label=f"seed {s}")
    axes[0].set(xscale="log", yscale="log", xlabel="width", ylabel="last-iterate violation (floored at 1e-7)",
                title="primal–dual fairness constraint")
    axes[0].legend(fontsize=7)
    expl = "last-iterate violation by width " + str(list(widths)) + ": " + "; ".join(
        f"seed {s} " + ", ".join(f"{x:.2e}" for x in allv[s]) for s in seeds)
    verdict = None
    if not regime:
        verdict = "inconclusive"
        expl += "; every violation ≤ 1e-4: all widths are feasible, nothing to fall (regime not reached)"
    return Outcome(per_seed, passed, expl, fig, {"widths": list(widths), "steps": steps}, verdict)


BLOOP = register(Claim(
    id="bloop-constrained-solution",
    paper="Careful with that Scalpel: Improving Gradient Surgery with an EMA (2024)",
    arxiv="2402.02998",
    statement="Bloop minimises the auxiliary loss among the training loss's minimisers: on over-parameterised "
              "linear regression with aux = ‖w‖² it reaches zero training loss at the minimum-norm solution, "
              "where the plain sum does not fit the data.",
    optimizers=("sgd",),
    protocol="X ∈ R^{50×200}, y = X w_true, w_0 random; SGD lr 0.05, 3,000 steps (fast 25×100, 1,000 steps); Bloop λ=0.1, ρ=0.01 "
             "vs train + 0.1·‖w‖²",
    rule="Bloop train loss ≤ 1e-6 and ‖w − w_mn‖ ≤ 1e-2‖w_mn‖; the sum's train loss > 1e-3; per seed",
    margin="1e-6 train loss; 1% relative distance; sum above 1e-3",
    experiment=_bloop_experiment,
))

UPGRAD = register(Claim(
    id="upgrad-nonconflict",
    paper="Jacobian Descent for Multi-Objective Optimization (Quinton, Rey, 2024)",
    arxiv="2406.16232",
    statement="UPGrad's direction conflicts with no objective, and using it per example (IWRM) lowers the worst "
              "examples' training loss compared with ERM.",
    optimizers=("sgd",),
    protocol="1000 random 8×50 Jacobians; IWRM vs ERM on 256 digits, linear classifier, batch 32, SGD 300 steps "
             "(fast 100), lr tuned per method on {0.03, 0.1, 0.3, 1} (fast 0.1)",
    rule="min ⟨d, g_i⟩ ≥ −1e-9 and worst-10% train loss IWRM < ERM, per seed; tuned lr at a grid edge → inconclusive",
    margin="−1e-9 on inner products; strict on the worst-10% loss",
    experiment=_upgrad_experiment,
))

CONSTRAINED = register(Claim(
    id="constrained-rich-parametrization",
    paper="Near-Optimal Solutions of Constrained Learning Problems (Elenter, Chamon, Ribeiro, ICLR 2024)",
    arxiv="2403.11844",
    statement="With richer parametrizations the last iterate of primal–dual constrained learning comes closer to "
              "feasible: its constraint violation falls with the width.",
    optimizers=("adam",),
    protocol="synthetic fairness-constrained classification (rate gap ≤ 0.02), MLP widths {4, 16, 64, 256} (fast "
             "{4, 64}), PrimalDual dual lr 0.5, Adam 0.01, 1,000 full-batch steps (fast 300)",
    rule="Spearman(width, last-iterate violation) < 0 and violation(widest) < violation(narrowest), per seed",
    margin="strict decrease from narrowest to widest; all violations ≤ 1e-4 → inconclusive",
    experiment=_constrained_experiment,
))
