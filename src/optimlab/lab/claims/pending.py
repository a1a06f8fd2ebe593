"""Seed claims whose experiment cannot run yet: each names the optimizer or protocol it needs.

They are registered so ``list_claims()`` shows the whole programme; ``run`` returns verdict
"pending" with ``missing`` filled in, until the optimizer is registered in optimlab and the
experiment is written (then move the claim to its family's module).
"""
from __future__ import annotations

from .base import Claim, register  # noqa: F401  (for the next pending claim)

# -- curvature (issue 12, second part): protocols from research/coverage.md, not run yet -------------------

register(Claim(
    id="tngd-equals-ngd",
    paper="Thermodynamic Natural Gradient Descent",
    arxiv="",
    statement="In a certain parameter regime TNGD is equivalent to NGD.",
    optimizers=("natural_gradient",),
    protocol="digits MLP: simulated OU solve dx = −((F+λI)x − g)dt + noise with equilibration time "
             "τ ∈ {0.1, 1, 10, 100}/λ_min vs the CG natural-gradient step",
    rule="relative difference of the step ≤ 1e-3 as τ grows",
    margin="rel. difference ≤ 1e-3 at the largest τ",
    needs="a registered natural_gradient optimizer (needs the model's outputs: a closure convention that "
          "exposes them) and the simulated OU solver",
))

register(Claim(
    id="polynomial-preconditioning-krylov",
    paper="Polynomial Preconditioning for Gradient Methods",
    arxiv="",
    statement="A polynomial preconditioner of the Hessian, chosen adaptively over a Krylov subspace, removes the "
              "effect of a few outlying top eigenvalues on gradient methods.",
    optimizers=(),
    protocol="quadratic with a few outlying top eigenvalues (d=200): iterations to 1e-8 vs GD and Chebyshev",
    rule="fewer iterations than GD and Chebyshev (margin to be fixed from the paper's bounds)",
    margin="to be fixed from the paper",
    needs="the paper: its rule (which symmetric polynomials of the spectrum, how the Krylov search picks them) "
          "is not in the abstract, and no best reading fixes it",
))

register(Claim(
    id="bayesian-filtering-newton-momentum",
    paper="Discriminative Bayesian filtering lends momentum to the stochastic Newton method for minimizing "
          "log-convex functions",
    arxiv="",
    statement="Filtering subsampled gradients and Hessians over the whole history (old observations decaying "
              "like heavy-ball momentum) improves on the plain subsampled Newton method.",
    optimizers=(),
    protocol="logistic regression, batch 32: suboptimality after 50 iterations, filtered vs subsampled Newton",
    rule="filtered suboptimality below the plain method's (margin from the paper)",
    margin="to be fixed from the paper",
    needs="the paper: the filter's state-space model and its update (how old observations are weighted) are not "
          "in the abstract",
))

register(Claim(
    id="accelerated-inexact-second-order",
    paper="Advancing the lower bounds: An accelerated, stochastic, second-order method with optimal adaptation "
          "to inexactness",
    arxiv="",
    statement="An accelerated stochastic second-order method attains the lower bounds with optimal adaptation to "
              "gradient and Hessian inexactness.",
    optimizers=(),
    protocol="convex logistic regression with Hessian noise σ_H ∈ {0, 0.1, 1}: suboptimality curves vs σ_H",
    rule="rates as in the paper's theorem (to be fixed from the paper)",
    margin="to be fixed from the paper",
    needs="the paper: the algorithm (its extrapolation sequence and the inexact cubic/quadratic subproblem) is "
          "not in the abstract",
))
