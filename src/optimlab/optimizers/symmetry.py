"""The symmetry-compatible layerwise stack (Lau & Su, arXiv:2605.18106): every block gets an update whose
equivariance matches its symmetry group.

The finer roles (``router``, ``gate``, ``down``, ``expert``) come from ``assign_roles(model, fine=True)``
(or explicit ``roles=`` globs); with the coarse roles alone these recipes are Muon for hidden matrices and
the embedding/head rules below.
"""

from ..core.recipe import Recipe
from ..core.registry import register
from ..core.transform import chain
from ..transforms import DecoupledDecay, EMAMomentum
from ..transforms.symmetry import CenterRows, OneSidedPolar, RowNormalize
from .muon import MUON_MATRIX, muon

PAPER = ("Lau & Su, Symmetry-Compatible Principle for Optimizer Design: Embeddings, LM Heads, SwiGLU MLPs, "
         "and MoE Routers (arXiv:2605.18106)")


def _momentum_chain(*transforms):
    return chain(EMAMomentum(), *transforms, DecoupledDecay())


ROW_NORM = _momentum_chain(RowNormalize("row"))
HYBRID = _momentum_chain(RowNormalize("row"), OneSidedPolar("right"))
ROUTER_ROW_NORM = _momentum_chain(CenterRows(), RowNormalize("row"))
ROUTER_LEFT_SPECTRAL = _momentum_chain(CenterRows(), OneSidedPolar("left"))
GATE_HYBRID = HYBRID  # rows are the intermediate neurons
DOWN_HYBRID = _momentum_chain(RowNormalize("col"), OneSidedPolar("left"))  # columns are the neurons

#: The authors' plain EMA momentum (β = 0.95, no Nesterov) and no weight decay on these blocks.
_SYM = {"momentum": 0.95, "nesterov": False, "weight_decay": 0.0}


def _stack(name: str, chains: dict, lrs: dict, summary: str) -> Recipe:
    defaults = {role: {**_SYM, "lr": lr} for role, lr in lrs.items()}
    # Muon per expert matrix: a 3-D (E, m, n) expert stack is E matrices, not one (E, m·n) matrix.
    defaults["expert"] = {"lr": 0.02, "momentum": 0.95, "nesterov": True, "weight_decay": 0.01, "ortho_3d": "slices"}
    return muon().replace(name, chains={**chains, "expert": MUON_MATRIX}, defaults=defaults,
                          main=("matrix", "expert", "gate", "down"), summary=summary, paper=PAPER)


@register("symmetry_muon")
def symmetry_muon() -> Recipe:
    """Symmetry-compatible stack, row-norm family: each role's update respects its block's symmetry.

    With ``m ← μ m + (1−μ) g`` (plain EMA) and ``p ← (1 − lr λ) p − lr·u``:

    * ``embedding``, ``head``: row-norm ``u_i = m_i / (‖m_i‖ + ε)`` (left permutations of tokens, right
      orthogonal maps); defaults lr 0.5 (embedding) and 5e-3 (head), ℓ2 norm of each row's step;
    * ``router``: centered row-norm ``u = rownorm(m − 1·mean_rows(m))`` (expert permutations and the
      softmax's shared shift); lr 7.5e-4;
    * ``gate`` (SwiGLU gate/up) and ``down``: hybrid row-aware / column-aware ``u = ν·polar(rownorm(m))``
      over the intermediate-neuron rows (gate) or columns (down), ν the nuclear norm; lr 0.02;
    * ``matrix``: Muon (bi-orthogonally equivariant), lr 0.02, momentum 0.95 (Nesterov), weight_decay 0.01;
    * ``expert`` (other MoE expert weights): Muon per expert matrix (``ortho_3d="slices"``), as ``matrix``;
    * ``vector``: AdamW, lr 3e-4, betas (0.9, 0.95), weight_decay 0.01 (``per_role=``).

    Row-norm roles: momentum 0.95, nesterov False, weight_decay 0, eps 1e-8; hybrid: alpha 1. Learning
    rates of embedding, head, router and the SwiGLU roles are the authors' Qwen3-0.6B / OLMoE-1B-7B-style
    settings, not tuned here. Keywords set ``matrix``/``expert``/``gate``/``down``; others via ``per_role``.
    """
    return _stack("symmetry_muon",
                  {"embedding": ROW_NORM, "head": ROW_NORM, "router": ROUTER_ROW_NORM, "gate": GATE_HYBRID,
                   "down": DOWN_HYBRID},
                  {"embedding": 0.5, "head": 5e-3, "router": 7.5e-4, "gate": 0.02, "down": 0.02},
                  "Symmetry-compatible stack: row-norm embeddings/heads, centered row-norm routers, "
                  "hybrid SwiGLU, Muon elsewhere")


@register("symmetry_hybrid")
def symmetry_hybrid() -> Recipe:
    """Symmetry-compatible stack, spectral family: hybrid row-norm/spectral embeddings and heads,
    left-spectral routers.

    As ``symmetry_muon`` except: ``embedding``/``head``: ``u = ν·M(MᵀM + εI)^{-1/2}`` of ``M = rownorm(m)``
    (row-normalize, then the one-sided polar factor), lr 1.0 / 1e-2; ``router``: left-spectral
    ``u = ν·(CCᵀ + εI)^{-1/2} C`` of the centered momentum ``C = m − 1·mean_rows(m)``, lr 7.5e-4.
    Learning rates: the authors' Qwen3 hybrid and OLMoE left-spectral runs.
    """
    return _stack("symmetry_hybrid",
                  {"embedding": HYBRID, "head": HYBRID, "router": ROUTER_LEFT_SPECTRAL, "gate": GATE_HYBRID,
                   "down": DOWN_HYBRID},
                  {"embedding": 1.0, "head": 1e-2, "router": 7.5e-4, "gate": 0.02, "down": 0.02},
                  "Symmetry-compatible stack: hybrid row-norm/spectral embeddings/heads, left-spectral routers, "
                  "hybrid SwiGLU, Muon elsewhere")


__all__ = ["symmetry_muon", "symmetry_hybrid"]
