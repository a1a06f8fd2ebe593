"""Slow, literal, single-tensor transcriptions of papers' update rules: test oracles, never fast paths.

Each function takes one parameter tensor, its gradient and a plain dict of state, and performs one step
of the rule exactly as the paper writes it, in the paper's notation.
"""

from .sign_methods import lion_step, signum_step

__all__ = ["lion_step", "signum_step"]
