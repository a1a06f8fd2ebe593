"""Updating a random subset of layers per step (Drop-Muon), and the step-derived RNG it and Kaon use.

Drop-Muon (Gruntkowska, Maziane, Qu & Richtárik, "Drop-Muon: Update Less, Converge Faster",
arXiv:2510.02239) samples at step k a set ``S^k`` of layers from a distribution ``D`` and updates only
those: for ``i ∈ S^k`` the layer's momentum and weight take the usual step, for ``i ∉ S^k`` both are held
fixed. Its default scheme, Randomized Progressive Training, draws a start index ``s^k`` and takes
``S^k = {s^k, …, b}`` — the last layers, whose gradients backpropagation computes first.

Here a "layer" is a parameter of the role's param group (a matrix of the ``matrix`` role, in the order
the group lists them: registration order, input side first). The draw at step ``k`` is a pure function
of ``(subset_seed, k)``, so runs are reproducible and a state-dict round trip continues identically
(the step count lives in the optimizer state). Parameters outside ``S^k`` still count the step.
"""

from __future__ import annotations

from collections.abc import Sequence
import torch

from ..core.hparams import HParam
from ..core.transform import Bucket, Chain, Transform

__all__ = ["LayerSubset", "SubsetChain", "subset_chain", "active_layers", "step_generator"]

_MASK = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    # A bijective 64-bit mixer (Steele et al., SplitMix): nearby (seed, step) pairs give unrelated seeds.
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def step_generator(seed: int, step: int, index: int = 0) -> torch.Generator:
    """A CPU generator seeded from ``(seed, step, index)`` alone: no RNG state needs saving."""
    h = _splitmix64(int(seed) & _MASK)
    for k in (int(step), int(index)):
        h = _splitmix64(h ^ (k & _MASK))
    return torch.Generator().manual_seed(h & ((1 << 63) - 1))


def active_layers(seed: int, step: int, n_layers: int, sampling: str, keep_prob: float) -> list[bool]:
    """Which of ``n_layers`` layers (input side first) Drop-Muon updates at ``step``.

    ``"progressive"``: ``s ~ Uniform{0, …, n−1}``, layers ``s…n−1`` are active (the last is always
    active; on average ``(n+1)/2n`` of them). ``"independent"``: each layer active with probability
    ``keep_prob``, independently.
    """
    g = step_generator(seed, step)
    if sampling == "progressive":
        start = int(torch.randint(n_layers, (1,), generator=g))
        return [i >= start for i in range(n_layers)]
    if sampling == "independent":
        u = torch.rand(n_layers, generator=g, dtype=torch.float64)
        return [bool(x < keep_prob) for x in u]
    raise ValueError(f"active_layers: sampling must be 'progressive' or 'independent', got {sampling!r}")


class LayerSubset(Transform):
    """Selects the active layers of a step; must be the first transform of a :class:`SubsetChain`,
    which then runs the rest of the chain on the active parameters only."""

    name = "layer_subset"
    rule = "S ~ D(step);  layers outside S: momentum and weight unchanged"
    hparams = {
        "subset_sampling": HParam("choice", "progressive", "how the active layers are drawn each step",
                                  choices=("progressive", "independent")),
        "keep_prob": HParam("float", 0.5, "probability a layer is active ('independent' sampling only; "
                                          "unitless)", low=0.0, high=1.0, low_open=True),
        "subset_seed": HParam("int", 0, "seed of the layer draws (combined with the step count)", low=0),
    }

    def select(self, b: Bucket) -> list[int]:
        """Positions (in the bucket) of the parameters active at their current step."""
        g = b.group
        order = {id(p): i for i, p in enumerate(g["params"])}
        draws: dict[int, list[bool]] = {}
        keep = []
        for j, (p, step) in enumerate(zip(b.params, b.steps)):
            if step not in draws:
                draws[step] = active_layers(g["subset_seed"], step, len(g["params"]), g["subset_sampling"],
                                            g["keep_prob"])
            if draws[step][order[id(p)]]:
                keep.append(j)
        return keep

    def update(self, b: Bucket) -> None:
        """Nothing: the selection happened in :meth:`SubsetChain.step` before the chain ran."""


class SubsetChain(Chain):
    """A chain whose first transform (a :class:`LayerSubset`) picks the parameters it runs on this step.

    The other parameters of the bucket are left exactly as they are — weights and every transform's
    state — which a transform cannot do from inside a chain (it sees, and would advance, the whole
    bucket).
    """

    def __init__(self, transforms: Sequence[Transform]):
        super().__init__(transforms)
        if not self.transforms or not isinstance(self.transforms[0], LayerSubset):
            raise ValueError("SubsetChain: the first transform must be a LayerSubset")

    def step(self, b: Bucket, *, fused: bool = True) -> None:
        keep = self.transforms[0].select(b)
        if len(keep) != len(b.params):
            if not keep:
                return
            b = Bucket(*([xs[j] for j in keep] for xs in (b.params, b.grads, b.states, b.steps)), b.group)
        super().step(b, fused=fused)


def subset_chain(*transforms: Transform) -> SubsetChain:
    """``chain(LayerSubset(), *transforms)`` that updates only the layers drawn at each step."""
    return SubsetChain((LayerSubset(), *transforms))
