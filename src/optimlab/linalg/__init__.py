"""Linear-algebra kernels: orthogonalisation (Newton–Schulz, SVD polar factor) for Muon-type optimizers."""

from .orthogonalize import (
    METHODS,
    PRECONDITIONERS,
    newton_schulz,
    orthogonality_error,
    orthogonalize,
    polar_error,
    polar_svd,
)
from .aol import aol_newton_schulz
from .gram import gram_newton_schulz
from .qdwh import qdwh, schatten_direction
from .schedules import SCHEDULES, ns_coefficients
from .lowrank import column_normalize, orthonormal_basis, power_iteration_step, range_finder, subspace_distance

__all__ = [
    "SCHEDULES",
    "METHODS",
    "ns_coefficients",
    "newton_schulz",
    "polar_svd",
    "orthogonalize",
    "orthogonality_error",
    "PRECONDITIONERS",
    "polar_error",
    "aol_newton_schulz",
    "gram_newton_schulz",
    "qdwh",
    "schatten_direction",
    "orthonormal_basis",
    "column_normalize",
    "power_iteration_step",
    "range_finder",
    "subspace_distance",
]
