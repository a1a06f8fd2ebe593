"""The built-in recipes; importing this package registers them."""

from . import adam, lion, muon, sgd  # noqa: F401
from . import muon_adaptive, muon_variants  # noqa: F401
from . import dion, muon_geometry  # noqa: F401
from . import schedule_free, symmetry  # noqa: F401
from . import muon_backends  # noqa: F401
from . import parameter_free, polyak, energy  # noqa: F401  (closure-aware and step-size rules)
from . import classic, first_order, orthogonal_momentum  # noqa: F401
from . import zeroth_order  # noqa: F401  (function values only)
