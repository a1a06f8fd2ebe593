"""The lab's claims: seed papers' quantitative statements, tested by experiments with a verdict.

    from optimlab.lab.claims import list_claims, run_claim
    evidence = run_claim("gd-edge-of-stability", fast=True, out_dir="claims-out")
    print(evidence.summary())

Implemented, in the listing order of the imports below: the edge-of-stability and zeroth-order claims
(zo-stability-boundary, zo-frank-wolfe-rate, cbo-rastrigin, zo-eos-mlp, langevin-averaging-sample-complexity),
AMSGrad, associative memory, incremental rank, grokking, the SGD trace bound, the natural-gradient
exponent, the Muon-family claims, dog-vs-tuned-sgd; the closure-aware methods' claims (ghosts, stepsize_rules,
stepsize_checks, smoothness); preconditioners and curvature (hessian_fitting, preconditioners, curvature,
gauss_newton, saddle); low rank; gradient combining, bilevel and continual learning; then issue 15's:
muon_capacity, orthogonalization, scaling_spectrum, saddles, hessian_subspace, implicit_bias, schedules_batch,
pinn_conditioning, batch_size, proxies (section 3.3 of the coverage file). Claims whose method or protocol
needs the paper are registered as pending (see ``pending`` and the family modules).
``python -m optimlab.lab.claims run --all`` also writes ``index.html`` (every verdict and figure).
"""
from __future__ import annotations

from . import edge_of_stability  # noqa: F401  (registration order = listing order)
from . import zeroth_order  # noqa: F401
from . import zo_rates  # noqa: F401
from . import population  # noqa: F401
from . import zo_eos  # noqa: F401
from . import langevin  # noqa: F401
from . import amsgrad  # noqa: F401
from . import associative_memory  # noqa: F401
from . import incremental  # noqa: F401
from . import grokking  # noqa: F401
from . import sgd_trace  # noqa: F401
from . import natural_gradient  # noqa: F401
from . import muon_family  # noqa: F401
from . import dog  # noqa: F401
from . import ghosts  # noqa: F401
from . import stepsize_rules, stepsize_checks, smoothness  # noqa: F401
from . import hessian_fitting  # noqa: F401
from . import preconditioners  # noqa: F401
from . import curvature  # noqa: F401
from . import gauss_newton  # noqa: F401
from . import thermodynamic  # noqa: F401  (tngd-equals-ngd)
from . import saddle  # noqa: F401
from . import lowrank  # noqa: F401
from . import combine  # noqa: F401
from . import bilevel  # noqa: F401
from . import continual  # noqa: F401
from . import muon_capacity  # noqa: F401  (issue 15's claims)
from . import orthogonalization  # noqa: F401
from . import scaling_spectrum  # noqa: F401
from . import saddles  # noqa: F401
from . import hessian_subspace  # noqa: F401
from . import implicit_bias  # noqa: F401
from . import schedules_batch  # noqa: F401
from . import pinn_conditioning  # noqa: F401
from . import batch_size  # noqa: F401
from . import proxies  # noqa: F401
from . import ntk_depth, group_words, tubal, curl, drift  # noqa: F401  (issue 15, tasks and diagnostics)
from . import policy_gradient, cross_fit, filtered_newton  # noqa: F401  (N-HARPG; cross-fitting; filtered Newton)
from . import model_based, robust_recovery, relu_convex  # noqa: F401  (issue 15, helper wp5a)
from . import precond_vs_tuned  # noqa: F401  (issue 12 proxy comparisons, helper "proxies")
from . import precond_vs_tuned_charlm  # noqa: F401  (issue 12 proxy comparisons on char_lm, helper "charlm")
from . import symmetry_moe  # noqa: F401
from . import sf_weight_decay  # noqa: F401
from . import lifted_sensing  # noqa: F401  (issue 15, helper lifted: lifted matrix sensing)
from . import polystep  # noqa: F401  (PolyStep vs ES vs random search on a staircase net)
from . import pending  # noqa: F401
from .base import CLAIMS, VERDICTS, Claim, Evidence, Outcome, get_claim, list_claims, register, run_claim

__all__ = ["CLAIMS", "VERDICTS", "Claim", "Evidence", "Outcome", "get_claim", "list_claims", "register",
           "run_claim"]
