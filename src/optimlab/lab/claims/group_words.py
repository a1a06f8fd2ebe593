"""Grokking a word operation in a non-abelian group, with a low-rank implementation of its 3-tensor.

Shutman, Louidor, Tessler, "Learning words in groups: fusion algebras, tensor ranks and grokking"
(arXiv:2509.06931): a two-layer network learns a word operation in a finite group and groks while doing
so; it implements the word's 3-tensor T[a, b, c] = 1{w(a, b) = c} with few components (low rank).

Protocol (fixed before the first run):

- Task ``group_words``: S_4 (24 elements), word "ab" (multiplication), 50% of the 576 pairs for training,
  the modular-arithmetic MLP (embeddings d = 64 of a and b, one ReLU hidden layer of width 256, head).
- Full-batch AdamW (optimlab ``adamw``) at the grokking claim's settings: lr 3e-3, weight decay 1, betas
  (0.9, 0.98); full 3,000 steps, fast 1,000; accuracies every 10 steps, no early stop.
- Times: t_train = first step with train accuracy ≥ 0.999, t_test = first with test accuracy ≥ 0.99.
- Rank: each hidden neuron k adds one component to the network's 3-tensor; its size is
  s_k = ‖u_k‖·‖w_k‖ with u_k = (E W_a[k], E W_b[k]) its input weights on one-hot a, b (embedding E composed
  with the hidden layer) and w_k its head column. Effective rank r_eff = exp(entropy of s / Σ s)
  (Roy & Vetterli). The dense reference is the same network at init, where every neuron is used.
- Verdict per seed: t_test ≥ 2·t_train and r_eff(end) ≤ 0.5·r_eff(init). Test accuracy never reaching
  0.99 on some seed: inconclusive.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .base import Claim, Outcome, register
from .figures import accuracy_figure, first_step
from .grokking import DELAY, HPARAMS, TEST_DONE, TRAIN_DONE

FULL = {"steps": 3000, "every": 10}
FAST = {"steps": 1000, "every": 10}
TASK = {"group": "S4", "word": "ab", "train_fraction": 0.5, "d": 64, "width": 256}
RANK_FACTOR = 0.5


def effective_rank(model) -> float:
    """exp(entropy) of the normalized neuron sizes ‖u_k‖·‖w_k‖ of a ``PairMLP``."""
    with torch.no_grad():
        e = model.tok_emb.weight.double()
        w = model.hidden.weight.double()
        d = e.shape[1]
        u = torch.cat([e @ w[:, :d].T, e @ w[:, d:].T], dim=0)  # (2|G|, width)
        s = u.norm(dim=0) * model.head.weight.double().norm(dim=0)
        p = s / s.sum()
        p = p[p > 0]
        return float(torch.exp(-(p * p.log()).sum()))


def _run(seed: int, steps: int, every: int) -> dict:
    import optimlab
    from ..tasks import get_task

    inst = get_task("group_words", **TASK).build(seed)
    rank0 = effective_rank(inst.model)
    opt = optimlab.create(inst.model, "adamw", **HPARAMS, **inst.role_hints)
    batch = inst.batch(0)
    seen, train_acc, test_acc = [], [], []
    for step in range(steps + 1):
        if step % every == 0:
            m = inst.evaluate()
            seen.append(step)
            train_acc.append(m["train_accuracy"])
            test_acc.append(m["test_accuracy"])
        if step == steps:
            break
        opt.zero_grad()
        inst.loss(inst.model, batch).backward()
        opt.step()

    return {"steps": seen, "train_acc": train_acc, "test_acc": test_acc,
            "t_train": first_step(seen, train_acc, TRAIN_DONE), "t_test": first_step(seen, test_acc, TEST_DONE),
            "rank0": rank0, "rank": effective_rank(inst.model)}


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = FAST if fast else FULL
    per_seed, passed, runs = {}, {}, {}
    for seed in seeds:
        r = _run(seed, cfg["steps"], cfg["every"])
        runs[seed] = r
        ratio = r["t_test"] / r["t_train"] if r["t_train"] > 0 else math.nan
        per_seed[seed] = {"t_train": r["t_train"], "t_test": r["t_test"], "t_test/t_train": ratio,
                          "final_test_acc": r["test_acc"][-1], "r_eff_init": r["rank0"], "r_eff_end": r["rank"],
                          "r_eff_end/init": r["rank"] / r["rank0"]}
        passed[seed] = bool(np.isfinite(ratio) and ratio >= DELAY and r["rank"] <= RANK_FACTOR * r["rank0"])
    reached = all(np.isfinite(runs[s]["t_test"]) for s in seeds)
    fig = accuracy_figure(runs, seeds, f"S4 word 'ab', {int(TASK['train_fraction'] * 100)}% of pairs, AdamW wd 1")
    explanation = "; ".join(f"seed {s}: t_train {per_seed[s]['t_train']:.0f}, t_test {per_seed[s]['t_test']:.0f}, "
                            f"r_eff {per_seed[s]['r_eff_init']:.1f} → {per_seed[s]['r_eff_end']:.1f}" for s in seeds)
    explanation += f" (need t_test ≥ {DELAY:g}·t_train and r_eff(end) ≤ {RANK_FACTOR:g}·r_eff(init))"
    verdict = None
    if not reached:
        verdict = "inconclusive"
        explanation += f"; test accuracy did not reach {TEST_DONE} within {cfg['steps']} steps on some seed"
    return Outcome(per_seed, passed, explanation, fig, {"config": dict(cfg), "task": dict(TASK),
                                                         "hparams": dict(HPARAMS)}, verdict)


register(Claim(
    id="groups-grokking",
    paper="Learning words in groups: fusion algebras, tensor ranks and grokking (Shutman, Louidor, Tessler)",
    arxiv="2509.06931",
    statement="A two-layer network learns a word operation in a finite group and groks while doing so, using a "
              "low-rank implementation of the word's 3-tensor.",
    optimizers=("adamw",),
    protocol="group_words: S_4 multiplication, 50% of the 576 pairs, embedding + one ReLU layer of width 256; "
             "full-batch AdamW lr 3e-3, wd 1, betas (0.9, 0.98), 3,000 steps (fast 1,000); effective rank of the "
             "per-neuron components of the learned 3-tensor at the end vs at init.",
    rule=f"t_test ≥ {DELAY:g}·t_train and r_eff(end) ≤ {RANK_FACTOR:g}·r_eff(init); no grokking in budget: inconclusive",
    margin=f"delay factor {DELAY:g}, rank factor {RANK_FACTOR:g}, every seed",
    experiment=_experiment,
))
