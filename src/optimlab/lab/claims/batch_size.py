"""Batch size: the batch Hessian's spectrum and the maximal learning rate; AdaGrad-Norm with adaptive batches.

- rmt-batch-hessian-lr-scaling ("Learning Rates as a Function of Batch Size: A Random Matrix Theory
  Approach to Neural Network Training", Granziol, Zohren, Roberts, arXiv:2006.09092): the extremal eigenvalues of the batch
  Hessian exceed those of the full Hessian, and the maximal learning rate grows linearly with the batch
  size for SGD and as its square root for Adam. Protocol (fixed before the first run): 8×8 digits, MLP
  64→32→10 tanh, cross-entropy; checkpoint = 200 Adam steps (lr 1e-3, batch 64) from the seed.
  λ_max(H_B): Lanczos on 10 random batches (fast 3) of each B ∈ {8, 32, 128, 512} (fast {8, 64, 512}),
  averaged, vs λ_max of the full-batch Hessian. Maximal lr: from the checkpoint, 100 steps (fast 50) of
  optimlab ``sgd`` / ``adam`` at batch B; a run diverges when the full-batch loss ends non-finite or above
  2× its starting value; bisection in log lr over [1e-4, 1e3] (10 halvings; fast 7). Verdict per seed:
  mean λ_max(H_B) decreasing in B and above λ_max(H_full) at every B; the log-log slope of the maximal lr
  vs B in 1 ± 0.3 for SGD and 0.5 ± 0.2 for Adam.
- adadagrad-rate (Lau, Liu, Kolar, "AdAdaGrad: Adaptive Batch Size Schemes for Adaptive Gradient Methods",
  arXiv:2402.11215): AdaGrad-Norm with adaptive batch sizes (norm test) finds a first-order stationary point
  at rate O(1/K). Protocol: ℓ2-regularized (1e-3) multinomial logistic regression on digits (pixels/16),
  optimlab ``adagrad_norm`` lr 1.0 (its other defaults), batch from ``schedules.NormTest(eta=0.5, batch=8)``
  with exact per-example gradients; K = 2000 steps (fast 150). Verdict per seed: the log-log slope of
  min_{k≤K}‖∇f(w_k)‖² (full gradient) vs K over the second half of the steps (decade-spaced points) ≤ −0.8,
  and the batch size never decreases.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .base import Claim, Outcome, new_figure, register

RMT_FAST = {"batches": (8, 64, 512), "draws": 3, "steps": 50, "halvings": 7}
RMT_FULL = {"batches": (8, 32, 128, 512), "draws": 10, "steps": 100, "halvings": 10}
SLOPES = {"sgd": (1.0, 0.3), "adam": (0.5, 0.2)}


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from ..tasks.classification import _digits as load

    x_np, y_np = load()
    return torch.tensor(x_np / 16.0, dtype=torch.float32), torch.tensor(y_np, dtype=torch.int64)


def _ce(model: nn.Module, batch: tuple) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def _checkpoint(seed: int, x: torch.Tensor, y: torch.Tensor) -> dict:
    import optimlab

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    opt = optimlab.create(list(model.parameters()), "adam", lr=1e-3)
    gen = torch.Generator().manual_seed(seed + 99)
    for _ in range(200):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        opt.zero_grad()
        _ce(model, (x[idx], y[idx])).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _model(state: dict) -> nn.Module:
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    model.load_state_dict(state)
    return model


def _stable(state: dict, name: str, lr: float, batch: int, steps: int, seed: int, x, y) -> bool:
    import optimlab

    model = _model(state)
    with torch.no_grad():
        start = float(_ce(model, (x, y)))
    opt = optimlab.create(list(model.parameters()), name, lr=lr, nonfinite="skip")
    gen = torch.Generator().manual_seed(seed + 7)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        opt.zero_grad()
        loss = _ce(model, (x[idx], y[idx]))
        if not torch.isfinite(loss):
            return False
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = float(_ce(model, (x, y)))
    return math.isfinite(end) and end <= 2.0 * start


def _max_lr(state, name, batch, cfg, seed, x, y) -> float:
    lo, hi = math.log(1e-4), math.log(1e3)
    for _ in range(cfg["halvings"]):
        mid = 0.5 * (lo + hi)
        if _stable(state, name, math.exp(mid), batch, cfg["steps"], seed, x, y):
            lo = mid
        else:
            hi = mid
    return math.exp(lo)


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def _rmt(fast: bool, seeds: Sequence[int]) -> Outcome:
    from optimlab.diagnostics import top_eigenvalues

    cfg = RMT_FAST if fast else RMT_FULL
    x, y = _digits()
    bs = list(cfg["batches"])
    per_seed, passed, table = {}, {}, {}
    for seed in seeds:
        state = _checkpoint(seed, x, y)
        model = _model(state)
        full = top_eigenvalues(model, _ce, (x, y), k=1, tol=1e-3).value
        gen = torch.Generator().manual_seed(seed + 3)
        lam = {}
        for b in bs:
            vals = []
            for _ in range(cfg["draws"]):
                idx = torch.randperm(len(x), generator=gen)[:b]
                vals.append(top_eigenvalues(model, _ce, (x[idx], y[idx]), k=1, tol=1e-3).value)
            lam[b] = float(np.mean(vals))
        lrs = {name: {b: _max_lr(state, name, b, cfg, seed, x, y) for b in bs} for name in SLOPES}
        slopes = {name: _slope(bs, [lrs[name][b] for b in bs]) for name in SLOPES}
        table[seed] = (full, lam, lrs)
        per_seed[seed] = {"lambda_full": full, **{f"lambda_B{b}": v for b, v in lam.items()},
                          **{f"{n}_max_lr@B{b}": v for n, d in lrs.items() for b, v in d.items()},
                          **{f"{n}_slope": v for n, v in slopes.items()}}
        spectrum_ok = all(lam[a] > lam[b] for a, b in zip(bs, bs[1:])) and all(v > full for v in lam.values())
        slope_ok = all(abs(slopes[n] - c) <= tol for n, (c, tol) in SLOPES.items())
        passed[seed] = spectrum_ok and slope_ok
    fig, (ax, ax2) = new_figure(2)
    for i, seed in enumerate(seeds):
        full, lam, lrs = table[seed]
        ax.loglog(bs, [lam[b] for b in bs], "o-", color=f"C{i}", label=f"λ_max(H_B), seed {seed}")
        ax.axhline(full, color=f"C{i}", ls=":", lw=1)
        for name, marker in (("sgd", "o-"), ("adam", "s--")):
            ax2.loglog(bs, [lrs[name][b] for b in bs], marker, color=f"C{i}", label=f"{name}, seed {seed}")
    ax.set(xlabel="batch size B", ylabel="λ_max of the batch Hessian (dotted: full batch)", title="digits MLP checkpoint")
    ax2.set(xlabel="batch size B", ylabel="largest non-diverging lr (bisection)", title="max lr vs B")
    ax.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    explanation = "; ".join(
        f"seed {s}: λ_B " + "/".join(f"{per_seed[s][f'lambda_B{b}']:.3g}" for b in bs)
        + f" vs full {per_seed[s]['lambda_full']:.3g}, slope SGD {per_seed[s]['sgd_slope']:.2f} Adam {per_seed[s]['adam_slope']:.2f}"
        for s in seeds) + " (need λ_B decreasing and above full; slopes 1 ± 0.3 and 0.5 ± 0.2)"
    return Outcome(per_seed, passed, explanation, fig, {"config": {k: list(v) if isinstance(v, tuple) else v
                                                                   for k, v in cfg.items()}})


ADA_FAST, ADA_FULL = {"steps": 150}, {"steps": 2000}
L2, ADA_SLOPE = 1e-3, -0.8


def _ada_seed(steps: int, seed: int, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[int]]:
    import optimlab

    from .. import schedules

    gen = torch.Generator().manual_seed(seed)
    w = nn.Parameter(0.01 * torch.randn(64, 10, generator=gen, dtype=torch.float64))
    opt = optimlab.create([w], "adagrad_norm", lr=1.0)
    ctl = schedules.NormTest(eta=0.5, batch=8, max_batch=len(x))
    onehot = nn.functional.one_hot(y, 10).double()
    gnorms, batches = [], []
    for _ in range(steps):
        with torch.no_grad():
            full = x.T @ (torch.softmax(x @ w, 1) - onehot) / len(x) + L2 * w
            gnorms.append(float((full ** 2).sum()))
        b = ctl.batch
        batches.append(b)
        idx = torch.randint(0, len(x), (b,), generator=gen)
        with torch.no_grad():
            err = torch.softmax(x[idx] @ w, 1) - onehot[idx]
            per_example = (x[idx][:, :, None] * err[:, None, :]).reshape(b, -1) + L2 * w.reshape(1, -1)
            w.grad = per_example.mean(0).reshape(64, 10).clone()
        opt.step()
        ctl.update(per_example)
    return gnorms, batches


def _adadagrad(fast: bool, seeds: Sequence[int]) -> Outcome:
    steps = (ADA_FAST if fast else ADA_FULL)["steps"]
    x, y = _digits()
    x = x.double()
    per_seed, passed, runs = {}, {}, {}
    for seed in seeds:
        gnorms, batches = _ada_seed(steps, seed, x, y)
        best = np.minimum.accumulate(np.asarray(gnorms))
        ks = np.unique(np.geomspace(steps // 2, steps, 10).astype(int))
        slope = _slope(ks, best[ks - 1])
        monotone = all(a <= b for a, b in zip(batches, batches[1:]))
        runs[seed] = (best, batches)
        per_seed[seed] = {"slope_min_gradnorm2": slope, "final_min_gradnorm2": float(best[-1]),
                          "first_batch": float(batches[0]), "last_batch": float(batches[-1])}
        passed[seed] = slope <= ADA_SLOPE and monotone
    fig, (ax, ax2) = new_figure(2)
    for i, seed in enumerate(seeds):
        best, batches = runs[seed]
        k = np.arange(1, steps + 1)
        ax.loglog(k, best, color=f"C{i}", label=f"seed {seed}")
        ax2.semilogy(k, batches, color=f"C{i}", label=f"seed {seed}")
    ax.loglog(np.arange(1, steps + 1), best[0] / np.arange(1, steps + 1), "k:", lw=1, label="1/K")
    ax.set(xlabel="K", ylabel="min_{k≤K} ‖∇f(w_k)‖²", title="AdaGrad-Norm + norm test (η = 0.5)")
    ax2.set(xlabel="step", ylabel="batch size", title="adaptive batch")
    ax.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    explanation = ("slope of min‖∇f‖² vs K over the second half: " + ", ".join(
        f"{per_seed[s]['slope_min_gradnorm2']:.2f}" for s in seeds) + f" (need ≤ {ADA_SLOPE}); batch "
        + ", ".join(f"{per_seed[s]['first_batch']:.0f}→{per_seed[s]['last_batch']:.0f}" for s in seeds))
    return Outcome(per_seed, passed, explanation, fig, {"steps": steps, "l2": L2})


RMT = register(Claim(
    id="rmt-batch-hessian-lr-scaling",
    paper="Learning Rates as a Function of Batch Size: A Random Matrix Theory Approach to Neural Network Training (Granziol, Zohren, "
          "Roberts)",
    arxiv="2006.09092",
    statement="The extremal eigenvalues of the batch Hessian exceed those of the full Hessian; the maximal "
              "learning rate grows linearly with the batch size for SGD and as its square root for Adam.",
    optimizers=("sgd", "adam"),
    protocol="digits MLP checkpoint (200 Adam steps); λ_max(H_B) by Lanczos on 10 batches per B ∈ {8, 32, 128, 512}; "
             "largest lr keeping the full loss ≤ 2× its start after 100 steps, by log bisection (fast: B ∈ {8, 64, "
             "512}, 3 batches, 50 steps, 7 halvings).",
    rule="λ_max(H_B) decreasing in B and above the full-batch value; max-lr log-log slope 1 ± 0.3 (SGD), "
         "0.5 ± 0.2 (Adam)",
    margin="spectrum ordering exact; slope tolerances ±0.3 / ±0.2, every seed",
    experiment=_rmt,
))

ADADAGRAD = register(Claim(
    id="adadagrad-rate",
    paper="AdAdaGrad: Adaptive Batch Size Schemes for Adaptive Gradient Methods (Lau, Liu, Kolar)",
    arxiv="2402.11215",
    statement="AdaGrad-Norm with adaptive batch sizes (norm test) finds a first-order stationary point at rate "
              "O(1/K).",
    optimizers=("adagrad_norm",),
    protocol="ℓ2-regularized logistic regression on digits; adagrad_norm lr 1.0; NormTest(η=0.5) from batch 8 with "
             "exact per-example gradients; 2000 steps (fast 150).",
    rule=f"log-log slope of min_k‖∇f‖² vs K over the second half ≤ {ADA_SLOPE}; batch size non-decreasing",
    margin=f"slope ≤ {ADA_SLOPE}, every seed",
    experiment=_adadagrad,
))
