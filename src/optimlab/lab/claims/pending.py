"""Seed claims whose experiment cannot run yet: each names the optimizer or protocol it needs.

They are registered so ``list_claims()`` shows the whole programme; ``run`` returns verdict
"pending" with ``missing`` filled in, until the optimizer is registered in optimlab and the
experiment is written (then move the claim to its family's module).
"""
from __future__ import annotations

from .base import Claim, register

KAON = register(Claim(
    id="kaon-matches-muon",
    paper="Muon is Not That Special: Freon and Kaon (Schatten-norm and random-spectrum spectral optimizers)",
    arxiv="",
    statement="Kaon, which replaces the singular values of the update with random noise, matches Muon's "
              "performance.",
    optimizers=("muon", "kaon"),
    protocol="tiny char-LM or MLP, learning rate tuned per optimizer on the same grid; final loss over seeds.",
    rule="Kaon's final loss within seed noise (2 standard errors) of Muon's",
    margin="|loss(Kaon) − loss(Muon)| ≤ 2 SE over seeds",
    needs="a 'kaon' optimizer (U·diag(ξ)·Vᵀ with random ξ; the noise distribution needs the paper) and a tuned-LR "
          "comparison protocol",
))

TURBO = register(Claim(
    id="turbo-muon-4-vs-5-ns",
    paper="Turbo-Muon: Accelerating Orthogonality-Based Optimization with Pre-Conditioning (Boissin, Massena, "
          "Mamalet, Serrurier)",
    arxiv="2512.04632",
    statement="With AOL preconditioning, 4 Newton–Schulz iterations orthogonalize as well as Muon's 5 (one "
              "iteration dropped, no retuning; 5–10% end-to-end speed-up).",
    optimizers=("muon", "turbo_muon"),
    protocol="orthogonality error ‖NS(X) − polar(X)‖ on Gaussian and ill-conditioned matrices, and final loss of "
             "a small model, Turbo-Muon (AOL + 4 NS steps) vs Muon (5 NS steps).",
    rule="AOL-4 error ≤ NS-5 error on Gaussian matrices, and final loss within seed noise",
    margin="error ratio ≤ 1; |Δloss| ≤ 2 SE over seeds",
    needs="a 'turbo_muon' optimizer (AOL row rescaling before Newton–Schulz with the 4-step coefficients)",
))

MUONEQ = register(Claim(
    id="muoneq-r-vs-muon",
    paper="MuonEq: Balancing Before Orthogonalization with Lightweight Equilibration (Chang et al.)",
    arxiv="",
    statement="Row-equilibrated Muon (MuonEq-R) consistently outperforms Muon (reported on LLaMA2 130M/350M "
              "on C4); finite-step orthogonalization error is governed by stable rank and condition number.",
    optimizers=("muon", "muoneq"),
    protocol="small LM or MLP at matched tuned learning rates; NS error vs condition number with and without row "
             "normalization.",
    rule="MuonEq-R's final loss below Muon's by more than seed noise",
    margin="loss(Muon) − loss(MuonEq-R) > 2 SE over seeds",
    needs="a 'muoneq' optimizer (row squared-norm equilibration of the momentum before Newton–Schulz; exact "
          "statistic needs the paper)",
))

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

NATGRAD = register(Claim(
    id="natural-gradient-scaling-exponent",
    paper="Natural gradient vs gradient descent scaling exponents in random-feature regression (seed H2)",
    arxiv="",
    statement="At spectral parameter s ≈ 1, full natural gradient fits a loss-vs-model-size exponent α ≈ 0.31 vs "
              "GD's α ≈ 0.12 (2.6× larger).",
    optimizers=("sgd", "natural_gradient"),
    protocol="task random_features at s ≈ 1, N = 2^6 … 2^11 features, fixed compute budget; fit log L vs log N.",
    rule="α_NG > α_GD, then compare with 0.31 / 0.12 once the paper's definition of s and budget are known",
    margin="α_NG − α_GD > 2 SE of the fits",
    needs="a 'natural_gradient' optimizer (full Fisher / Gauss–Newton preconditioning) and the paper's definition "
          "of s and its compute budget",
))
