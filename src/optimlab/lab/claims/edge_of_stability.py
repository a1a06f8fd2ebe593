"""Edge of stability: full-batch GD sharpness settles at 2/η; Adam's preconditioned sharpness at 38/η.

Setting (Cohen et al.'s fc-tanh + MSE, scaled down): the first ``n`` images of scikit-learn's
bundled 8×8 digits, features standardized, loss ½‖f(x) − onehot(y)‖² averaged over examples,
model 64 → w → w → 10 with tanh, initialized from the seed. Sharpness is measured by
``optimlab.diagnostics.EoSMonitor`` (Lanczos on exact Hessian-vector products, full training set).
The "late" value is the median over the last 30% of the measurements.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .base import Claim, Outcome, new_figure, register

GD_FAST = {"n": 128, "width": 32, "lrs": (0.4, 0.6), "steps": 600, "every": 30, "tol": 1e-2}
GD_FULL = {"n": 500, "width": 64, "lrs": (0.2, 0.3, 0.45), "steps": 2000, "every": 50}
ADAM_FAST = {"n": 128, "width": 32, "lrs": (0.01,), "steps": 600, "every": 30, "tol": 1e-2}
ADAM_FULL = {"n": 500, "width": 64, "lrs": (0.002, 0.004), "steps": 2000, "every": 50}
LOW, HIGH = 0.85, 1.15
TAIL = 0.3


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, read from disk

    X, y = load_digits(return_X_y=True)
    x = torch.tensor(X[:n], dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    return x, nn.functional.one_hot(torch.tensor(y[:n]), 10).float()


def _model(width: int, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 10))
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):  # torch's default bound, from our generator
                bound = 1.0 / m.in_features ** 0.5
                m.weight.uniform_(-bound, bound, generator=gen)
                m.bias.uniform_(-bound, bound, generator=gen)
    return model


def _mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, target = batch
    return 0.5 * ((model(x) - target) ** 2).sum(dim=1).mean()


def _train(optimizer_name: str, lr: float, seed: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """Full-batch training with an EoSMonitor; the ratio history (quantity / threshold) and losses."""
    import optimlab
    from optimlab.diagnostics import EoSMonitor, adam_threshold, gd_threshold

    data = _data(cfg["n"])
    model = _model(cfg["width"], seed)
    if optimizer_name == "sgd":
        opt = optimlab.create(list(model.parameters()), "sgd", lr=lr)
        monitor = EoSMonitor(every=cfg["every"], preconditioned=False, threshold=gd_threshold(lr), tol=cfg.get("tol", 1e-3))
    else:
        opt = optimlab.create(list(model.parameters()), "adam", lr=lr, betas=(0.9, 0.999), eps=1e-8)
        monitor = EoSMonitor(every=cfg["every"], preconditioned=True, threshold=adam_threshold(lr, 0.9), tol=cfg.get("tol", 1e-3))
    steps, ratios, losses, diverged = [], [], [], False
    for step in range(cfg["steps"] + 1):
        # Adam's preconditioner exists only after its first step
        if step > 0 or optimizer_name == "sgd":
            rec = monitor.step(step, model, _mse, data, opt)
            if rec is not None:
                steps.append(step)
                ratios.append(float(rec.ratio))
                losses.append(float(rec.loss))
                if not np.isfinite(rec.loss) or rec.loss > 1e6:
                    diverged = True
                    break
        opt.zero_grad()
        _mse(model, data).backward()
        opt.step()
    k = max(3, int(round(TAIL * len(ratios))))
    late = float(np.median(ratios[-k:])) if ratios else float("nan")
    return {"lr": lr, "seed": seed, "steps": steps, "ratios": ratios, "losses": losses, "late_ratio": late,
            "first_ratio": ratios[0] if ratios else float("nan"), "diverged": diverged}


def _experiment(optimizer_name: str, fast_cfg: dict, full_cfg: dict, quantity: str):
    def run(fast: bool, seeds: Sequence[int]) -> Outcome:
        cfg = fast_cfg if fast else full_cfg
        runs = [_train(optimizer_name, lr, seed, cfg) for seed in seeds for lr in cfg["lrs"]]
        per_seed: dict[int, dict[str, float]] = {}
        passed: dict[int, bool] = {}
        for seed in seeds:
            mine = [r for r in runs if r["seed"] == seed]
            per_seed[seed] = {}
            for r in mine:
                per_seed[seed][f"late_ratio@lr={r['lr']}"] = r["late_ratio"]
                per_seed[seed][f"first_ratio@lr={r['lr']}"] = r["first_ratio"]
            passed[seed] = all(LOW <= r["late_ratio"] <= HIGH and not r["diverged"] for r in mine)
        fig, (ax, ax2) = new_figure(2)
        colors = {}
        for r in runs:
            color = colors.setdefault(r["lr"], f"C{len(colors)}")
            ax.plot(r["steps"], r["ratios"], color=color, alpha=0.8,
                    label=f"η={r['lr']}" if r["seed"] == seeds[0] else None)
            ax2.semilogy(r["steps"], r["losses"], color=color, alpha=0.8)
        ax.axhline(1.0, color="k", lw=1)
        ax.axhspan(LOW, HIGH, color="0.85", zorder=0, label=f"margin [{LOW}, {HIGH}]")
        ax.set(xlabel="step", ylabel=f"{quantity} / threshold",
               title=f"{'GD' if optimizer_name == 'sgd' else 'Adam'}: {quantity} / threshold ({len(seeds)} seeds)")
        ax.legend(fontsize=8)
        ax2.set(xlabel="step", ylabel="training loss", title="Training loss (non-monotone at EoS)")
        fig.tight_layout()
        lates = [r["late_ratio"] for r in runs]
        explanation = (f"late {quantity}/threshold (median of last {int(TAIL * 100)}% of measurements) over "
                       f"{len(runs)} runs (lrs {list(cfg['lrs'])} × seeds {list(seeds)}): "
                       f"min {min(lates):.3f}, max {max(lates):.3f}; first measured ratio "
                       f"{min(r['first_ratio'] for r in runs):.3f}–{max(r['first_ratio'] for r in runs):.3f}")
        details = {"config": dict(cfg), "runs": [{k: r[k] for k in ("lr", "seed", "late_ratio", "first_ratio",
                                                                  "diverged")} for r in runs]}
        return Outcome(per_seed, passed, explanation, fig, details)

    return run


GD_EOS = register(Claim(
    id="gd-edge-of-stability",
    paper="Gradient Descent on Neural Networks Typically Occurs at the Edge of Stability (Cohen, Kaur, Li, "
          "Kolter, Talwalkar, ICLR 2021)",
    arxiv="2103.00065",
    statement="Under full-batch gradient descent with step size η the sharpness λ_max(H) rises "
              "(progressive sharpening) and then hovers at 2/η.",
    optimizers=("sgd",),
    protocol="full-batch GD (optimlab sgd, momentum 0) on a tanh MLP 64→w→w→10, MSE on n standardized "
             "sklearn digits; λ_max(H) by Lanczos every k steps (residual tol 1e-2 fast, 1e-3 full). fast: n=128, w=32, η∈{0.4, 0.6}, 600 steps; "
             "full: n=500, w=64, η∈{0.2, 0.3, 0.45}, 2000 steps.",
    rule="for every η, the late sharpness·η/2 (median of the last 30% of measurements) is within the margin",
    margin=f"late λ_max·η/2 ∈ [{LOW}, {HIGH}] for each learning rate",
    experiment=_experiment("sgd", GD_FAST, GD_FULL, "sharpness"),
))

ADAM_EOS = register(Claim(
    id="adam-edge-of-stability",
    paper="Adaptive Gradient Methods at the Edge of Stability (Cohen et al., 2022)",
    arxiv="2207.14484",
    statement="Under full-batch Adam the preconditioned sharpness λ_max(P⁻¹H) equilibrates at "
              "(2+2β1)/((1−β1)η) = 38/η for β1 = 0.9.",
    optimizers=("adam",),
    protocol="full-batch Adam (optimlab adam, betas (0.9, 0.999), eps 1e-8) on the tanh MLP / MSE / digits setting "
             "of gd-edge-of-stability; λ_max(P^{-1/2}HP^{-1/2}) with P = diag(√v̂+ε) read from Adam's state. "
             "fast: n=128, w=32, η=0.01, 600 steps; full: n=500, w=64, η∈{0.002, 0.004}, 2000 steps.",
    rule="for every η, the late λ_max(P⁻¹H)·η/38 (median of the last 30% of measurements) is within the margin",
    margin=f"late λ_max(P⁻¹H)·η/38 ∈ [{LOW}, {HIGH}] for each learning rate",
    experiment=_experiment("adam", ADAM_FAST, ADAM_FULL, "preconditioned sharpness"),
))
