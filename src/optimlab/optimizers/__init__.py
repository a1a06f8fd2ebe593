"""The built-in recipes; importing this package registers them."""

from . import adam, lion, muon, sgd  # noqa: F401
from . import muon_adaptive, muon_variants  # noqa: F401
from . import dion, muon_geometry  # noqa: F401
from . import schedule_free, symmetry  # noqa: F401
from . import muon_backends  # noqa: F401
from . import parameter_free, polyak, energy  # noqa: F401  (closure-aware and step-size rules)
from . import classic, first_order, orthogonal_momentum  # noqa: F401
from . import reevaluated  # noqa: F401  (FD-GR, IGT, O2NC, SPIDER-NGD, SMB: a second gradient per step)
from . import shampoo  # noqa: F401  (Kronecker-factored preconditioners)
from . import curvature  # noqa: F401  (Hutchinson-HVP methods)
from . import ggn  # noqa: F401  (Gauss–Newton / natural gradient: need the model's outputs)
from . import projected  # noqa: F401  (low-rank projected: GaLore, DCT, OSD, SNSM)
from . import zeroth_order  # noqa: F401  (function values only)
from . import polystep  # noqa: F401  (PolyStep: polytope probes, softmax-OT barycentric steps)
from . import policy_gradient  # noqa: F401  (N-HARPG: Hessian-aided recursive momentum)
