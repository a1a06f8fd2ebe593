"""N-HARPG's Hessian-aided transport makes the momentum estimate track the true policy gradient.

Fatkhullin, Barakat, Kireeva, He, "Stochastic Policy Gradient Methods: Improved Sample Complexity for
Fisher-non-degenerate Policies" (ICML 2023, arXiv:2302.01734): (N)-HARPG's estimate
``d_t = (1−η)(d_{t−1} + ∇²J(θ̂_t)(θ_t − θ_{t−1})) + η g_t`` is a recursive, STORM-type estimator (without
importance sampling); its error ``E‖d_t − ∇J(θ_t)‖²`` decays faster than plain normalized momentum's (whose
averaging lags behind the moving policy), which is what improves the sample complexity from ε^{-2.5} to ε^{-2}.

Protocol (fixed before the first run; coverage row C8):

- Task ``policy_mdp`` at its defaults (6 states, 3 actions, horizon 16, γ 0.9, 16 trajectories a step, DiCE
  surrogate), where the exact gradient ∇J(θ_t) is known (autograd through the exact return).
- N-HARPG (``n_harpg``) against normalized momentum ``trust_region`` with ``norm="frobenius"``
  (m ← βm + (1−β)g, θ ← θ − lr·m/‖m‖_F: N-HARPG without the HVP term; one tensor, so per-tensor = global norm),
  both at lr 0.05 and β 0.95 (the matched ablation of the correction; no tuning).
- Steps: full 400, fast 100. Seeds: full (0, 1, 2), fast (0, 1) (the task's seed: MDP, initial policy, rollouts).
- Measured: the relative estimator error ``E = Σ_{t>T/2} ‖d_t − ∇L(θ_t)‖² / Σ_{t>T/2} ‖∇L(θ_t)‖²`` (d_t: the
  estimate each method steps along at θ_t), and, reported only, the exact final regret J* − J(θ_T).
- Verdict per seed: E(N-HARPG) ≤ 0.5 · E(normalized momentum).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .base import Claim, Outcome, new_figure, register

FACTOR = 0.5
LR, BETA = 0.05, 0.95
METHODS = {"n_harpg": ("n_harpg", {"lr": LR, "momentum": BETA}, "harpg.d"),
           "normalized_momentum": ("trust_region", {"lr": LR, "momentum": BETA, "norm": "frobenius",
                                                    "weight_decay": 0.0}, "momentum.momentum_buffer")}


def _run(method: str, seed: int, steps: int) -> dict[str, Any]:
    import optimlab

    from ..tasks import get_task

    name, hp, key = METHODS[method]
    inst = get_task("policy_mdp").build(seed)
    model = inst.model
    params = list(model.parameters())
    opt = optimlab.create(params, name, **hp)
    needs_closure = bool(optimlab.describe(name).needs)
    err, ref, regret = [], [], []
    for t in range(steps):
        batch = inst.batch(t)
        exact = inst.exact_gradient(model)

        def closure(batch: Any = batch) -> torch.Tensor:
            opt.zero_grad()
            loss = inst.loss(model, batch)
            loss.backward(create_graph=needs_closure)
            return loss

        if needs_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
        d = opt.state[params[0]][key]
        err.append(float((d - exact).square().sum()))
        ref.append(float(exact.square().sum()))
        if (t + 1) % 10 == 0 or t + 1 == steps:
            regret.append(inst.evaluate(model)["eval_loss"])
    half = steps // 2
    return {"error": float(np.sum(err[half:]) / np.sum(ref[half:])), "regret": regret[-1],
            "err_curve": err, "ref_curve": ref, "regret_curve": regret}


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    steps = 100 if fast else 400
    runs = {m: {s: _run(m, s, steps) for s in seeds} for m in METHODS}
    per_seed, passed = {}, {}
    for s in seeds:
        h, n = runs["n_harpg"][s], runs["normalized_momentum"][s]
        per_seed[s] = {"error_n_harpg": h["error"], "error_normalized_momentum": n["error"],
                       "error_ratio": h["error"] / n["error"], "regret_n_harpg": h["regret"],
                       "regret_normalized_momentum": n["regret"]}
        passed[s] = h["error"] <= FACTOR * n["error"]
    fig, axes = new_figure(2)
    s0 = seeds[0]
    for i, (m, label) in enumerate((("n_harpg", "N-HARPG"), ("normalized_momentum", "normalized momentum"))):
        r = runs[m][s0]
        rel = np.asarray(r["err_curve"]) / np.maximum(np.asarray(r["ref_curve"]), 1e-30)
        axes[0].semilogy(rel, color=f"C{i}", lw=0.8, label=label)
        axes[1].semilogy([10 * (j + 1) for j in range(len(r["regret_curve"]))], r["regret_curve"], color=f"C{i}",
                         lw=0.8, label=label)
    axes[0].axvline(steps // 2, color="gray", ls=":", lw=0.8)
    axes[0].set(xlabel="step", ylabel="‖d_t − ∇L(θ_t)‖² / ‖∇L(θ_t)‖²", title=f"estimator error (seed {s0})")
    axes[1].set(xlabel="step", ylabel="J* − J(θ) (exact)", title="regret")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    text = "; ".join(f"seed {s}: E {per_seed[s]['error_n_harpg']:.3g} vs {per_seed[s]['error_normalized_momentum']:.3g}"
                     f" (ratio {per_seed[s]['error_ratio']:.3g}), final regret {per_seed[s]['regret_n_harpg']:.3g} vs "
                     f"{per_seed[s]['regret_normalized_momentum']:.3g}" for s in seeds)
    return Outcome(per_seed, passed, f"{steps} steps, lr {LR}, β {BETA}: {text} (rule: ratio ≤ {FACTOR})", fig,
                   {"steps": steps, "lr": LR, "momentum": BETA})


HARPG = register(Claim(
    id="harpg-transport-error",
    paper="Stochastic Policy Gradient Methods: Improved Sample Complexity for Fisher-non-degenerate Policies "
          "(Fatkhullin, Barakat, Kireeva, He, ICML 2023)",
    arxiv="2302.01734",
    statement="The Hessian-aided transport of (N)-HARPG keeps its momentum estimate close to the true policy "
              "gradient: its error is well below that of plain normalized momentum at the same step size and "
              "momentum.",
    optimizers=("n_harpg", "trust_region"),
    protocol="policy_mdp (random 6-state, 3-action MDP, horizon 16, γ 0.9, 16 trajectories a step, exact "
             "gradient known); n_harpg vs normalized momentum (trust_region, norm='frobenius'), both lr 0.05, "
             "β 0.95; relative error Σ‖d_t − ∇L‖²/Σ‖∇L‖² over the second half of 400 steps (fast 100)",
    rule="error(N-HARPG) ≤ 0.5 × error(normalized momentum), every seed",
    margin=f"ratio ≤ {FACTOR}",
    experiment=_experiment,
))
