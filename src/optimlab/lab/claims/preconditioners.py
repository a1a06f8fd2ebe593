"""PSGD and ASGO "outperform their baselines" — small proxies at tuned learning rates (coverage §3.3).

Claims (qualitative in the abstracts, no numbers): PSGD (Li, arXiv:2402.04553) and ASGO (An et al.,
arXiv:2503.20762) train better than their first-order baselines. Proxy protocol, fixed before running:
task ``mnist1d`` (offline generator, MLP), every optimizer at its optimlab defaults except the learning
rate of its main roles, chosen per optimizer from one log grid by the mean over seeds of the final eval
loss (``protocols.tuned_comparison``); same seeds (init, data order) for all. Baseline: AdamW; Muon,
Shampoo and SOAP are trained alongside in the full protocol and reported as context (not in the verdict).
Verdict per seed: the method's eval loss at its chosen lr is below AdamW's at AdamW's chosen lr.
A chosen lr at the edge of the grid makes the verdict inconclusive.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from .base import Claim, Outcome, new_figure, register
from .protocols import Tuned, grid_edges, plot_tuning, tuned_comparison

TASK, METRIC = "mnist1d", "eval_loss"
FAST = {"lrs": (3e-3, 1e-2), "steps": 30, "optimizers": ("adamw", "psgd_kron", "asgo")}
FULL = {"lrs": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2), "steps": 600,
        "optimizers": ("adamw", "muon", "shampoo", "soap", "psgd_kron", "asgo")}
_CACHE: dict[tuple, dict[str, Tuned]] = {}


def _tuned(fast: bool, seeds: Sequence[int]) -> dict[str, Tuned]:
    cfg = FAST if fast else FULL
    key = (fast, tuple(seeds))
    if key not in _CACHE:  # both claims read the same sweep
        _CACHE[key] = tuned_comparison(TASK, {n: {"optimizer": n} for n in cfg["optimizers"]}, cfg["lrs"], seeds,
                                       cfg["steps"], metric=METRIC)
    return _CACHE[key]


def _experiment(method: str, fast: bool, seeds: Sequence[int]) -> Outcome:
    tuned = _tuned(fast, seeds)
    base, ours = tuned["adamw"], tuned[method]
    per_seed: dict[int, dict[str, float]] = {}
    passed: dict[int, bool] = {}
    for s in seeds:
        per_seed[s] = {f"{label}_eval_loss": float(t.per_seed[s]) for label, t in tuned.items()}
        per_seed[s].update({f"{label}_lr": float(t.lr) for label, t in tuned.items()})
        passed[s] = math.isfinite(ours.per_seed[s]) and ours.per_seed[s] < base.per_seed[s]
    edges = [e for e in grid_edges(tuned) if e.split()[0] in (method, "adamw")]
    fig, (ax_lr, ax_seed) = new_figure(2)
    plot_tuning(ax_lr, tuned, METRIC)
    ax_lr.set_title(f"{TASK}: lr sweep ({(FAST if fast else FULL)['steps']} steps)")
    width = 0.8 / len(tuned)
    for i, (label, t) in enumerate(tuned.items()):
        ax_seed.bar([j + i * width for j in range(len(seeds))], [t.per_seed[s] for s in seeds], width,
                    color=f"C{i}", label=f"{label} @ lr {t.lr:g}")
    ax_seed.set_xticks([j + 0.4 - width / 2 for j in range(len(seeds))], [f"seed {s}" for s in seeds])
    ax_seed.set(ylabel=f"final {METRIC} at the chosen lr")
    ax_seed.legend(fontsize=7)
    fig.tight_layout()
    explanation = (f"{TASK}, {(FAST if fast else FULL)['steps']} steps, lr tuned per optimizer: mean eval loss "
                   + ", ".join(f"{label} {t.mean():.4f} (lr {t.lr:g})" for label, t in tuned.items())
                   + f"; {method} below tuned AdamW on {sum(passed.values())}/{len(seeds)} seeds.")
    details: dict[str, Any] = {"config": {k: list(v) if isinstance(v, tuple) else v
                                          for k, v in (FAST if fast else FULL).items()},
                               "curves": {label: {str(lr): v for lr, v in t.curve.items()} for label, t in tuned.items()},
                               "chosen_lr": {label: t.lr for label, t in tuned.items()}}
    return Outcome(per_seed, passed, explanation, fig, details, grid_edges=edges)


_PROTOCOL = ("task mnist1d (MLP), optimlab defaults except the main roles' lr, tuned per optimizer on "
             "{3e-4, 1e-3, 3e-3, 1e-2, 3e-2} by the mean final eval loss over seeds, 600 steps (fast: AdamW, PSGD, "
             "ASGO on {3e-3, 1e-2}, 30 steps); Muon, Shampoo and SOAP trained alongside as context")

PSGD_PROXY = register(Claim(
    id="psgd-vs-tuned-adamw",
    paper="Curvature-Informed SGD via General Purpose Lie-Group Preconditioners (Li)",
    arxiv="2402.04553",
    statement="PSGD (Kron) outperforms its first-order baselines (no numbers in the abstract): proxy, tuned AdamW "
              "on mnist1d.",
    optimizers=("psgd_kron", "adamw"),
    protocol=_PROTOCOL,
    rule="per seed: PSGD Kron's final eval loss at its tuned lr < AdamW's at AdamW's tuned lr; a tuned lr at a grid "
         "edge makes it inconclusive",
    margin="strictly lower eval loss on every seed (paired by seed)",
    experiment=lambda fast, seeds: _experiment("psgd_kron", fast, seeds),
))

ASGO_PROXY = register(Claim(
    id="asgo-vs-tuned-adamw",
    paper="ASGO: Adaptive Structured Gradient Optimization (An et al.)",
    arxiv="2503.20762",
    statement="ASGO outperforms its baselines (no numbers in the abstract): proxy, tuned AdamW on mnist1d.",
    optimizers=("asgo", "adamw"),
    protocol=_PROTOCOL,
    rule="per seed: ASGO's final eval loss at its tuned lr < AdamW's at AdamW's tuned lr; a tuned lr at a grid "
         "edge makes it inconclusive",
    margin="strictly lower eval loss on every seed (paired by seed)",
    experiment=lambda fast, seeds: _experiment("asgo", fast, seeds),
))
