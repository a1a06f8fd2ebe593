"""Linear-algebra kernels: orthogonalisation (Newton–Schulz, SVD polar factor) for Muon-type optimizers."""

from .orthogonalize import (
    METHODS,
    newton_schulz,
    orthogonality_error,
    orthogonalize,
    polar_svd,
)
from .schedules import SCHEDULES, ns_coefficients

__all__ = [
    "SCHEDULES",
    "METHODS",
    "ns_coefficients",
    "newton_schulz",
    "polar_svd",
    "orthogonalize",
    "orthogonality_error",
]
