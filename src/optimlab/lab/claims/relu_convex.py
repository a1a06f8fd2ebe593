"""The convex program as a gold standard for two-layer ReLU training (seed H19).

Mishkin & Pilanci, "Optimal Sets and Solution Paths of ReLU Networks" (arXiv:2306.00119): the global optima of
weight-decayed two-layer ReLU training are given by a convex program (the constrained group lasso over
activation patterns, ``optimlab.lab.relu_convex``), and every stationary point is an optimum of a sub-sampled
convex program (the patterns the network uses). So the convex optimum is a certified floor for any trained
network, and we can ask how often a standard optimizer reaches it.

Protocol (fixed before the first run):

- data per seed: n = 10 points x ~ U([−1, 1]²), y = sin(3x₁) + cos(2x₂); lifted x̃ = (x, 1);
- objective ½ Σ_i (Σ_j α_j (w_jᵀx̃_i)_+ − y_i)² + (β/2) Σ_j (‖w_j‖² + α_j²), β = 0.01 (the bias is a weight and
  is decayed, as the convex equivalence needs);
- convex optimum: every activation pattern (exact enumeration for inputs in R²), the dual solved by SLSQP and a
  primal point rebuilt from it; the bracket [dual, primal] must be narrower than 1e-9 (else inconclusive);
- Adam (optimlab ``adam``, lr 0.01 with a cosine decay to 0, full batch, float64, 20000 steps; fast 3000) on a
  width-20 network (≥ n + 1, so a minimal optimal network fits), from 20 inits per seed (fast 3): w ~ N(0, I/3),
  α ~ N(0, 1/20) from (seed, init);
- verdict per seed: every init's final objective ≥ convex optimum − 1e-6 (the floor), and ≥ 80% of inits within
  1% of the optimum. Reported, not judged: each init's objective against the optimum of the convex program
  restricted to the patterns its active neurons use (the "sub-sampled" program of the paper's second
  statement).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .base import Claim, Outcome, new_figure, register

BETA, N, WIDTH, LR = 0.01, 10, 20, 0.01
FAST = {"steps": 3000, "inits": 3}
FULL = {"steps": 20000, "inits": 20}
FLOOR_TOL, WITHIN, SHARE, GAP_MAX = 1e-6, 0.01, 0.8, 1e-9


def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(10_000 + seed)
    x = rng.uniform(-1.0, 1.0, (N, 2))
    y = np.sin(3 * x[:, 0]) + np.cos(2 * x[:, 1])
    return np.hstack([x, np.ones((N, 1))]), y


def _adam(x: np.ndarray, y: np.ndarray, seed: int, inits: int, steps: int) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Adam from ``inits`` inits at once: the networks are stacked along a leading axis and the loss is the sum
    of their objectives, so each network's gradient, and Adam's elementwise update of it, is that of its own
    run (one Python loop instead of ``inits``)."""
    import optimlab

    from ..relu_convex import network_objective

    ws, as_ = [], []
    for init in range(inits):
        gen = torch.Generator().manual_seed(1_000 * seed + init)
        ws.append(torch.randn(WIDTH, 3, generator=gen, dtype=torch.float64) / math.sqrt(3))
        as_.append(torch.randn(WIDTH, generator=gen, dtype=torch.float64) / math.sqrt(WIDTH))
    w = torch.stack(ws).requires_grad_(True)  # inits × width × 3
    a = torch.stack(as_).requires_grad_(True)  # inits × width
    xt, yt = torch.tensor(x), torch.tensor(y)
    opt = optimlab.create([w, a], "adam", lr=LR)
    for t in range(steps):
        for g in opt.param_groups:
            g["lr"] = LR * 0.5 * (1 + math.cos(math.pi * t / steps))
        opt.zero_grad()
        pred = torch.einsum("inw,iw->in", torch.relu(torch.einsum("nk,iwk->inw", xt, w)), a)
        loss = 0.5 * (pred - yt).pow(2).sum() + 0.5 * BETA * (w.pow(2).sum() + a.pow(2).sum())
        loss.backward()
        opt.step()
    wn, an = w.detach().numpy(), a.detach().numpy()
    return [(network_objective(wn[i], an[i], x, y, BETA), wn[i], an[i]) for i in range(inits)]


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    from ..relu_convex import activation_patterns, patterns_of_network, solve

    cfg = FAST if fast else FULL
    per_seed, passed, rel, sub_rel, gaps = {}, {}, {}, {}, []
    for seed in seeds:
        x, y = _data(seed)
        sol = solve(x, y, BETA, activation_patterns(x))
        gaps.append(sol.gap)
        opt_val = sol.lower_bound
        finals, subs = [], []
        for val, w, a in _adam(x, y, seed, cfg["inits"], cfg["steps"]):
            finals.append(val)
            pats = patterns_of_network(w, a, x)
            sub = solve(x, y, BETA, pats).lower_bound if len(pats) else 0.5 * float(y @ y)
            subs.append((val - sub) / sub)
        rel[seed] = [(v - opt_val) / opt_val for v in finals]
        sub_rel[seed] = subs
        floor_ok = min(finals) >= opt_val - FLOOR_TOL
        share = float(np.mean([r <= WITHIN for r in rel[seed]]))
        per_seed[seed] = {"convex_optimum": opt_val, "certificate_gap": sol.gap, "optimal_width": float(sol.active),
                          "adam_best": min(finals), "adam_median": float(np.median(finals)),
                          "adam_min_minus_opt": min(finals) - opt_val, "share_within_1pct": share,
                          "median_excess_over_subsampled": float(np.median(subs))}
        passed[seed] = floor_ok and share >= SHARE
    fig, (ax,) = new_figure(1)
    for i, seed in enumerate(seeds):
        ax.scatter(np.full(len(rel[seed]), i) + np.linspace(-0.2, 0.2, len(rel[seed])),
                   np.maximum(rel[seed], 1e-12), color=f"C{i}", s=14, label=f"seed {seed}: vs full program")
        ax.scatter(np.full(len(sub_rel[seed]), i + 0.4), np.maximum(np.abs(sub_rel[seed]), 1e-12), marker="x",
                   color=f"C{i}", s=14)
    ax.axhline(WITHIN, color="k", ls=":", lw=0.8)
    ax.set(yscale="log", xlabel="seed (dots: vs the convex optimum; x: |vs the sub-sampled program|)",
           ylabel="(Adam objective − optimum) / optimum",
           title=f"2-layer ReLU, n={N}, width {WIDTH}, β={BETA}, {cfg['inits']} inits × {cfg['steps']} Adam steps")
    ax.legend(fontsize=7)
    fig.tight_layout()
    explanation = (f"share of inits within {WITHIN:.0%} of the convex optimum: "
                   + ", ".join(f"{per_seed[s]['share_within_1pct']:.2f}" for s in seeds)
                   + f" (need ≥ {SHARE}); best Adam − optimum: "
                   + ", ".join(f"{per_seed[s]['adam_min_minus_opt']:.2e}" for s in seeds)
                   + f" (need ≥ −{FLOOR_TOL:g}); certificate gaps ≤ {max(gaps):.1e}; median excess over the "
                   "sub-sampled program: " + ", ".join(f"{per_seed[s]['median_excess_over_subsampled']:.1e}" for s in seeds))
    return Outcome(per_seed, passed, explanation, fig,
                   {"relative_excess": {str(s): rel[s] for s in seeds},
                    "excess_over_subsampled": {str(s): sub_rel[s] for s in seeds}},
                   verdict="inconclusive" if max(gaps) > GAP_MAX else None)


RELU_CONVEX = register(Claim(
    id="relu-convex-gold-standard",
    paper="Optimal Sets and Solution Paths of ReLU Networks (Mishkin, Pilanci)",
    arxiv="2306.00119",
    statement="Global optima of weight-decayed 2-layer ReLU training form the solution set of a convex program "
              "(a certified floor); stationary points are optima of sub-sampled convex programs.",
    optimizers=("adam",),
    protocol=f"n={N} points in 2-D, y = sin(3x₁) + cos(2x₂), β={BETA}; convex optimum by the dual over every "
             f"activation pattern; Adam (lr {LR}, cosine) on width {WIDTH} from 20 inits × 20000 steps "
             "(fast 3 × 3000)",
    rule=f"every init ≥ optimum − {FLOOR_TOL:g}; ≥ {SHARE:.0%} of inits within {WITHIN:.0%} of the optimum",
    margin=f"floor tolerance {FLOOR_TOL:g}; {WITHIN:.0%} relative; share ≥ {SHARE}; certificate gap ≤ {GAP_MAX:g}",
    experiment=_experiment,
))
