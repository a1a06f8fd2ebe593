"""Population methods: N copies ("particles") of a model's parameters, evaluated together.

:class:`Population` stacks every trainable parameter of a model along a new leading dimension of size N and
evaluates ``loss(model, batch)`` for all particles at once with ``torch.func.vmap`` over
``torch.func.functional_call`` (the model is called through a wrapper module, so a loss that reads
parameters directly, like the test-function tasks' ``model.x``, works too). No gradients are taken: these
methods use function values only. :class:`CBO` is consensus-based optimization on a population; its literal
transcription is :func:`optimlab.reference.population.cbo_step`.

    pop = Population(model, loss, n=200, spread=5.12)       # particles uniform in x0 ± 5.12
    cbo = CBO(pop, alpha=1e3, lam=1.0, sigma=1.0, dt=0.01)
    for step in range(2000):
        cbo.step(batch)
    cbo.write_back()                                         # the consensus point into the model
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

__all__ = ["Population", "CBO", "consensus"]


class _LossModule(nn.Module):
    def __init__(self, model: nn.Module, loss: Callable[[nn.Module, Any], Tensor]):
        super().__init__()
        self.model = model
        self._loss = loss

    def forward(self, batch: Any) -> Tensor:
        return self._loss(self.model, batch)


class Population:
    """N particles of ``model``'s trainable parameters, as one flat ``(N, D)`` tensor ``x``.

    ``init``: ``"uniform"`` (each entry uniform in ``p ± spread``) or ``"normal"`` (``p + spread·N(0, 1)``),
    around the model's current parameters; ``generator`` makes it reproducible. ``values(batch)`` is the
    loss of every particle (shape ``(N,)``); ``write(i_or_vector)`` copies a particle (or any flat vector)
    into the model.
    """

    def __init__(self, model: nn.Module, loss: Callable[[nn.Module, Any], Tensor], n: int, *, spread: float = 1.0,
                 init: str = "uniform", generator: torch.Generator | None = None):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"Population: n must be a positive int, got {n!r}")
        if init not in ("uniform", "normal"):
            raise ValueError(f"Population: init must be 'uniform' or 'normal', got {init!r}")
        self.model = model
        self.names = [k for k, p in model.named_parameters() if p.requires_grad]
        if not self.names:
            raise ValueError("Population: the model has no trainable parameters")
        self.params = [dict(model.named_parameters())[k] for k in self.names]
        self.shapes = [p.shape for p in self.params]
        self._wrapper = _LossModule(model, loss)
        center = torch.cat([p.detach().reshape(-1) for p in self.params])
        noise = (torch.rand((n, center.numel()), generator=generator, dtype=center.dtype) * 2 - 1
                 if init == "uniform" else torch.randn((n, center.numel()), generator=generator, dtype=center.dtype))
        self.x = center + spread * noise.to(center.device)
        self.evals = 0

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def _unflatten(self, row: Tensor) -> dict[str, Tensor]:
        out, i = {}, 0
        for k, s in zip(self.names, self.shapes):
            m = s.numel()
            out["model." + k] = row[i:i + m].view(s)
            i += m
        return out

    def values(self, batch: Any = ()) -> Tensor:
        """f of every particle, shape (N,): one vmapped, gradient-free call."""
        def one(row: Tensor) -> Tensor:
            return functional_call(self._wrapper, self._unflatten(row), (batch,))

        with torch.no_grad():
            out = vmap(one, randomness="different")(self.x)
        self.evals += self.n
        return out

    def write(self, vector: Tensor) -> None:
        """Copy a flat parameter vector (a particle, the consensus point) into the model."""
        with torch.no_grad():
            for p, (k, v) in zip(self.params, self._unflatten(vector).items()):
                p.copy_(v)


def consensus(x: Tensor, f: Tensor, alpha: float) -> Tensor:
    """v_α = Σ_i x_i e^{−α f_i} / Σ_i e^{−α f_i}, computed with the minimum subtracted (no overflow)."""
    w = torch.softmax(-alpha * (f - f.min()), dim=0)
    return w @ x


class CBO:
    """Consensus-based optimization with anisotropic noise (Carrillo, Jin, Li, Zhu 2021; analysed as a
    stochastic relaxation of gradient descent by Riedl, Klock, Geldhauser, Fornasier, "Gradient is All You
    Need?", arXiv:2306.09778).

    Update (Euler–Maruyama), per particle i with ξ_i ~ N(0, I)::

        v_α = Σ_i x_i e^{−α f(x_i)} / Σ_i e^{−α f(x_i)}
        x_i ← x_i − λ Δt (x_i − v_α) + σ √Δt (x_i − v_α) ⊙ ξ_i

    Defaults: alpha 1e3 (inverse loss units), lam 1.0, sigma 1.0 (unitless), dt 0.01 (time per step); the
    background's typical ranges are α 30–1e5, σ 0.5–5, Δt 0.01–0.1 (anisotropic noise needs 2λ > σ² to
    concentrate). N f-evaluations per step, no gradient.
    """

    def __init__(self, population: Population, *, alpha: float = 1e3, lam: float = 1.0, sigma: float = 1.0,
                 dt: float = 0.01, generator: torch.Generator | None = None):
        for k, v in (("alpha", alpha), ("lam", lam), ("sigma", sigma), ("dt", dt)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0 or v != v or v == float("inf"):
                raise ValueError(f"CBO: {k} must be a finite number >= 0, got {v!r}")
        self.pop, self.alpha, self.lam, self.sigma, self.dt = population, alpha, lam, sigma, dt
        self.generator = generator
        self.v: Tensor | None = None
        self.f: Tensor | None = None

    def step(self, batch: Any = ()) -> Tensor:
        """One step; returns the consensus point v_α (computed from the particles before the move)."""
        x = self.pop.x
        self.f = self.pop.values(batch)
        self.v = consensus(x, self.f, self.alpha)
        diff = x - self.v
        xi = torch.randn(x.shape, generator=self.generator, dtype=x.dtype).to(x.device)
        self.pop.x = x - self.lam * self.dt * diff + self.sigma * self.dt**0.5 * diff * xi
        return self.v

    def write_back(self, batch: Any = ()) -> Tensor:
        """The consensus of the current particles, written into the model."""
        v = consensus(self.pop.x, self.pop.values(batch), self.alpha)
        self.pop.write(v)
        return v
