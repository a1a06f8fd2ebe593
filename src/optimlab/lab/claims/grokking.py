"""Grokking: on modular addition, train accuracy reaches 100% well before test accuracy does.

Task ``modular_arithmetic`` (c = a + b mod p, a fraction of all pairs for training, embedding +
one-hidden-layer ReLU MLP), full-batch AdamW with weight decay 1 (optimlab ``adamw``, lr 3e-3,
betas (0.9, 0.98): the task's reference settings, after Nanda et al.). t_train is the first
evaluated step with train accuracy ≥ 99.9%, t_test the first with test accuracy ≥ 99%.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import Claim, Outcome, register
from .figures import accuracy_figure, first_step

FAST = {"p": 23, "train_fraction": 0.5, "steps": 2000, "every": 10}
FULL = {"p": 97, "train_fraction": 0.4, "steps": 3000, "every": 10}
HPARAMS = {"lr": 3e-3, "weight_decay": 1.0, "betas": (0.9, 0.98)}
DELAY = 2.0  # t_test ≥ 2 · t_train
TRAIN_DONE, TEST_DONE = 0.999, 0.99


def _run(cfg: dict, seed: int) -> dict:
    import optimlab
    from optimlab.lab.tasks import get_task

    inst = get_task("modular_arithmetic", p=cfg["p"], train_fraction=cfg["train_fraction"]).build(seed)
    opt = optimlab.create(inst.model, "adamw", **HPARAMS, **inst.role_hints)  # AdamW: every role
    batch = inst.batch(0)
    steps, train_acc, test_acc = [], [], []
    for step in range(cfg["steps"] + 1):
        if step % cfg["every"] == 0:
            m = inst.evaluate()
            steps.append(step)
            train_acc.append(m["train_accuracy"])
            test_acc.append(m["test_accuracy"])
            if m["test_accuracy"] >= TEST_DONE and m["train_accuracy"] >= TRAIN_DONE and step >= 100:
                # both done: the times are known; stop early to save time
                break
        opt.zero_grad()
        inst.loss(inst.model, batch).backward()
        opt.step()

    return {"steps": steps, "train_acc": train_acc, "test_acc": test_acc,
            "t_train": first_step(steps, train_acc, TRAIN_DONE), "t_test": first_step(steps, test_acc, TEST_DONE)}


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = FAST if fast else FULL
    per_seed, passed, runs = {}, {}, {}
    for seed in seeds:
        r = _run(cfg, seed)
        runs[seed] = r
        ratio = r["t_test"] / r["t_train"] if r["t_train"] > 0 else float("nan")
        per_seed[seed] = {"t_train": r["t_train"], "t_test": r["t_test"], "t_test/t_train": ratio,
                          "test_acc_at_t_train": (r["test_acc"][r["steps"].index(int(r["t_train"]))]
                                                  if np.isfinite(r["t_train"]) else float("nan")),
                          "final_test_acc": r["test_acc"][-1]}
        passed[seed] = bool(np.isfinite(ratio) and ratio >= DELAY)
    reached = all(np.isfinite(runs[s]["t_test"]) and np.isfinite(runs[s]["t_train"]) for s in seeds)
    fig = accuracy_figure(runs, seeds,
                          f"(a + b) mod {cfg['p']}, {int(cfg['train_fraction'] * 100)}% of pairs, AdamW wd 1")
    explanation = ", ".join(f"seed {s}: t_train {per_seed[s]['t_train']:.0f}, t_test {per_seed[s]['t_test']:.0f}"
                            for s in seeds) + f" (need t_test ≥ {DELAY}·t_train)"
    verdict = None
    if not reached:
        verdict = "inconclusive"
        explanation += f"; test accuracy did not reach {TEST_DONE} within {cfg['steps']} steps on some seed"
    return Outcome(per_seed, passed, explanation, fig, {"config": dict(cfg), "hparams": dict(HPARAMS)}, verdict)


GROKKING = register(Claim(
    id="grokking-modular-arithmetic",
    paper="Grokking: Generalization Beyond Overfitting on Small Algorithmic Datasets (Power, Burda, Edwards, "
          "Babuschkin, Misra, 2022)",
    arxiv="2201.02177",
    statement="On modular arithmetic trained on a fraction of all pairs, the network fits the training set long "
              "before it generalizes; test accuracy later jumps to ~100% (weight decay speeds this up).",
    optimizers=("adamw",),
    protocol="task modular_arithmetic (a + b mod p, MLP arch), full-batch optimlab adamw lr 3e-3, weight decay 1, "
             "betas (0.9, 0.98) on every parameter; accuracies every 10 steps. fast: p=23, 50% of pairs, ≤2,000 "
             "steps; full: p=97, 40% of pairs, ≤3,000 steps.",
    rule=f"train accuracy ≥ {TRAIN_DONE} at t_train, test ≥ {TEST_DONE} at t_test, and t_test ≥ {DELAY}·t_train",
    margin=f"t_test ≥ {DELAY}·t_train (test never reaching {TEST_DONE}: inconclusive)",
    experiment=_experiment,
))
