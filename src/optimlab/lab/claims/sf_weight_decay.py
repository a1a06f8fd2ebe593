"""SF-NorMuon's weight-decay ablation: decay at the fast iterate z vs at the gradient point y
(Apte, Deshpande, Kumar, Chakrabarti & Kim, arXiv:2605.23061; coverage section 3.3, the second half of the
SF-NorMuon row; the horizons half is ``sf-normuon-horizons`` in proxies.py).

The abstract says weight decay at the fast iterate is essential for long horizons. ``sf_normuon`` decays at
z (``z ← (1 − lr·λ)·z − γ_t·u``); the ablation arm is the same recipe with the matrix role's schedule-free
step decaying at y instead (``z ← z − γ_t·(u + λ·y)``, the SF-SGD/SF-AdamW placement; the transform's
``decay_at="y"``), same λ = 0.1. With λ = 0 the two arms are the same optimizer (a test checks it).

Protocol (fixed before the first run):

- Task ``mnist1d`` (the lab's MLP), its instance of each seed giving the model, batches and evaluation;
  horizons T ∈ {300, 2000} steps (fast {20, 40}). Arms: ``wd_at_z`` (``sf_normuon`` at its defaults),
  ``wd_at_y`` (the ablation), ``no_wd`` (``sf_normuon`` with weight_decay 0; context, not in the verdict).
  No schedule (schedule-free). Evaluated at the averaged iterate x (``opt.eval()``), as the runner does.
- Same trial budget per arm and horizon: the matrix role's lr on default (2.5e-3) × {1/8, 1/4, 1/2, 1, 2, 4,
  8} (fast × {1/2, 1, 2}), every value on every seed, chosen per arm and horizon by the seed-mean final eval
  loss; other roles stay Schedule-Free AdamW at its defaults. Seeds 0, 1, 2 (fast 0, 1), paired.
- Verdict per seed: at the longest horizon L(wd_at_z) < L(wd_at_y), and the advantage L(wd_at_y) −
  L(wd_at_z) is larger at the longest horizon than at the shortest ("essential for long horizons"). No
  tolerance. A tuned lr at a grid edge (wd_at_z's or wd_at_y's, at either horizon) makes it inconclusive.

The paper's horizons are 1–8 Chinchilla budgets of 125M/772M models; this is a proxy on a small MLP.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

from ..stats import paired_test
from .base import Claim, Outcome, new_figure, register
from .protocols import Tuned, grid_edges, plot_tuning

DEFAULT_LR = 2.5e-3
FAST = {"horizons": (20, 40), "factors": (0.5, 1.0, 2.0)}
FULL = {"horizons": (300, 2000), "factors": (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)}
VERDICT_ARMS = ("wd_at_z", "wd_at_y")


def wd_at_y_recipe() -> Any:
    """``sf_normuon`` with the matrix role's weight decay applied at y (``ScheduleFree(decay_at="y")``)."""
    from optimlab.core.registry import get_recipe
    from optimlab.core.transform import chain
    from optimlab.transforms import EMAMomentum, NorMuonNormalize, Orthogonalize
    from optimlab.transforms.schedule_free import ScheduleFree

    matrix = chain(EMAMomentum(), Orthogonalize(), NorMuonNormalize(), ScheduleFree("beta1", decay_at="y"))
    return get_recipe("sf_normuon").replace(
        "sf_normuon_wd_at_y", chains={"matrix": matrix},
        summary="SF-NorMuon with the matrix role's weight decay at y (ablation)")


def arms() -> dict[str, tuple[Any, dict[str, Any]]]:
    """label -> (optimizer name or Recipe, fixed hyperparameters)."""
    return {"wd_at_z": ("sf_normuon", {}), "wd_at_y": (wd_at_y_recipe(), {}),
            "no_wd": ("sf_normuon", {"weight_decay": 0.0})}


