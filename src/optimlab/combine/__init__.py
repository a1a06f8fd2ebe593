"""Several losses, one direction: per-loss gradients combined over all parameters and written to ``.grad``.

    from optimlab.combine import UPGrad
    combiner = UPGrad()
    opt.zero_grad(); combiner.backward([loss_a, loss_b], model); opt.step()

Combiners: ``Sum``, ``PCGrad``, ``Bloop`` (EMA-projected auxiliary loss), ``UPGrad`` (Jacobian descent;
``iwrm_backward`` for one objective per example), ``ODICE`` (orthogonal-gradient update), ``PrimalDual``
(Lagrangian with its own dual step); ``OrthogonalProjection`` (continual learning: gradients projected off
a stored basis; ``GPMProjection`` per layer on earlier tasks' input spaces). See docs/combine.md.
"""
from .base import Combiner
from .bloop import Bloop
from .gpm import GPMProjection
from .jacobian import jacobian, per_sample_jacobian, write_grad
from .orthogonal import OrthogonalProjection, ogd_directions
from .primal_dual import PrimalDual
from .simple import ODICE, PCGrad, Sum
from .upgrad import UPGrad, iwrm_backward, upgrad_weights

__all__ = ["Combiner", "Sum", "PCGrad", "Bloop", "UPGrad", "ODICE", "PrimalDual", "iwrm_backward",
           "upgrad_weights", "jacobian", "per_sample_jacobian", "write_grad", "OrthogonalProjection",
           "ogd_directions", "GPMProjection"]
