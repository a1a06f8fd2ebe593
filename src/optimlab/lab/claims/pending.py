"""Seed claims whose experiment cannot run yet: each names the optimizer or protocol it needs.

They are registered so ``list_claims()`` shows the whole programme; ``run`` returns verdict
"pending" with ``missing`` filled in, until the optimizer is registered in optimlab and the
experiment is written (then move the claim to its family's module).
"""
from __future__ import annotations

from .base import Claim, register  # noqa: F401  (for the next pending claim)


# -- zeroth order and non-differentiable training (WP3): the rules need the papers -----------------------
register(Claim(
    id="polystep-nondiff",
    paper="Training Non-Differentiable Networks via Optimal Transport (PolyStep)",
    arxiv="",
    statement="PolyStep trains networks whose gradient is zero almost everywhere (staircase activations) "
              "better than evolution strategies and random search.",
    optimizers=("polystep",),
    protocol="staircase-activation MLP on digits (optimlab.lab.tasks.nondiff): PolyStep vs ES vs random search "
             "test accuracy, 3 seeds.",
    rule="PolyStep's mean test accuracy above both baselines on every seed",
    margin="3 seeds, every seed",
    needs="the PolyStep update rule (only the abstract is in the seed: polytope vertices in a compressed "
          "subspace, softmax-weighted assignments, barycentric projection; the paper or its code is needed)",
))

register(Claim(
    id="zo-spider-goldstein",
    paper="Faster Gradient-Free Algorithms for Nonsmooth Nonconvex Stochastic Optimization",
    arxiv="2301.06428",
    statement="A zeroth-order recursive (SPIDER) estimator of the δ-smoothed function reaches a (δ, ε)-Goldstein "
              "stationary point with fewer oracle calls than plain zeroth-order GD.",
    optimizers=("zo_spider",),
    protocol="mean absolute residual of a ReLU network (d ≈ 50): oracle calls until a Goldstein-stationarity "
             "proxy falls below ε, ZO-SPIDER vs zo_sgd, 3 seeds.",
    rule="fewer oracle calls for ZO-SPIDER on every seed",
    margin="3 seeds, every seed",
    needs="the paper's batch sizes, epoch length and step constants (the seed gives only the estimator's form)",
))
