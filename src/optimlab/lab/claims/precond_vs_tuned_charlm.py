"""The char_lm part of issue 12's proxy comparisons: Shampoo, SOAP, PSGD Kron and ASGO against tuned AdamW and
tuned Muon on a small character-level GPT (``char_lm``), as four claims of their own (``<method>-vs-tuned-adamw-
muon-charlm``) beside the digits / mnist1d four in :mod:`.precond_vs_tuned`, whose machinery (shared sweep,
verdict, figure) they reuse with a different protocol.

Protocol (fixed before the first run of it; the only runs before were one 50-step run per optimizer at the default
char_lm and at the proxy options below, and one 200-step run per optimizer at the proxy options, all at the default
lr, seed 0, to measure cost):

- Task ``char_lm`` with ``d=64, context=32`` (its other options at their defaults: 2 layers, 4 heads, batch 32
  sequences, the 1M-character stdlib corpus): a CPU proxy, not the default char_lm. Cost measured here on one
  thread (2-core machine shared by ~9 agents, load ≈ 4): 50-step runs at the default options took 4.7–6.8 s CPU
  per optimizer against 0.9–1.6 s at these options; 200-step runs at these options 3.2–5.8 s CPU (≈ 22 ms/step
  on average over the six). The same grid and steps would cost ≈ 1.5 h of CPU on the default char_lm, ≈ 18 min
  at these options.
- Optimizers ``shampoo``, ``soap``, ``psgd_kron``, ``asgo``, ``adamw``, ``muon`` at their optimlab defaults
  except the main roles' lr (AdamW: the recipe's defaults, not the task's AdamW settings), as in the four.
- Same trial budget for every optimizer: lr grid = its default lr × {1/8, 1/4, 1/2, 1, 2, 4, 8} (7 values, the
  four's grid), every grid value on seeds 0, 1, 2, 400 steps each: 6 × 7 × 3 = 126 runs. The lr is chosen per
  optimizer by the seed-mean final eval loss (validation cross-entropy, nats/char; a diverged run scores +inf).
  Seeds pair initialisation and batch order across optimizers.
- Verdict per seed (one claim per method): the method's final eval loss at its tuned lr is strictly below tuned
  AdamW's and strictly below tuned Muon's. No tolerance. A tuned lr at an edge of its grid (the method's,
  AdamW's or Muon's) makes the verdict inconclusive. Reported with it: the paired difference (method −
  reference) over seeds with its 95% t interval.
- Fast protocol (tests): char_lm at ``d=16, n_heads=2, context=8, batch_size=8, eval_batches=1,
  corpus_chars=20000``, lr × {1/2, 1, 2}, 5 steps, seeds 0, 1 — it checks the plumbing, not the claim.

The four claims share one sweep per process: run them in one command to pay for it once. A 110k-parameter
model trained for 400 steps says nothing about the papers' large-model results.
"""
from __future__ import annotations

from .precond_vs_tuned import PAPERS, make_claim

TINY = {"d": 16, "n_heads": 2, "context": 8, "batch_size": 8, "eval_batches": 1, "corpus_chars": 20_000}
FAST = {"tasks": ("char_lm",), "factors": (0.5, 1.0, 2.0), "steps": 5, "options": {"char_lm": TINY}}
FULL = {"tasks": ("char_lm",), "factors": (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0), "steps": 400,
        "options": {"char_lm": {"d": 64, "context": 32}}}

_PROTOCOL = ("proxy: char_lm at d=64, context=32 (other options default), 400 steps (fast: a d=16 char_lm, 5 steps); "
             "Shampoo, SOAP, PSGD Kron, ASGO, AdamW, Muon at their defaults except the main roles' lr, tuned per "
             "optimizer on default × {1/8, 1/4, 1/2, 1, 2, 4, 8} (fast × {1/2, 1, 2}) by the seed-mean final eval "
             "loss; one shared sweep; paired Δ with 95% t intervals reported")


def _claim(stem: str, method: str, label: str, paper: str, arxiv: str, what: str):
    return make_claim(f"{stem}-vs-tuned-adamw-muon-charlm", method, label, paper, arxiv,
                      f"{what}: proxy, below tuned AdamW and tuned Muon on a small character-level GPT (char_lm).",
                      fast=FAST, full=FULL, protocol=_PROTOCOL)


SHAMPOO, SOAP, PSGD, ASGO = (_claim(*m) for m in PAPERS)
