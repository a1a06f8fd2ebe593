"""The built-in recipes; importing this package registers them."""

from . import adam, lion, muon, sgd  # noqa: F401
