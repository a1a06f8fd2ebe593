"""Seed claims whose experiment cannot run yet: each names the optimizer or protocol it needs.

They are registered so ``list_claims()`` shows the whole programme; ``run`` returns verdict
"pending" with ``missing`` filled in, until the optimizer is registered in optimlab and the
experiment is written (then move the claim to its family's module).
"""
from __future__ import annotations

from .base import Claim, register  # noqa: F401  (for the next pending claim)


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
