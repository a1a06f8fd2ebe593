"""Building blocks of update rules: each formula written once, over buckets of parameters."""

from .decay import CoupledDecay, DecoupledDecay
from .momentum import EMAMomentum, HeavyBall
from .moments import AdamaxMoments, AdamMoments
from .orthogonalize import Orthogonalize, ScaleByShape, SchattenMap
from .sign import CautiousLionSign, LionSign, Sign
from .normalize import Equilibrate, MatchRMS, NorMuonNormalize, TrustRegionDirection
from .adaptive import AdaGradNormStep, OrthoSecondMoment, SpectralGapGate
from .lowrank import DionLowRank
from .rotation import PionRotation
from .spectral import CoshRMSNormalize, OutlierClip, RandomSpectrum, ShapeOrthogonalize
from .subset import LayerSubset, SubsetChain, subset_chain
from .schedule_free import ScheduleFree, SecondMomentNormalize
from .symmetry import CenterRows, OneSidedPolar, RowNormalize

__all__ = ["CoupledDecay", "DecoupledDecay", "EMAMomentum", "HeavyBall", "AdamMoments", "AdamaxMoments",
           "Orthogonalize", "ScaleByShape", "SchattenMap", "LionSign", "Sign",
           "CautiousLionSign", "Equilibrate", "MatchRMS", "NorMuonNormalize", "TrustRegionDirection",
           "AdaGradNormStep", "OrthoSecondMoment", "SpectralGapGate",
           "DionLowRank", "PionRotation", "CoshRMSNormalize", "OutlierClip", "RandomSpectrum",
           "ShapeOrthogonalize", "LayerSubset", "SubsetChain", "subset_chain",
           "ScheduleFree", "SecondMomentNormalize", "CenterRows", "OneSidedPolar", "RowNormalize"]
