"""Shampoo, SOAP, PSGD Kron and ASGO against tuned AdamW and tuned Muon — proxies on digits and mnist1d
(issue 12, "proxy comparisons"; coverage section 3.3, last row).

The four papers claim that their preconditioner trains faster / better than the first-order baselines
(Shampoo: than SGD, AdaGrad, Adam; SOAP: than AdamW and Shampoo; PSGD and ASGO: than their baselines) —
with no CPU-checkable numbers. The proxy asks whether each beats *tuned* AdamW and *tuned* Muon on two small
lab tasks. ``psgd-vs-tuned-adamw`` / ``asgo-vs-tuned-adamw`` (preconditioners.py) test PSGD and ASGO against
AdamW alone on mnist1d with one absolute lr grid; these claims add Muon as a reference, a second task, Shampoo
and SOAP, and per-optimizer grids with a wider span.

Protocol (fixed before the first run):

- Tasks ``digits_mlp`` and ``mnist1d`` (the lab's MLPs, their default options). Optimizers ``shampoo``,
  ``soap``, ``psgd_kron``, ``asgo``, ``adamw``, ``muon`` at their optimlab defaults except the main roles'
  learning rate (AdamW: the recipe's defaults with that lr, not the task's AdamW settings).
- Same trial budget for every optimizer: lr grid = its default lr × {1/8, 1/4, 1/2, 1, 2, 4, 8} (7 values;
  fast: × {1/2, 1, 2}); every grid value on every seed of the claim, 600 steps (fast: digits_mlp only, 40
  steps); the lr is chosen per optimizer and task by the seed-mean final eval loss
  (``protocols.tuned_comparison``: a diverged run scores +inf). Seeds 0, 1, 2 (fast 0, 1); the same seeds
  (initialisation, batch order) for all optimizers, so comparisons are paired by seed.
- Verdict per seed (one claim per method): on every task, the method's final eval loss at its tuned lr is
  strictly below tuned AdamW's and strictly below tuned Muon's. No tolerance. A tuned lr at an edge of its grid
  (the method's, AdamW's or Muon's, on any task) makes the verdict inconclusive.
- Reported with it: the paired difference (method − reference) over seeds with its 95% t interval
  (``lab.stats.paired_test``), per task and reference.

``char_lm`` is not in this protocol: one AdamW run of 300 steps on the default char_lm took 30.5 s on one
thread of this 2-core machine (idle), so the 6 optimizers × 7 lrs × 3 seeds × 500 steps grid is ≈ 2 hours
before load — beyond this machine's budget. Its part is a separate protocol with four claims of its own
(``<id>-charlm``, :mod:`.precond_vs_tuned_charlm`): the same optimizers, grid, seeds and verdict rule on a
smaller char_lm (d=64, context=32, a CPU proxy) for 400 steps, ≈ 18 min of one core. The four claims share
one sweep per process (run them together to pay for it once). A proxy at this scale says nothing about the
papers' large-model results.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..stats import fmt_interval, paired_test
from .base import Claim, Outcome, new_figure, register
from .protocols import Tuned, grid_edges, plot_tuning, tuned_comparison
from .proxies import default_lr

METRIC = "eval_loss"
#: The four methods: (claim id stem, optimizer, label, paper, arXiv id, what the paper claims); the char_lm
#: part (``precond_vs_tuned_charlm``) registers the same four on its own protocol.
PAPERS = (
    ("shampoo", "shampoo", "Shampoo", "Shampoo: Preconditioned Stochastic Tensor Optimization (Gupta, Koren, Singer)",
     "1802.09568", "Shampoo converges considerably faster than commonly used first-order optimizers (no "
     "CPU-checkable numbers)"),
    ("soap", "soap", "SOAP", "SOAP: Improving and Stabilizing Shampoo using Adam (Vyas et al.)", "2409.11321",
     "SOAP outperforms AdamW (and Shampoo) in language-model pretraining (numbers only at 360M/660M)"),
    ("psgd-kron", "psgd_kron", "PSGD Kron",
     "Curvature-Informed SGD via General Purpose Lie-Group Preconditioners (Li)", "2402.04553",
     "PSGD (Kron) outperforms first-order baselines (no numbers in the abstract)"),
    ("asgo", "asgo", "ASGO", "ASGO: Adaptive Structured Gradient Optimization (An et al.)", "2503.20762",
     "ASGO outperforms its baselines (no numbers in the abstract)"),
)
METHODS = tuple(m[1] for m in PAPERS)  # ("shampoo", "soap", "psgd_kron", "asgo")
REFS = ("adamw", "muon")
# a protocol: tasks, lr factors (× each optimizer's default lr), steps, and optionally task options per task
FAST = {"tasks": ("digits_mlp",), "factors": (0.5, 1.0, 2.0), "steps": 40}
FULL = {"tasks": ("digits_mlp", "mnist1d"), "factors": (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0), "steps": 600}
_CACHE: dict[tuple, dict[str, dict[str, Tuned]]] = {}


def grid(name: str, fast: bool, protocol: dict | None = None) -> tuple[float, ...]:
    """``name``'s lr grid: its default lr times the protocol's factors (default: this module's FAST / FULL)."""
    cfg = protocol if protocol is not None else (FAST if fast else FULL)
    return tuple(default_lr(name) * f for f in cfg["factors"])


def sweep(cfg: dict, seeds: Sequence[int]) -> dict[str, dict[str, Tuned]]:
    """task -> optimizer -> :class:`Tuned`, every optimizer on its own grid (cached per process and protocol)."""
    options = cfg.get("options", {})
    key = (repr(sorted((k, v) for k, v in cfg.items() if k != "options")), repr(sorted(options.items())),
           tuple(seeds))
    if key not in _CACHE:
        out: dict[str, dict[str, Tuned]] = {}
        for task in cfg["tasks"]:
            out[task] = {}
            for name in REFS + METHODS:
                out[task].update(tuned_comparison(task, {name: {"optimizer": name}}, grid(name, False, cfg), seeds,
                                                  cfg["steps"], metric=METRIC, task_options=options.get(task)))
        _CACHE[key] = out
    return _CACHE[key]


def experiment(method: str, cfg: dict, seeds: Sequence[int]) -> Outcome:
    """The verdict of ``method`` against tuned AdamW and tuned Muon under protocol ``cfg``."""
    tuned = sweep(cfg, seeds)
    per_seed: dict[int, dict[str, float]] = {s: {} for s in seeds}
    passed = {s: True for s in seeds}
    edges: list[str] = []
    tests: dict[str, dict[str, Any]] = {}
    for task, by_opt in tuned.items():
        ours = by_opt[method]
        edges += [f"{task}: {e}" for e in grid_edges({k: by_opt[k] for k in (method, *REFS)})]
        for s in seeds:
            per_seed[s].update({f"{k}@{task}": float(t.per_seed[s]) for k, t in by_opt.items()})
            for ref in REFS:
                a, b = ours.per_seed[s], by_opt[ref].per_seed[s]
                passed[s] &= math.isfinite(a) and a < b
        for ref in REFS:
            pairs = [(ours.per_seed[s], by_opt[ref].per_seed[s]) for s in seeds]
            finite = all(math.isfinite(x) for p in pairs for x in p)
            t = paired_test([p[0] for p in pairs], [p[1] for p in pairs]) if finite else None
            tests[f"{task}: {method} - {ref}"] = (
                {"mean": t.diff.mean, "low": t.diff.low, "high": t.diff.high, "p": t.p_value, "text": str(t)}
                if t else {"text": "non-finite (a diverged run)"})
    fig, axes = new_figure(len(tuned) + 1)
    for ax, (task, by_opt) in zip(axes, tuned.items()):
        plot_tuning(ax, by_opt, METRIC)
        ax.set_title(f"{task}: lr sweeps ({cfg['steps']} steps)")
    ax = axes[-1]
    labels = [k for k, v in tests.items() if "mean" in v]
    if labels:
        means = [tests[k]["mean"] for k in labels]
        err = [[0.0 if math.isnan(tests[k]["low"]) else tests[k]["mean"] - tests[k]["low"] for k in labels],
               [0.0 if math.isnan(tests[k]["high"]) else tests[k]["high"] - tests[k]["mean"] for k in labels]]
        ax.errorbar(means, range(len(labels)), xerr=err, fmt="o", capsize=4)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set(xlabel="paired Δ final eval loss (95% CI); < 0: method better", title=f"{method} vs tuned references")
    fig.tight_layout()
    explanation = "; ".join(
        f"{task}, {cfg['steps']} steps, seed-mean eval loss at tuned lr: "
        + ", ".join(f"{k} {t.mean():.4f} (lr {t.lr:g})" for k, t in by_opt.items()) for task, by_opt in tuned.items())
    explanation += "; paired Δ: " + "; ".join(f"{k} {v['text']}" for k, v in tests.items())
    explanation += f" (need {method} below AdamW and Muon on every task and seed)"
    details = {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
               "grids": {n: list(grid(n, False, cfg)) for n in REFS + METHODS},
               "chosen_lr": {task: {k: t.lr for k, t in by_opt.items()} for task, by_opt in tuned.items()},
               "curves": {task: {k: {str(lr): v for lr, v in t.curve.items()} for k, t in by_opt.items()}
                          for task, by_opt in tuned.items()},
               "paired": tests}
    return Outcome(per_seed, passed, explanation, fig, details, grid_edges=edges)


_PROTOCOL = ("proxy: digits_mlp and mnist1d MLPs, 600 steps (fast: digits_mlp, 40 steps); Shampoo, SOAP, PSGD "
             "Kron, ASGO, AdamW, Muon at their defaults except the main roles' lr, tuned per optimizer and task on "
             "default × {1/8, 1/4, 1/2, 1, 2, 4, 8} (fast × {1/2, 1, 2}) by the seed-mean final eval loss; one "
             "shared sweep; paired Δ with 95% t intervals reported")


def make_claim(cid: str, method: str, label: str, paper: str, arxiv: str, statement: str, *, fast: dict,
               full: dict, protocol: str) -> Claim:
    """Register ``method``'s claim against tuned AdamW and Muon with protocols ``fast`` / ``full``."""
    return register(Claim(
        id=cid, paper=paper, arxiv=arxiv, statement=statement, optimizers=(method, *REFS), protocol=protocol,
        rule=f"per seed: on every task, {label}'s final eval loss at its tuned lr < tuned AdamW's and < tuned "
             "Muon's; a tuned lr (the method's, AdamW's or Muon's) at a grid edge makes it inconclusive",
        margin="strictly lower on every task and seed (paired by seed), no tolerance",
        experiment=lambda is_fast, seeds: experiment(method, fast if is_fast else full, seeds)))


def _claim(stem: str, method: str, label: str, paper: str, arxiv: str, what: str) -> Claim:
    return make_claim(f"{stem}-vs-tuned-adamw-muon", method, label, paper, arxiv,
                      f"{what}: proxy, below tuned AdamW and tuned Muon on digits and mnist1d.",
                      fast=FAST, full=FULL, protocol=_PROTOCOL)


SHAMPOO, SOAP, PSGD, ASGO = (_claim(*m) for m in PAPERS)
