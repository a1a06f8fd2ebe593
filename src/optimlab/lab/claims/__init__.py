"""The lab's claims: seed papers' quantitative statements, tested by experiments with a verdict.

    from optimlab.lab.claims import list_claims, run_claim
    evidence = run_claim("gd-edge-of-stability", fast=True, out_dir="claims-out")
    print(evidence.summary())

Implemented (in this order): gd-edge-of-stability, adam-edge-of-stability, zo-stability-boundary,
adam-fails-amsgrad-converges, muon-associative-memory, incremental-rank-learning,
grokking-modular-arithmetic, sgd-trace-bound,
natural-gradient-scaling-exponent, the Muon-family claims, dog-vs-tuned-sgd, hessian-fitting-lie-linear,
psgd-vs-tuned-adamw, asgo-vs-tuned-adamw. The rest are registered as pending (see ``pending``).
natural-gradient-scaling-exponent, the Muon-family claims, dog-vs-tuned-sgd, mfac-exact-linear-cost,
scaledgd-log-kappa, bias-correction-coupling, egn-exact-linear-rate, gn-smoothness-linear-rate,
sfn-escapes-saddle. The rest are registered as pending (see ``pending``).
natural-gradient-scaling-exponent, the Muon-family claims, dog-vs-tuned-sgd, dct-vs-svd-projection,
snsm-memory, osd-between-adamw-and-galore. The rest are registered as pending (see ``pending``).
natural-gradient-scaling-exponent, the Muon-family claims, dog-vs-tuned-sgd, the gradient-combining,
bilevel and continual-learning claims (combine, bilevel, continual). The rest are registered as pending (see ``pending``).
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
from . import saddle  # noqa: F401
from . import lowrank  # noqa: F401
from . import combine  # noqa: F401
from . import bilevel  # noqa: F401
from . import continual  # noqa: F401
from . import pending  # noqa: F401
from .base import CLAIMS, VERDICTS, Claim, Evidence, Outcome, get_claim, list_claims, register, run_claim

__all__ = ["CLAIMS", "VERDICTS", "Claim", "Evidence", "Outcome", "get_claim", "list_claims", "register",
           "run_claim"]
