"""Seed claims whose experiment cannot run yet: each names the optimizer or protocol it needs.

They are registered so ``list_claims()`` shows the whole programme; ``run`` returns verdict
"pending" with ``missing`` filled in, until the optimizer is registered in optimlab and the
experiment is written (then move the claim to its family's module).
"""
from __future__ import annotations

from .base import Claim, register  # noqa: F401  (for the next pending claim)

# -- curvature (issue 12, second part): protocols from research/coverage.md, not run yet -------------------

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

# ---- issue 14 (WP4): "needs paper" rows. Each needs the paper's algorithm (and its constants) before a
# protocol can be written; the bilevel/combine APIs they would use exist (optimlab.bilevel, optimlab.combine).

def _wp4(cid: str, paper: str, statement: str, protocol: str, rule: str, needs: str) -> None:
    register(Claim(id=cid, paper=paper, arxiv="", statement=statement, optimizers=(), protocol=protocol, rule=rule,
                   margin="fixed with the protocol, once the paper is read", experiment=None, needs=needs))


_wp4("bo-rep-hypercleaning",
     "Bilevel Optimization under Unbounded Smoothness: A New Algorithm and Convergence Analysis (BO-REP)",
     "BO-REP (normalized momentum on the upper variable, initialization refinement and periodic updates of the "
     "lower variable) beats an AID baseline on data hyper-cleaning.",
     "digits hyper-cleaning (40% noise), clean validation accuracy vs AID (IFT-Neumann) at equal budget",
     "BO-REP accuracy ≥ AID accuracy per seed",
     "the BO-REP paper: refinement and periodic-update schedules, momentum and normalisation constants")
_wp4("mbbo-parallel-speedup",
     "Blockwise Stochastic Variance-Reduced Methods with Parallel Speedup for Multi-Block Bilevel Optimization",
     "Blockwise variance-reduced bilevel methods need fewer iterations as more blocks are sampled per step.",
     "m = 20 lower-level ridge problems; iterations to a tolerance vs blocks per step I",
     "iterations fall with I (parallel speedup)",
     "the MBBO paper: the blockwise Hessian/HVP tracking estimators and their step sizes")
_wp4("lv-hba-constrained-blo",
     "Constrained Bi-Level Optimization: Proximal Lagrangian Value function Approach and Hessian-free Algorithm",
     "LV-HBA solves bilevel problems with coupled lower-level constraints better than a penalty baseline.",
     "toy bilevel problem with a coupled linear constraint; LV-HBA vs penalty method",
     "lower outer objective at equal feasibility",
     "the LV-HBA paper: the proximal Lagrangian value-function reformulation and its update rules")
_wp4("sl-bamm-kkt",
     "Averaged Method of Multipliers for Bi-Level Optimization without Lower-Level Strong Convexity (sl-BAMM)",
     "sl-BAMM drives the KKT residual down without lower-level strong convexity.",
     "toy bilevel problem with a merely convex lower level; KKT residual vs iterations",
     "KKT residual decreases to a tolerance",
     "the sl-BAMM paper: the averaged multiplier updates and step-size rules")
_wp4("moreau-blo-stationarity",
     "Moreau Envelope for Nonconvex Bi-Level Optimization: A Single-loop and Hessian-free Solution Strategy",
     "The Moreau-envelope single-loop Hessian-free method reaches stationarity on nonconvex–nonconvex bilevel "
     "problems.",
     "toy nonconvex–nonconvex bilevel problem; stationarity measure vs iterations",
     "stationarity measure decreases to a tolerance",
     "the paper: the Moreau-envelope reformulation, its proximal parameter and penalty schedule")
_wp4("stableun-relearning",
     "Beyond Sharp Minima: Robust LLM Unlearning via Feedback-Guided Multi-Point Optimization (StableUN)",
     "StableUN's unlearning resists relearning attacks better than gradient ascent.",
     "digits classifier, forget class 3; relearning attack of 10 samples × 20 steps",
     "accuracy regained after the attack ≥ 20 pp less than after gradient ascent",
     "the StableUN paper: the SAM-style probe radius, feedback weighting and forget/retain projection rule")
_wp4("uno-unlearning-speed",
     "UNO: Unlearning via Orthogonalization in Generative models",
     "Orthogonalising the forget gradient against the retain gradient forgets a class in fewer steps than a "
     "gradient-surgery baseline.",
     "digits classifier, forget one class; steps to chance accuracy on it vs PCGrad-style surgery",
     "fewer steps than the baseline at equal retain accuracy",
     "the UNO paper: which gradients are orthogonalised and the loss it uses for generative models")
_wp4("rogo-vs-gpm",
     "Restricted Orthogonal Gradient Projection for Continual Learning (ROGO)",
     "Allowing a restricted oblique component in the projected gradient improves accuracy over GPM's strict "
     "orthogonal projection.",
     "permuted/split digits, 5 tasks; ACC and BWT, GPM vs ROGO (optimlab.combine.OrthogonalProjection as GPM's "
     "projection)",
     "higher ACC at no worse BWT",
     "the ROGO paper: how the restricted oblique subspace is chosen and bounded; GPM's activation-SVD threshold")
_wp4("proxy-prox-point-calls",
     "Two Losses Are Better Than One: Faster Optimization Using a Cheaper Proxy",
     "An approximate proximal-point method that minimises a cheap proxy corrected by the expensive loss's gradient "
     "needs fewer expensive gradients than SGD when the proxy is close.",
     "quadratic f, proxy h = f + δ-smooth perturbation; ∇f calls to ε vs SGD as δ varies",
     "fewer ∇f calls than SGD for small δ",
     "the paper: the inner solver for the proxy subproblem, its accuracy and the step size η")


# -- zeroth order and non-differentiable training (WP3): the rules need the papers -----------------------
register(Claim(
    id="polystep-nondiff",
    paper="Training Non-Differentiable Networks via Optimal Transport (PolyStep)",
    arxiv="2605.01928",
    statement="PolyStep trains networks whose gradient is zero almost everywhere (staircase activations) "
              "better than evolution strategies and random search.",
    optimizers=("polystep",),
    protocol="staircase-activation MLP on digits (optimlab.lab.tasks.nondiff): PolyStep vs ES vs random search "
             "test accuracy, 3 seeds.",
    rule="PolyStep's mean test accuracy above both baselines on every seed",
    margin="3 seeds, every seed",
    needs="the paper's algorithm box (arXiv:2605.01928, not in the seed). The public code (github.com/anindex/"
          "polystep) fixes the core (P particles, V polytope vertices around each in a per-layer subspace, cost "
          "C[p, j] = loss at the probe, W = softmax(-(C - min_j C)/(ε·cost scale)) per row (solvers/softmax.py), "
          "barycentric projection onto the W-weighted vertices with a step and a probe radius (README)) but its step also carries momentum, a transport-direction EMA, a Newton "
          "direction, CMA-style subspace rotation and cosine schedules of ε, step and probe radius; which of these "
          "the claimed results rest on, and the subspace construction (HybridSubspace, rank 8 per layer), need "
          "the paper; an ES baseline is needed too",
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
