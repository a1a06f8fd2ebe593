"""Claims about the orthogonalization step of Muon-type optimizers.

- muoneq-ns-error-vs-conditioning (MuonEq, Chang et al., arXiv:2603.28254): finite-step orthogonalization
  is governed by the stable rank and condition number of the input; row normalization removes marginal
  scale mismatch. Protocol (fixed before the first run): random fp32 matrices X = D·G, G Gaussian
  (128×256; fast 64×128), D = diag(10^u_i), u_i ~ U(−2, 2); 200 matrices (fast 40) per seed. Error =
  ‖NS5(X) − polar(X)‖_F / ‖polar(X)‖_F with Muon's 5 Jordan Newton–Schulz steps in fp32 (optimlab's
  ``orthogonalize``), polar from an fp64 SVD. R-equilibration divides each row by its norm (MuonEq-R),
  and its error is measured against the polar factor of the equilibrated matrix. Verdict per seed:
  Spearman(error, κ(X)) ≥ 0.8, and error(R·X) < error(X) on ≥ 90% of the matrices.
- freon-quasinorm-best (Muon is Not That Special, arXiv:2605.11181): the best Schatten parameter of
  Freon's update lies strictly in the quasi-norm regime q < 1 (shown on GPT-2; no numbers). Small proxy:
  mnist1d MLP, freon with schatten_q ∈ {0.25, 0.5, 0.75, 1, 1.5, 2} (fast {0.5, 1, 2}), lr tuned per q on
  one grid (full 4 points ×4 from 0.001; fast {0.004, 0.016}) by the seed-mean final eval loss; 600 steps
  (fast 60). Verdict per seed: the q with the lowest eval loss on that seed (each q at its tuned lr) is
  < 1. Inconclusive when the winning q's lr sits at an edge of the lr grid.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .base import Claim, Outcome, new_figure, register
from .protocols import plot_tuning, tuned_comparison

NS_FAST = {"count": 40, "shape": (64, 128)}
NS_FULL = {"count": 200, "shape": (128, 256)}
SPEARMAN_MIN, R_WINS_MIN = 0.8, 0.9


def _ns_error(x: torch.Tensor) -> float:
    from optimlab.linalg import orthogonalize, polar_svd

    exact = polar_svd(x.double())
    approx = orthogonalize(x, steps=5, schedule="jordan", dtype=torch.float32)
    return float((approx.double() - exact).norm() / exact.norm())


def _ns_experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    from scipy.stats import spearmanr

    cfg = NS_FAST if fast else NS_FULL
    per_seed, passed, data = {}, {}, {}
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        kappa, srank, err, err_r = [], [], [], []
        for _ in range(cfg["count"]):
            g = torch.randn(*cfg["shape"], generator=gen)
            rows = 10.0 ** (4.0 * torch.rand(cfg["shape"][0], 1, generator=gen) - 2.0)
            x = rows * g
            s = torch.linalg.svdvals(x.double())
            kappa.append(float(s[0] / s[-1]))
            srank.append(float((s ** 2).sum() / s[0] ** 2))
            err.append(_ns_error(x))
            err_r.append(_ns_error(x / x.norm(dim=1, keepdim=True)))
        rho = float(spearmanr(err, kappa)[0])
        rho_srank = float(spearmanr(err, srank)[0])
        wins = float(np.mean(np.asarray(err_r) < np.asarray(err)))
        per_seed[seed] = {"spearman_err_kappa": rho, "spearman_err_stable_rank": rho_srank,
                          "r_wins_fraction": wins, "median_err": float(np.median(err)),
                          "median_err_r": float(np.median(err_r))}
        passed[seed] = rho >= SPEARMAN_MIN and wins >= R_WINS_MIN
        data[seed] = (kappa, err, err_r, srank)
    fig, (ax, ax2) = new_figure(2)
    for i, seed in enumerate(seeds):
        kappa, err, err_r, srank = data[seed]
        ax.loglog(kappa, err, ".", color=f"C{i}", alpha=0.6, label=f"seed {seed}: D·G")
        ax2.loglog(err, err_r, ".", color=f"C{i}", alpha=0.6, label=f"seed {seed}")
    lo = min(min(min(d[1]), min(d[2])) for d in data.values())
    ax2.plot([lo, 1], [lo, 1], "k:", lw=1)
    ax.set(xlabel="κ(X)", ylabel="NS5 polar error (rel. Frobenius)", title=f"{cfg['shape']} fp32, rows ×10^U(−2,2)")
    ax2.set(xlabel="error without equilibration", ylabel="error after row equilibration", title="below the diagonal: R helps")
    ax.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    explanation = (f"{cfg['count']} matrices {cfg['shape']} per seed: Spearman(error, κ) "
                   f"{', '.join('%.3f' % v['spearman_err_kappa'] for v in per_seed.values())} (need ≥ {SPEARMAN_MIN}); "
                   f"R-equilibration lowers the error on "
                   f"{', '.join('%.0f%%' % (100 * v['r_wins_fraction']) for v in per_seed.values())} of matrices "
                   f"(need ≥ {R_WINS_MIN:.0%})")
    return Outcome(per_seed, passed, explanation, fig, {"config": dict(cfg)})


Q_FAST = {"qs": (0.5, 1.0, 2.0), "lrs": (0.004, 0.016), "steps": 60}
Q_FULL = {"qs": (0.25, 0.5, 0.75, 1.0, 1.5, 2.0), "lrs": (0.001, 0.004, 0.016, 0.064), "steps": 600}


def _freon_experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = Q_FAST if fast else Q_FULL
    tuned = tuned_comparison("mnist1d", {f"q={q:g}": {"optimizer": "freon", "schatten_q": q} for q in cfg["qs"]},
                             cfg["lrs"], seeds, cfg["steps"])
    means = {label: t.mean() for label, t in tuned.items()}
    best_label = min(means, key=lambda k: means[k])
    per_seed, passed = {}, {}
    for s in seeds:
        vals = {label: t.per_seed[s] for label, t in tuned.items()}
        win = min(vals, key=lambda k: vals[k])
        q_win = float(win.split("=")[1])
        per_seed[s] = {**{f"eval_loss@{k}": float(v) for k, v in vals.items()}, "best_q": q_win}
        passed[s] = q_win < 1.0
    edges = []
    t = tuned[best_label]
    if t.at_edge:
        edges.append(f"best {best_label}: lr={t.lr:g} at the {t.at_edge} edge of [{min(t.curve):g} .. {max(t.curve):g}]")
    fig, (ax, ax2) = new_figure(2)
    plot_tuning(ax, tuned, "eval_loss")
    ax.set_yscale("log")
    qs = list(cfg["qs"])
    for i, s in enumerate(seeds):
        ax2.plot(qs, [tuned[f"q={q:g}"].per_seed[s] for q in qs], "o-", color=f"C{i}", label=f"seed {s}")
    ax2.axvline(1.0, color="grey", lw=0.8)
    ax2.set(xscale="log", yscale="log", xlabel="Schatten q (q < 1: quasi-norm)", ylabel="final eval loss at tuned lr",
            title=f"mnist1d, {cfg['steps']} steps")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    explanation = (f"mnist1d, {cfg['steps']} steps, lr tuned per q on {list(cfg['lrs'])}: seed-mean eval loss "
                   + ", ".join(f"{k} {v:.4f} (lr {tuned[k].lr:g})" for k, v in means.items())
                   + f"; best q per seed {[per_seed[s]['best_q'] for s in seeds]} (need < 1)")
    return Outcome(per_seed, passed, explanation, fig,
                   {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
                    "curves": {k: {str(lr): v for lr, v in t.curve.items()} for k, t in tuned.items()},
                    "chosen_lr": {k: t.lr for k, t in tuned.items()}}, grid_edges=edges)


NS_CONDITIONING = register(Claim(
    id="muoneq-ns-error-vs-conditioning",
    paper="MuonEq: Balancing Before Orthogonalization with Lightweight Equilibration (Chang et al.)",
    arxiv="2603.28254",
    statement="Finite-step orthogonalization is governed by the stable rank and condition number of the input; "
              "row/column normalization removes marginal scale mismatch.",
    optimizers=(),
    protocol="fp32 matrices D·G (G Gaussian 128×256, fast 64×128; row scales 10^U(−2,2)), 200 per seed (fast 40); "
             "error of 5 Jordan Newton–Schulz steps to the fp64 polar factor, with and without row equilibration.",
    rule=f"Spearman(error, κ) ≥ {SPEARMAN_MIN} and the row-equilibrated error is lower on ≥ {R_WINS_MIN:.0%} of "
         "matrices",
    margin=f"ρ_S ≥ {SPEARMAN_MIN}; R wins ≥ {R_WINS_MIN:.0%}, every seed",
    experiment=_ns_experiment,
))

FREON_Q = register(Claim(
    id="freon-quasinorm-best",
    paper="Muon is Not That Special: Random or Inverted Spectra Work Just as Well",
    arxiv="2605.11181",
    statement="The best Schatten parameter of the Freon update lies strictly in the quasi-norm regime q < 1 "
              "(shown on GPT-2; no numbers in the abstract).",
    optimizers=("freon",),
    protocol="mnist1d MLP; freon with schatten_q ∈ {0.25, 0.5, 0.75, 1, 1.5, 2}, lr tuned per q on "
             "{0.001, 0.004, 0.016, 0.064} by the seed-mean final eval loss, 600 steps (fast: q ∈ {0.5, 1, 2}, "
             "lr ∈ {0.004, 0.016}, 60 steps). A small-scale proxy of a GPT-2 statement.",
    rule="the q with the lowest eval loss on the seed (each q at its tuned lr) is < 1; the winning q's lr at a "
         "grid edge makes it inconclusive",
    margin="argmin_q L(q) < 1 on every seed",
    experiment=_freon_experiment,
))
