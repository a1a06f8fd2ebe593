"""The lab's claims: seed papers' quantitative statements, tested by experiments with a verdict.

    from optimlab.lab.claims import list_claims, run_claim
    evidence = run_claim("gd-edge-of-stability", fast=True, out_dir="claims-out")
    print(evidence.summary())

Implemented (in this order): gd-edge-of-stability, adam-edge-of-stability, zo-stability-boundary,
adam-fails-amsgrad-converges, muon-associative-memory, incremental-rank-learning,
grokking-modular-arithmetic, sgd-trace-bound,
natural-gradient-scaling-exponent, the Muon-family claims, dog-vs-tuned-sgd, then issue 15's: muon_capacity,
orthogonalization, scaling_spectrum, saddles, hessian_subspace, implicit_bias, schedules_batch,
pinn_conditioning, batch_size, proxies (section 3.3 of the coverage file). The rest are registered as pending
(see ``pending``). ``python -m optimlab.lab.claims run --all`` also writes ``index.html`` (every verdict and figure).
"""
from __future__ import annotations

from . import edge_of_stability  # noqa: F401  (registration order = listing order)
from . import zeroth_order  # noqa: F401
from . import amsgrad  # noqa: F401
from . import associative_memory  # noqa: F401
from . import incremental  # noqa: F401
from . import grokking  # noqa: F401
from . import sgd_trace  # noqa: F401
from . import natural_gradient  # noqa: F401
from . import muon_family  # noqa: F401
from . import dog  # noqa: F401
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
from . import pending  # noqa: F401
from .base import CLAIMS, VERDICTS, Claim, Evidence, Outcome, get_claim, list_claims, register, run_claim

__all__ = ["CLAIMS", "VERDICTS", "Claim", "Evidence", "Outcome", "get_claim", "list_claims", "register",
           "run_claim"]