def train(optimizer: Any, hp: dict[str, Any], lr: float, seed: int, steps: int) -> float:
    """Final eval loss at the averaged iterate after ``steps`` steps on mnist1d (inf when diverged)."""
    import optimlab

    from ..tasks import get_task

    inst = get_task("mnist1d").build(seed)
    model = inst.model
    opt = optimlab.create(model, optimizer, nonfinite="error", **inst.role_hints, **hp, lr=lr)
    for t in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = inst.loss(model, inst.batch(t))
        if not math.isfinite(float(loss.detach())):
            return math.inf
        loss.backward()
        try:
            opt.step()
        except FloatingPointError:
            return math.inf
    opt.eval()
    value = float(inst.evaluate(model)["eval_loss"])
    opt.train()
    return value if math.isfinite(value) else math.inf


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = FAST if fast else FULL
    horizons = cfg["horizons"]
    grid = [DEFAULT_LR * f for f in cfg["factors"]]
    tuned: dict[int, dict[str, Tuned]] = {}
    edges: list[str] = []
    for T in horizons:
        tuned[T] = {}
        for label, (opt, hp) in arms().items():
            curve = {lr: [train(opt, hp, lr, s, T) for s in seeds] for lr in grid}
            means = {lr: (statistics.fmean(v) if all(map(math.isfinite, v)) else math.inf) for lr, v in curve.items()}
            best = min(curve, key=lambda lr: (means[lr], lr))
            tuned[T][label] = Tuned(label, curve, best, dict(zip(seeds, curve[best])), hp)
        edges += [f"T={T}: {e}" for e in grid_edges({k: tuned[T][k] for k in VERDICT_ARMS})]
    short, long = horizons[0], horizons[-1]
    per_seed: dict[int, dict[str, float]] = {}
    passed: dict[int, bool] = {}
    adv = {T: {s: tuned[T]["wd_at_y"].per_seed[s] - tuned[T]["wd_at_z"].per_seed[s] for s in seeds}
           for T in horizons}
    for s in seeds:
        per_seed[s] = {f"{k}@T={T}": float(t.per_seed[s]) for T in horizons for k, t in tuned[T].items()}
        per_seed[s].update({f"advantage@T={T}": float(adv[T][s]) for T in horizons})
        passed[s] = (math.isfinite(tuned[long]["wd_at_z"].per_seed[s]) and adv[long][s] > 0
                     and adv[long][s] > adv[short][s])
    paired = {}
    for T in horizons:
        a = [tuned[T]["wd_at_z"].per_seed[s] for s in seeds]
        b = [tuned[T]["wd_at_y"].per_seed[s] for s in seeds]
        paired[T] = str(paired_test(a, b)) if all(map(math.isfinite, a + b)) else "non-finite"
    fig, axes = new_figure(len(horizons) + 1)
    for ax, T in zip(axes, horizons):
        plot_tuning(ax, tuned[T], "eval_loss")
        ax.set_title(f"mnist1d, T = {T}: lr sweeps")
    ax = axes[-1]
    for i, s in enumerate(seeds):
        ax.plot(list(horizons), [adv[T][s] for T in horizons], "o-", color=f"C{i}", label=f"seed {s}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xscale="log", xlabel="horizon T (steps)", ylabel="L(wd at y) − L(wd at z), tuned lrs",
           title="advantage of decay at the fast iterate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    explanation = "; ".join(
        f"T={T}: " + ", ".join(f"{k} {t.mean():.4f} (lr {t.lr:g})" for k, t in tuned[T].items())
        + f", paired wd_at_z − wd_at_y {paired[T]}" for T in horizons)
    explanation += f" (need wd_at_z below wd_at_y at T={long} and the gap larger than at T={short}, every seed)"
    details = {"config": {"horizons": list(horizons), "grid": grid, "task": "mnist1d"},
               "chosen_lr": {str(T): {k: t.lr for k, t in tuned[T].items()} for T in horizons},
               "curves": {str(T): {k: {str(lr): v for lr, v in t.curve.items()} for k, t in tuned[T].items()}
                          for T in horizons},
               "paired": {str(T): v for T, v in paired.items()}}
    return Outcome(per_seed, passed, explanation, fig, details, grid_edges=edges)


SF_WD = register(Claim(
    id="sf-normuon-wd-at-fast-iterate",
    paper="Anytime Training with Schedule-Free Spectral Optimization (Apte, Deshpande, Kumar, Chakrabarti, Kim)",
    arxiv="2605.23061",
    statement="In SF-NorMuon, weight decay at the fast iterate is essential for long horizons (no CPU-checkable "
              "numbers): ablation, decay at z vs decay at y.",
    optimizers=("sf_normuon",),
    protocol="proxy: mnist1d MLP, horizons {300, 2000} (fast {20, 40}); sf_normuon (decay at z), the same recipe "
             "decaying at y (λ = 0.1 both), and λ = 0 as context; matrix lr tuned per arm and horizon on 2.5e-3 × "
             "{1/8 … 8} (fast × {1/2, 1, 2}) by the seed-mean final eval loss at the averaged iterate",
    rule="per seed: L(z) < L(y) at the longest horizon and L(y) − L(z) larger there than at the shortest; a tuned "
         "lr at a grid edge (z or y arm, either horizon) makes it inconclusive",
    margin="strict, every seed, no tolerance",
    experiment=_experiment,
))
