"""SGD's linear stability bounds the Hessian trace by 2/η; GD's bounds only λ_max (Wu & Su 2023).

Protocol (fixed before running): an over-parameterized two-layer tanh MLP (d=8, width 32, 321
parameters, float64) fits n=32 points whose targets are a tanh teacher plus label noise (σ=0.3),
so every global minimum interpolates noise under the MSE loss ½·mean((f − y)²). Learning rates are
set relative to the trace at initialization, η = c · 2/tr(H₀). For each η, SGD with batch size 1
(the paper's setting with the strongest noise) and full-batch GD start from the same initial point.
At the end, the exact Hessian of the full-batch loss (``optimlab.diagnostics.exact_spectrum``)
gives tr(H) and λ_max. A run counts as converged when its full-batch loss fell below 1% of the
initial loss; runs that diverge are recorded as such (the bound only speaks of minima reached).

Verdict per seed: every converged SGD run has tr(H)·η/2 ≤ 1.1 (the bound with 10% allowance for
stopping near, not at, the minimum), at least two SGD runs converged, and tr(H) at the largest
converged η is below tr(H) at the smallest (a larger η gives a flatter minimum). GD runs are the
contrast: their λ_max·η/2 stays below 1 while their tr(H)·η/2 is free to exceed 1.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .base import Claim, Outcome, new_figure, register

FAST = {"fractions": (0.3, 0.55, 0.8), "steps": 3500, "gd_steps": 1500}
FULL = {"fractions": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), "steps": 20000, "gd_steps": 20000}
N, DIM, WIDTH, NOISE = 32, 8, 32, 0.3
BOUND_ALLOWANCE, CONVERGED = 1.1, 1e-2


def _problem(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, DIM, generator=gen, dtype=torch.float64)
    teacher = torch.randn(DIM, generator=gen, dtype=torch.float64)
    y = torch.tanh(x @ teacher / math.sqrt(DIM)) + NOISE * torch.randn(N, generator=gen, dtype=torch.float64)
    return x, y


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(DIM, WIDTH), nn.Tanh(), nn.Linear(WIDTH, 1)).double()


def _loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return 0.5 * (model(x).squeeze(-1) - y).pow(2).mean()


def _curvature(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float]:
    from optimlab.diagnostics import exact_spectrum

    ev = exact_spectrum(model, _loss, data).eigenvalues.detach()
    return float(ev.sum()), float(ev.max())


def _stacked_losses(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-run loss of R copies of the MLP whose weights are stacked along dim 0: shape (R,)."""
    w1, b1, w2, b2 = params
    hidden = torch.tanh(torch.einsum("nd,rwd->rnw", x, w1) + b1[:, None, :])
    out = torch.einsum("rnw,row->rno", hidden, w2)[..., 0] + b2
    return 0.5 * (out - y).pow(2).mean(dim=1)


