"""Consensus-based optimization finds the global minimizer of Rastrigin where gradient methods stop early.

Riedl, Klock, Geldhauser, Fornasier ("Gradient is All You Need?", arXiv:2306.09778) show CBO converges
globally on broad classes of nonsmooth nonconvex functions. The experiment: Rastrigin in d = 10 (the lab
task), N = 200 particles uniform on the domain [−5.12, 5.12]^10 (``optimlab.population.CBO``: α = 1e3,
λ = 1, σ = 1 anisotropic, Δt = 0.01, values fixed before the first run), 2000 steps; success when the
consensus point has ‖v_α‖_∞ < 0.25. Gradient descent (``sgd``) and ``adam`` start from the same
population's best initial particle and run 2000 steps at each learning rate of a small grid; their best
success rate over the grid is compared.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .base import Claim, Outcome, new_figure, register

FULL = {"dim": 10, "particles": 200, "steps": 2000}
FAST = {"dim": 10, "particles": 200, "steps": 500}
CBO_HP = {"alpha": 1e3, "lam": 1.0, "sigma": 1.0, "dt": 0.01}
GRIDS = {"sgd": (1e-4, 1e-3, 4e-3), "adam": (1e-2, 1e-1, 0.3)}
TOL = 0.25


def _gradient_run(inst, x0: torch.Tensor, name: str, lr: float, steps: int) -> float:
    import optimlab

    with torch.no_grad():
        inst.model.x.copy_(x0)
    opt = optimlab.create(inst.model, name, lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        inst.loss(inst.model, ()).backward()
        opt.step()
    return float(inst.model.x.detach().abs().max())


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    from optimlab.lab.tasks import get_task
    from optimlab.population import CBO, Population

    cfg = FAST if fast else FULL
    task = get_task("rastrigin", dim=cfg["dim"])
    per_seed, passed, traces = {}, {}, {}
    wins = {name: {lr: [] for lr in grid} for name, grid in GRIDS.items()}
    for seed in seeds:
        inst = task.build(seed)
        gen = torch.Generator().manual_seed(10_000 + seed)
        pop = Population(inst.model, inst.loss, cfg["particles"], spread=5.12, generator=gen)
        pop.x = pop.x - torch.cat([p.detach().reshape(-1) for p in pop.params])  # uniform on the domain
        f0 = pop.values(())
        x_best = pop.x[int(f0.argmin())].clone()
        cbo = CBO(pop, generator=gen, **CBO_HP)
        trace = []
        for _ in range(cfg["steps"]):
            v = cbo.step(())
            trace.append(float(v.abs().max()))
        v = cbo.write_back(())
        err = float(v.abs().max())
        traces[seed] = trace
        row = {"cbo_linf": err, "cbo_f": float(inst.loss(inst.model, ()).detach()),
               "start_linf": float(x_best.abs().max())}
        for name, grid in GRIDS.items():
            for lr in grid:
                e = _gradient_run(inst, x_best, name, lr, cfg["steps"])
                wins[name][lr].append(e < TOL)
                row[f"{name}_lr{lr:g}_linf"] = e
        per_seed[seed] = row
        passed[seed] = err < TOL
    cbo_rate = float(np.mean(list(passed.values())))
    best = {name: max(float(np.mean(w)) for w in by_lr.values()) for name, by_lr in wins.items()}
    holds = cbo_rate >= 0.9 and all(r < 0.2 for r in best.values())
    edges = []
    for name, by_lr in wins.items():
        rates = [float(np.mean(by_lr[lr])) for lr in GRIDS[name]]
        if max(rates) > 0 and int(np.argmax(rates)) in (0, len(rates) - 1):
            edges.append(f"{name} lr={GRIDS[name][int(np.argmax(rates))]:g} at an edge of {list(GRIDS[name])}")
    fig, (ax,) = new_figure(1)
    for i, (seed, tr) in enumerate(traces.items()):
        ax.semilogy(tr, color=f"C{i % 10}", lw=1, alpha=0.8)
    ax.axhline(TOL, color="k", ls="--", lw=1, label=f"success: ‖v_α‖∞ < {TOL}")
    ax.set(xlabel="step", ylabel="‖v_α‖∞ (distance of the consensus to the minimizer)",
           title=f"CBO on Rastrigin d={cfg['dim']}, N={cfg['particles']}: {cbo_rate:.0%} of {len(seeds)} seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    explanation = (f"CBO success {cbo_rate:.0%} of {len(seeds)} seeds (rule ≥ 90%); from the same starts, best "
                   f"over lr grids: sgd {best['sgd']:.0%}, adam {best['adam']:.0%} (rule < 20%)")
    return Outcome(per_seed, passed, explanation, fig, {"config": dict(cfg), "cbo": CBO_HP, "grids": GRIDS,
                                                        "rates": {"cbo": cbo_rate, **best}},
                   verdict="holds" if holds else "does not hold", grid_edges=edges)


CBO_RASTRIGIN = register(Claim(
    id="cbo-rastrigin",
    paper="Gradient is All You Need? (Riedl, Klock, Geldhauser, Fornasier)",
    arxiv="2306.09778",
    statement="Consensus-based optimization converges to global minimizers of broad classes of nonsmooth "
              "nonconvex functions, where gradient methods stop in local minima.",
    optimizers=("sgd", "adam"),
    protocol="Rastrigin d=10, N=200 particles uniform on [−5.12, 5.12]^10, anisotropic CBO (α=1e3, λ=1, σ=1, "
             "Δt=0.01), 2000 steps; sgd (lr 1e-4, 1e-3, 4e-3) and adam (lr 1e-2, 0.1, 0.3) from the best initial "
             "particle, same steps, best rate over the grid. full: 2000 steps, 20 seeds; fast: 500 steps, 2 seeds.",
    rule="‖v_α‖∞ < 0.25 in ≥ 90% of seeds for CBO, and < 20% of seeds for both sgd and adam",
    margin="success threshold 0.25 in the sup norm; rates 90% / 20% over seeds",
    experiment=_experiment,
    full_seeds=tuple(range(20)),
))
