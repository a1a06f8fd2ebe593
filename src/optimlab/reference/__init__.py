"""Slow, literal, single-tensor transcriptions of papers' update rules: test oracles, never fast paths.

Each function takes one parameter tensor, its gradient and a plain dict of state, and performs one step
of the rule exactly as the paper writes it, in the paper's notation.
"""

from .muon_variants import (adago_step, adamuon_step, clion_step, mimuon_step, muoneq_step, normuon_step,
                            trust_region_step)
from .sign_methods import lion_step, signum_step
from .schedule_free import sf_adamw_step, sf_normuon_step, sf_sgd_step
from .symmetry import symmetric_step
from .dion import dion_step
from .muon_geometry import (auon_step, drop_muon_step, hybrid_auon_step, kaon_step, pion_step,
                            root_step)
from .spectral_maps import freon_step, turbo_muon_step

__all__ = ["freon_step", "turbo_muon_step",
           "lion_step", "signum_step", "sf_sgd_step", "sf_adamw_step", "sf_normuon_step", "symmetric_step",
           "dion_step", "auon_step", "drop_muon_step", "hybrid_auon_step", "kaon_step", "pion_step",
           "root_step", "adago_step", "adamuon_step", "clion_step", "mimuon_step", "muoneq_step",
           "normuon_step", "trust_region_step"]