def _train(seed: int, lrs: Sequence[float], batch_size: int, steps: int,
           data: tuple[torch.Tensor, torch.Tensor]) -> list[dict[str, float]]:
    """One run per learning rate, all from the seed's initial point and on the same batch sequence.

    The runs are trained together: their weights are stacked and optimlab's ``sgd`` with lr=1
    steps on Σ_r η_r·L_r, whose gradient in run r's slice is exactly η_r·∇L_r (plain SGD at η_r).
    A run whose loss leaves the finite range is frozen and reported as diverged.
    """
    import optimlab

    x, y = data
    init = [p.detach() for p in _model(seed).parameters()]
    params = [nn.Parameter(p.expand(len(lrs), *p.shape).clone()) for p in init]
    weights = torch.tensor(list(lrs), dtype=torch.float64)
    opt = optimlab.create(params, "sgd", lr=1.0, nonfinite="ignore")
    gen = torch.Generator().manual_seed(10_000 + seed)
    alive = torch.ones(len(lrs), dtype=torch.bool)
    for _ in range(steps):
        idx = torch.randint(0, N, (batch_size,), generator=gen) if batch_size < N else slice(None)
        opt.zero_grad()
        losses = _stacked_losses(params, x[idx], y[idx])
        blown = alive & ~(losses.detach() < 1e6)
        if blown.any():
            alive &= ~blown
            with torch.no_grad():
                for p in params:
                    p[blown] = 0.0  # frozen at a finite point; its weight below is 0
        (torch.where(alive, weights, 0.0) * torch.nan_to_num(losses, 0.0, 0.0, 0.0)).sum().backward()
        opt.step()
    out = []
    for r in range(len(lrs)):
        model = _model(seed)
        with torch.no_grad():
            for p, q in zip(model.parameters(), params):
                p.copy_(q[r])
            loss = float(_loss(model, data))
        if not alive[r] or not math.isfinite(loss):
            out.append({"loss": math.inf, "trace": math.nan, "lambda_max": math.nan})
            continue
        trace, lam = _curvature(model, data)
        out.append({"loss": loss, "trace": trace, "lambda_max": lam})
    return out


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = FAST if fast else FULL
    per_seed: dict[int, dict[str, float]] = {}
    passed: dict[int, bool] = {}
    curves: dict[int, dict[str, list]] = {}
    regime_missed = False
    for seed in seeds:
        data = _problem(seed)
        init = _model(seed)
        with torch.no_grad():
            loss0 = float(_loss(init, data))
        trace0, _ = _curvature(init, data)
        values: dict[str, float] = {"init_trace": trace0}
        lrs = [c * 2.0 / trace0 for c in cfg["fractions"]]
        rows = list(zip(cfg["fractions"], lrs, _train(seed, lrs, 1, cfg["steps"], data),
                        _train(seed, lrs, N, cfg["gd_steps"], data)))
        for c, lr, sgd, gd in rows:
            values[f"sgd_trace*lr/2@{c}"] = sgd["trace"] * lr / 2
            values[f"gd_trace*lr/2@{c}"] = gd["trace"] * lr / 2
            values[f"gd_lmax*lr/2@{c}"] = gd["lambda_max"] * lr / 2
        converged = [(lr, s["trace"]) for _, lr, s, _ in rows if s["loss"] <= CONVERGED * loss0]
        values["sgd_converged_runs"] = float(len(converged))
        values["max_sgd_trace*lr/2"] = max((t * lr / 2 for lr, t in converged), default=math.nan)
        if len(converged) < 2:
            regime_missed = True
            passed[seed] = False
        else:
            within = all(t * lr / 2 <= BOUND_ALLOWANCE for lr, t in converged)
            flatter = converged[-1][1] < converged[0][1]
            passed[seed] = within and flatter
        per_seed[seed] = values
        curves[seed] = {"lr": [r[1] for r in rows], "sgd_trace": [r[2]["trace"] for r in rows],
                        "gd_trace": [r[3]["trace"] for r in rows], "gd_lmax": [r[3]["lambda_max"] for r in rows],
                        "sgd_loss": [r[2]["loss"] for r in rows]}

    fig, (ax,) = new_figure(1)
    for i, seed in enumerate(seeds):
        cv = curves[seed]
        lrs = cv["lr"]
        ax.loglog(lrs, cv["sgd_trace"], "o-", color=f"C{i}", label=f"SGD B=1 tr(H), seed {seed}")
        ax.loglog(lrs, cv["gd_trace"], "s:", color=f"C{i}", alpha=0.6, label=f"GD tr(H), seed {seed}")
        ax.loglog(lrs, cv["gd_lmax"], "^:", color=f"C{i}", alpha=0.35, label=f"GD λ_max, seed {seed}")
    grid = sorted({lr for cv in curves.values() for lr in cv["lr"]})
    ax.loglog(grid, [2.0 / lr for lr in grid], "k--", lw=1, label="2/η")
    ax.set(xlabel="learning rate η", ylabel="curvature at the end of training",
           title="SGD's minima obey tr(H) ≤ 2/η; GD's only λ_max ≤ 2/η")
    ax.legend(fontsize=7)
    fig.tight_layout()

    worst = max((v["max_sgd_trace*lr/2"] for v in per_seed.values() if math.isfinite(v["max_sgd_trace*lr/2"])),
                default=math.nan)
    gd_worst = max(v for vals in per_seed.values() for k, v in vals.items()
                   if k.startswith("gd_trace") and math.isfinite(v))
    explanation = (f"largest tr(H)·η/2 over converged SGD (batch 1) runs: {worst:.3f} (bound 1, allowance "
                   f"{BOUND_ALLOWANCE}); full-batch GD from the same start reaches tr(H)·η/2 = {gd_worst:.3f} "
                   f"with λ_max·η/2 < 1; {cfg['steps']} SGD / {cfg['gd_steps']} GD steps, η = c·2/tr(H₀) for c in {list(cfg['fractions'])}")
    return Outcome(per_seed, passed, explanation, fig, {"config": dict(cfg), "curves": {str(s): c for s, c in
                                                                                        curves.items()}},
                   verdict="inconclusive" if regime_missed else None)


SGD_TRACE = register(Claim(
    id="sgd-trace-bound",
    paper="The Implicit Regularization of Dynamical Stability in Stochastic Gradient Descent (Wu, Su, ICML 2023)",
    arxiv="2305.17490",
    statement="If a global minimum is linearly stable for SGD, then the trace of its Hessian is ≤ 2/η "
              "(GD only bounds λ_max), so a larger η gives a smaller tr(H).",
    optimizers=("sgd",),
    protocol="two-layer tanh MLP (321 parameters, float64) interpolating 32 noisy teacher labels under MSE; "
             "η = c·2/tr(H₀); SGD batch 1 and full-batch GD from the same start; exact Hessian at the end. "
             "fast: c ∈ {0.3, 0.55, 0.8}, 3500 SGD / 1500 GD steps; full: c from 0.2 to 1.0, 20000 steps.",
    rule="every converged SGD run has tr(H)·η/2 ≤ 1.1, at least two converged, and tr(H) falls from the smallest "
         "to the largest converged η",
    margin="tr(H) ≤ 1.1 · 2/η for every converged SGD run of every seed",
    experiment=_experiment,
))
