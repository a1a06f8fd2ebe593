"""Building blocks of update rules: each formula written once, over buckets of parameters."""

from .decay import CoupledDecay, DecoupledDecay
from .momentum import EMAMomentum, HeavyBall
from .moments import AdamaxMoments, AdamMoments
from .orthogonalize import Orthogonalize, ScaleByShape
from .sign import LionSign, Sign

__all__ = ["CoupledDecay", "DecoupledDecay", "EMAMomentum", "HeavyBall", "AdamMoments", "AdamaxMoments",
           "Orthogonalize", "ScaleByShape", "LionSign", "Sign"]
