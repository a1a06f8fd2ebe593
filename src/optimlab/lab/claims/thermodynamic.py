"""Thermodynamic NGD equals NGD in its noiseless, equilibrated regime (claim ``tngd-equals-ngd``).

Donatella, Duffield, Aifer, Melanson, Crooks, Coles, "Thermodynamic Natural Gradient Descent" (arXiv:2405.13817),
abstract: the hybrid digital-analog algorithm "is equivalent to NGD in a certain parameter regime". Our reading
of the regime: the Ornstein–Uhlenbeck state x, dx = −((G + λI)x − g)dt + √(2κ)dW, relaxes to (G + λI)⁻¹g (the
NGD direction) when the equilibration time τ is long against 1/λ_min(G + λI) and the noise κ is zero.

Protocol (fixed before the first run), float64: the 8×8 digits (pixels/16), a 64-h-10 tanh MLP initialised with
the seed (full: h = 8, d = 610; fast: h = 4, d = 310), one batch of b samples drawn with the seed (full 64, fast
32), cross-entropy; damping λ = 0.1. NGD step: the registered ``natural_gradient`` (lr 1) in its CG mode
(max_dense 0, 2000 iterations, tolerance 1e-12). TNGD step: the registered ``tngd`` (lr 1, temperature 0,
a fresh optimizer so x₀ = 0, Euler step h = its stability cap 1/(1.1·λ̂_max + λ) (dt = 10 never binds; the
first fast run used dt = 0.1, same verdict, 5× the cost), no cap on the number of steps) for τ ∈ {0.1, 1, 10, 100}/λ_min,
λ_min the smallest eigenvalue of G + λI (dense G, fp64). Measured: r(τ) = ‖Δ_TNGD − Δ_NGD‖/‖Δ_NGD‖; as context
(not in the verdict) r at the largest τ with the default temperature κ = 1e-6.
Verdict per seed: r(100/λ_min) ≤ 1e-3 and r non-increasing along the τ grid.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .base import Claim, Outcome, new_figure, register

TAUS = (0.1, 1.0, 10.0, 100.0)  # in units of 1/λ_min
DAMPING = 0.1


def _setup(seed: int, fast: bool):
    from ..tasks.classification import _digits as load

    x_np, y_np = load()
    x, y = torch.tensor(x_np / 16.0, dtype=torch.float64), torch.tensor(y_np, dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)[:32 if fast else 64]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 4 if fast else 8), nn.Tanh(), nn.Linear(4 if fast else 8, 10)).double()
    return model, x[idx], y[idx]


def _step(model: nn.Module, x, y, name: str, **hp) -> torch.Tensor:
    import copy

    import optimlab
    from ...core.model_batch import model_closure

    m = copy.deepcopy(model)
    opt = optimlab.create(m, name, **hp)
    before = torch.cat([p.detach().reshape(-1) for p in m.parameters()])
    opt.step(model_closure(opt, m, x, y))
    return torch.cat([p.detach().reshape(-1) for p in m.parameters()]) - before


def _lambda_min(model: nn.Module, x, y) -> float:
    from ...reference.ggn import ggn
    from torch.func import functional_call

    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(t):
        pieces = torch.split(t, [math.prod(s) for s in shapes])
        return functional_call(model, {n: q.view(s) for n, q, s in zip(names, pieces, shapes)}, (x,))

    G, _ = ggn(theta, f, y, "cross_entropy")
    w = torch.linalg.eigvalsh(G + DAMPING * torch.eye(len(theta), dtype=torch.float64))
    return float(w[0]), float(w[-1])


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    per_seed, passed, curves = {}, {}, {}
    for s in seeds:
        model, x, y = _setup(s, fast)
        lam_min, lam_max = _lambda_min(model, x, y)
        ngd = _step(model, x, y, "natural_gradient", lr=1.0, damping=DAMPING, max_dense=0, cg_iters=2000,
                    cg_tol=1e-12)
        rs = []
        for t in TAUS:
            d = _step(model, x, y, "tngd", lr=1.0, damping=DAMPING, tau=t / lam_min, temperature=0.0, dt=10.0,
                      max_sde_steps=10 ** 7)
            rs.append(float((d - ngd).norm() / ngd.norm()))
        noisy = _step(model, x, y, "tngd", lr=1.0, damping=DAMPING, tau=TAUS[-1] / lam_min, dt=10.0,
                      max_sde_steps=10 ** 7)
        curves[s] = rs
        per_seed[s] = {**{f"r_tau{t:g}": r for t, r in zip(TAUS, rs)},
                       "r_tau100_kappa1e-6": float((noisy - ngd).norm() / ngd.norm()),
                       "lambda_min": lam_min, "lambda_max": lam_max, "ngd_norm": float(ngd.norm())}
        passed[s] = rs[-1] <= 1e-3 and all(b <= a for a, b in zip(rs, rs[1:]))
    fig, axes = new_figure(1)
    for s in seeds:
        axes[0].loglog(TAUS, [max(r, 1e-17) for r in curves[s]], "o-", label=f"seed {s}")
    axes[0].axhline(1e-3, color="gray", ls="--", lw=0.8)
    axes[0].set(xlabel="τ · λ_min(G + λI)", ylabel="‖Δ_TNGD − Δ_NGD‖ / ‖Δ_NGD‖", title="TNGD → NGD (κ = 0)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    text = "; ".join(f"seed {s}: r = " + ", ".join(f"{r:.2e}" for r in curves[s])
                     + f" at τλ_min = {', '.join(f'{t:g}' for t in TAUS)}; with κ = 1e-6: "
                     f"{per_seed[s]['r_tau100_kappa1e-6']:.2e}" for s in seeds)
    return Outcome(per_seed, passed, text + " (rule: r ≤ 1e-3 at τλ_min = 100, non-increasing)", fig,
                   {"curves": {str(s): curves[s] for s in seeds}, "taus_times_lambda_min": list(TAUS)})


TNGD = register(Claim(
    id="tngd-equals-ngd",
    paper="Thermodynamic Natural Gradient Descent (Donatella, Duffield, Aifer, Melanson, Crooks, Coles)",
    arxiv="2405.13817",
    statement="In a certain parameter regime TNGD is equivalent to NGD (read: noiseless, τ ≫ 1/λ_min(G + λI)).",
    optimizers=("natural_gradient", "tngd"),
    protocol="digits MLP 64-8-10 tanh (fast 64-4-10), fp64, one CE batch of 64 (fast 32), λ = 0.1: the tngd "
             "step (κ = 0, x₀ = 0) with τ ∈ {0.1, 1, 10, 100}/λ_min vs the CG natural_gradient step",
    rule="relative difference of the step ≤ 1e-3 at τ = 100/λ_min, non-increasing in τ",
    margin="rel. difference ≤ 1e-3 at the largest τ",
    experiment=_experiment,
))
