"""Curvature and geometry diagnostics for any torch model and any optimizer.

Main entry points (each returns a small dataclass with the value, its error where it applies, the
number of Hessian-vector products, the seconds spent, and the data used):

- ``top_eigenvalues(model, loss_fn, data, k=1)``: sharpness λ_1 ≥ … ≥ λ_k by Lanczos.
- ``hessian_trace(model, loss_fn, data)``: tr(H) by Hutch++ (or Hutchinson) ± standard error.
- ``spectral_density(model, loss_fn, data)``: eigenvalue density by stochastic Lanczos quadrature.
- ``exact_spectrum(model, loss_fn, data)``: every eigenvalue, for small models.
- ``preconditioned_sharpness(optimizer, model, loss_fn, data)``: λ_max(P⁻¹H) for Adam/RMSprop.
- ``lojasiewicz_fit``: the empirical Łojasiewicz exponent of a trajectory; ``layer_condition_numbers``,
  ``operator_condition_number``: per-layer weight κ and the κ of a curvature operator.
- ``EoSMonitor``: sharpness vs. threshold and gradient overlap, every k training steps.
- thresholds (``gd_threshold``, ``momentum_threshold``, ``adam_threshold``, ``sgd_trace_bound``,
  ``zo_stability``, ``stability_threshold``), ``sharpness_dimension``, update geometry.

Conventions: ``loss_fn(model, batch)`` returns the mean loss of the batch (``supervised_loss``
adapts an ``(output, target)`` criterion); ``data`` is one batch or an iterable of batches;
BatchNorm and dropout follow an explicit policy (see ``optimlab.diagnostics.data``).
"""
from .conditioning import (OperatorConditioning, WeightConditionTracker, layer_condition_numbers,
                           model_condition_number, operator_condition_number)
from .data import DataInfo, ModePolicy, SupervisedLoss, supervised_loss
from .eos import EoSMonitor, EoSRecord, gradient_overlap
from .flows import flat_loss, gd_step, gradient_flow, modified_flow, rk4
from .geometry import (DescentPotential, UpdateCapture, UpdateGeometry, alignment, capture_update,
                       condition_number, descent_potential, orthogonality_error, row_norm_imbalance,
                       stable_rank, update_geometry)
from .lojasiewicz import LojasiewiczFit, LojasiewiczTracker, lojasiewicz_fit
from .lanczos import EigenResult, lanczos, power_iteration
from .ntk import empirical_ntk, relative_variance
from .operators import (CurvatureOperator, DenseOperator, GGNOperator, HessianOperator, PreconditionedOperator,
                        make_operator)
from .sharpness import (PreconditionedSharpness, StabilityThreshold, find_second_moment,
                        optimizer_preconditioner, preconditioned_sharpness, stability_threshold, top_eigenvalues)
from .spectrum import (ExactSpectrum, SharpnessDimension, SpectralDensity, exact_spectrum, exact_spectrum_of,
                       sharpness_dimension, slq, spectral_density)
from .stability import (ZOStability, adam_threshold, gd_threshold, momentum_threshold, sgd_trace_bound,
                        zo_second_moment_matrix, zo_stability)
from .trace import TraceResult, hessian_trace, hutchinson, hutchpp

__all__ = [
    "CurvatureOperator", "DataInfo", "DenseOperator", "DescentPotential", "EigenResult", "EoSMonitor",
    "EoSRecord", "ExactSpectrum", "GGNOperator", "HessianOperator", "ModePolicy", "PreconditionedOperator",
    "PreconditionedSharpness", "SharpnessDimension", "SpectralDensity", "StabilityThreshold", "SupervisedLoss",
    "TraceResult", "UpdateCapture", "UpdateGeometry", "ZOStability", "adam_threshold", "alignment",
    "capture_update", "condition_number", "descent_potential", "exact_spectrum", "exact_spectrum_of",
    "find_second_moment", "gd_threshold", "gradient_overlap", "hessian_trace", "hutchinson", "hutchpp",
    "lanczos", "make_operator", "momentum_threshold", "optimizer_preconditioner", "orthogonality_error",
    "power_iteration", "preconditioned_sharpness", "row_norm_imbalance", "sgd_trace_bound",
    "sharpness_dimension", "slq", "spectral_density", "stability_threshold", "stable_rank",
    "supervised_loss", "top_eigenvalues", "update_geometry", "zo_second_moment_matrix", "zo_stability",
    "empirical_ntk", "relative_variance", "flat_loss", "gd_step", "gradient_flow", "modified_flow", "rk4",
]
__all__ += ["LojasiewiczFit", "LojasiewiczTracker", "OperatorConditioning", "WeightConditionTracker",
            "layer_condition_numbers", "lojasiewicz_fit", "model_condition_number", "operator_condition_number"]
