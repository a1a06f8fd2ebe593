"""The gradient lives in the top Hessian eigenspace: tiny subspaces and emerging outliers.

- tiny-subspace-k-classes (Gur-Ari, Roberts, Dyer, "Gradient Descent Happens in a Tiny Subspace",
  arXiv:1812.04754): after a short period the gradient lies in the span of a few top Hessian eigenvectors,
  as many as there are classes. Protocol (fixed before the first run): 8×8 digits (10 classes, pixels/16),
  MLP 64→32→10 tanh (fast 64→16→10), cross-entropy, SGD lr 0.1 batch 64 (optimlab ``sgd``), 500 steps
  (fast 200). Every 50 steps: the full-batch gradient g and the top-20 eigenvectors of the full-batch
  Hessian (Lanczos, ``optimlab.diagnostics.top_eigenvalues``); overlap(k) = ‖P_k g‖²/‖g‖² for
  k ∈ {5, 10, 20}. Verdict per seed: mean overlap(10) over the checkpoints after step 100 ≥ 0.8, and
  overlap(10) − overlap(5) ≥ overlap(20) − overlap(10) (the gain stops at k = #classes).
- outlier-eigenspace-alignment (Ben Arous, Gheissari, Huang, Jagannath, "High-dimensional SGD aligns with
  emerging outlier eigenspaces", arXiv:2310.03010): the SGD trajectory quickly aligns, layer by
  layer, with the emerging low-rank outlier eigenspaces of the Hessian. Protocol: 4-class Gaussian mixture
  in d = 200 (means 3·e_c on random orthonormal directions, unit noise; 2,000 training points; fast
  d = 100, 1,000 points), MLP d→32→4 ReLU, cross-entropy, SGD lr 0.05 batch 32, 300 steps (fast 150).
  Every 50 steps, per layer (first-layer weight, second-layer weight; biases excluded): the layer's
  full-batch gradient and the top-4 eigenvectors of the Hessian restricted to that layer. Verdict per seed:
  for both layers the mean overlap over the checkpoints after step 100 ≥ 0.8.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .base import Claim, Outcome, new_figure, register

TS_FAST = {"hidden": 16, "steps": 200}
TS_FULL = {"hidden": 32, "steps": 500}
KS, EVERY, AFTER, OVERLAP_MIN = (5, 10, 20), 50, 100, 0.8


def _ce(model: nn.Module, batch: tuple) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def _overlaps(model: nn.Module, data: tuple, params: list[torch.Tensor], k: int, ks: Sequence[int]) -> list[float]:
    from optimlab.diagnostics import gradient_overlap, top_eigenvalues

    grads = torch.autograd.grad(_ce(model, data), params)
    g = torch.cat([t.reshape(-1) for t in grads])
    eig = top_eigenvalues(model, _ce, data, k=k, params=params, tol=1e-4, seed=0)
    return [gradient_overlap(g, eig.eigenvectors[:kk]) for kk in ks]


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, batch: int, steps: int, seed: int,
           probe) -> dict[int, list]:
    import optimlab

    gen = torch.Generator().manual_seed(seed + 1000)
    opt = optimlab.create(list(model.parameters()), "sgd", lr=lr)
    records = {}
    for t in range(steps + 1):
        if t % EVERY == 0:
            records[t] = probe()
        if t == steps:
            break
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        opt.zero_grad()
        _ce(model, (x[idx], y[idx])).backward()
        opt.step()
    return records


def _tiny(fast: bool, seeds: Sequence[int]) -> Outcome:
    from ..tasks.classification import _digits

    cfg = TS_FAST if fast else TS_FULL
    x_np, y_np = _digits()
    x, y = torch.tensor(x_np / 16.0, dtype=torch.float32), torch.tensor(y_np, dtype=torch.int64)
    per_seed, passed, recs = {}, {}, {}
    for seed in seeds:
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(64, cfg["hidden"]), nn.Tanh(), nn.Linear(cfg["hidden"], 10))
        params = list(model.parameters())
        rec = _train(model, x, y, 0.1, 64, cfg["steps"], seed, lambda: _overlaps(model, (x, y), params, max(KS), KS))
        recs[seed] = rec
        late = np.asarray([v for t, v in rec.items() if t > AFTER])
        o5, o10, o20 = late.mean(axis=0)
        per_seed[seed] = {"overlap5": float(o5), "overlap10": float(o10), "overlap20": float(o20),
                          "gain5to10": float(o10 - o5), "gain10to20": float(o20 - o10)}
        passed[seed] = o10 >= OVERLAP_MIN and o10 - o5 >= o20 - o10
    fig = _overlap_figure(recs, seeds, [f"top-{k}" for k in KS], ylabel="‖P_k g‖² / ‖g‖²",
                          title=f"digits MLP 64→{cfg['hidden']}→10, SGD lr 0.1")
    explanation = ("mean overlap after step 100 (top-5/10/20): " + "; ".join(
        f"seed {s}: {v['overlap5']:.3f}/{v['overlap10']:.3f}/{v['overlap20']:.3f}" for s, v in per_seed.items())
        + f" (need top-10 ≥ {OVERLAP_MIN} and gain 5→10 ≥ gain 10→20)")
    return Outcome(per_seed, passed, explanation, fig,
                   {"config": dict(cfg), "records": {str(s): {str(t): v for t, v in r.items()} for s, r in recs.items()}})


def _overlap_figure(recs: dict, seeds: Sequence[int], series: Sequence[str], ylabel: str, title: str) -> Any:
    """Overlap against the SGD step: a colour per series (``recs[seed][step][j]`` for series j), solid for the
    first seed and dashed for the others; a grey line at step AFTER."""
    fig, (ax,) = new_figure(1)
    for i, seed in enumerate(seeds):
        ts = sorted(recs[seed])
        for j, name in enumerate(series):
            ax.plot(ts, [recs[seed][t][j] for t in ts], marker="o", color=f"C{j}", ls="-" if i == 0 else "--",
                    label=f"{name}, seed {seed}")
    ax.axvline(AFTER, color="grey", lw=0.8)
    ax.set(xlabel="SGD step", ylabel=ylabel, title=title, ylim=(0, 1.02))
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


OA_FAST = {"d": 100, "n": 1000, "steps": 150}
OA_FULL = {"d": 200, "n": 2000, "steps": 300}
CLASSES = 4


def _mixture(d: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    means = 3.0 * torch.linalg.qr(torch.randn(d, CLASSES, generator=gen))[0].T
    y = torch.randint(0, CLASSES, (n,), generator=gen)
    return means[y] + torch.randn(n, d, generator=gen), y


def _outlier(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = OA_FAST if fast else OA_FULL
    per_seed, passed, recs = {}, {}, {}
    for seed in seeds:
        x, y = _mixture(cfg["d"], cfg["n"], seed)
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(cfg["d"], 32), nn.ReLU(), nn.Linear(32, CLASSES))
        layers = [model[0].weight, model[2].weight]

        def probe() -> list[float]:
            return [_overlaps(model, (x, y), [w], CLASSES, (CLASSES,))[0] for w in layers]

        rec = _train(model, x, y, 0.05, 32, cfg["steps"], seed, probe)
        recs[seed] = rec
        late = np.asarray([v for t, v in rec.items() if t > AFTER]).mean(axis=0)
        per_seed[seed] = {"layer1_overlap": float(late[0]), "layer2_overlap": float(late[1]),
                          "layer1_overlap@0": float(rec[0][0]), "layer2_overlap@0": float(rec[0][1])}
        passed[seed] = bool(late.min() >= OVERLAP_MIN)
    fig = _overlap_figure(recs, seeds, ["layer 1", "layer 2"],
                          ylabel=f"overlap with top-{CLASSES} layer-Hessian eigenvectors",
                          title=f"{CLASSES}-class Gaussian mixture, d={cfg['d']}")
    explanation = ("mean per-layer overlap after step 100: " + "; ".join(
        f"seed {s}: layer 1 {v['layer1_overlap']:.3f}, layer 2 {v['layer2_overlap']:.3f}" for s, v in per_seed.items())
        + f" (need ≥ {OVERLAP_MIN} for both)")
    return Outcome(per_seed, passed, explanation, fig,
                   {"config": dict(cfg), "records": {str(s): {str(t): v for t, v in r.items()} for s, r in recs.items()}})


TINY = register(Claim(
    id="tiny-subspace-k-classes",
    paper="Gradient Descent Happens in a Tiny Subspace (Gur-Ari, Roberts, Dyer)",
    arxiv="1812.04754",
    statement="After a short period of training the gradient lies mostly in the span of the top Hessian "
              "eigenvectors, as many as there are classes.",
    optimizers=("sgd",),
    protocol="digits MLP 64→32→10 tanh (fast 64→16→10), SGD lr 0.1 batch 64, 500 steps (fast 200); every 50 "
             "steps the full-batch gradient's overlap with the top-k full-batch Hessian eigenvectors (Lanczos), "
             "k ∈ {5, 10, 20}.",
    rule=f"mean overlap(top-10) after step {AFTER} ≥ {OVERLAP_MIN}, and overlap(10) − overlap(5) ≥ overlap(20) − "
         "overlap(10)",
    margin=f"overlap10 ≥ {OVERLAP_MIN}; gain 5→10 ≥ gain 10→20, every seed",
    experiment=_tiny,
))

OUTLIER = register(Claim(
    id="outlier-eigenspace-alignment",
    paper="High-dimensional SGD aligns with emerging outlier eigenspaces (Ben Arous, Gheissari, Huang, Jagannath)",
    arxiv="2310.03010",
    statement="The SGD trajectory quickly aligns, layer by layer, with the emerging low-rank outlier eigenspaces "
              "of the Hessian (and the gradient matrices).",
    optimizers=("sgd",),
    protocol="4-class Gaussian mixture, d=200 (fast 100), 2,000 points (fast 1,000); MLP d→32→4 ReLU; SGD lr 0.05 "
             "batch 32, 300 steps (fast 150); per layer, the full-batch layer gradient's overlap with the top-4 "
             "eigenvectors of the layer-restricted Hessian, every 50 steps.",
    rule=f"mean per-layer overlap after step {AFTER} ≥ {OVERLAP_MIN}, both layers",
    margin=f"overlap ≥ {OVERLAP_MIN} for each layer, every seed",
    experiment=_outlier,
))
