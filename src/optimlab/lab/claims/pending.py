"""Seed claims whose experiment cannot run yet: each names the optimizer or protocol it needs.

They are registered so ``list_claims()`` shows the whole programme; ``run`` returns verdict
"pending" with ``missing`` filled in, until the optimizer is registered in optimlab and the
experiment is written (then move the claim to its family's module).
"""
from __future__ import annotations

from .base import Claim, register

DOG = register(Claim(
    id="dog-vs-tuned-sgd",
    paper="DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule (Ivgi, Hinder, Carmon, ICML 2023)",
    arxiv="2302.12022",
    statement="DoG, with no learning rate to tune, comes close to SGD with a tuned learning rate on convex "
              "problems.",
    optimizers=("sgd", "dog"),
    protocol="convex tasks (quadratic, logistic regression on digits); SGD learning rate tuned on a log grid; "
             "final loss of DoG vs the best SGD over seeds.",
    rule="DoG's final loss within a fixed factor of tuned SGD's",
    margin="loss(DoG) ≤ 1.5 · loss(tuned SGD) (or within 2 SE), every seed",
    needs="a 'dog' optimizer (step η_t = max_{i≤t}‖x_i − x_0‖ / sqrt(Σ‖g_i‖²), needs the x_0 snapshot)",
))
