"""Physics-informed networks beyond 1-D (coverage row J3): heat in 2 and d dimensions, and the periodic 1-D
Gray–Scott, Belousov–Zhabotinsky (Oregonator) and Kuramoto–Sivashinsky equations, and 2-D Kuramoto–Sivashinsky.

The PDE benchmark suite of the seeds names high-dimensional heat, Gray–Scott, Belousov–Zhabotinsky and 2-D
Kuramoto–Sivashinsky. At CPU scale this task has

heat2d:     u_t = ν Δu on (0, 1)² × (0, 1], exact solution exp(−2ν(kπ)² t) sin(kπx) sin(kπy);
heat_nd:    u_t = ν Δu on (0, 1)^d × (0, 1], exact solution exp(−ν(kπ)² t) (1/d) Σ sin(kπ x_i) (``dim`` = d);
gray_scott: Pearson's Gray–Scott system on the periodic interval (finite-difference reference);
bz:         the two-variable Oregonator of Tyson and Fife on the periodic interval (finite-difference reference);
ks:         u_t + u u_X + u_XX + u_XXXX = 0 on X ∈ [0, 32π) periodic, u(X, 0) = cos(X/16)(1 + sin(X/16)) (Kassam and
            Trefethen's problem; ETDRK4 pseudo-spectral reference), over a horizon before the flow turns chaotic;
ks2d:       the seed's 2-D KS at small scale, u_t + ½|∇u|² + Δu + Δ²u = 0 on [0, 8π)² periodic (the gradient form),
            u(x, y, 0) = cos(2πx)(1 + sin(2πy)) in unit coordinates; ETDRK4 pseudo-spectral reference (32² modes).
            The box is small (a few unstable modes) so that a width-32 network has a chance; its residual needs the
            biharmonic (6 autograd passes per point).

The references, coefficients and residual forms are in :mod:`.pinn_refs` and :mod:`.pinn_equations`; collocation
sampling is shared with the 1-D ``pinn`` task (:mod:`.pinn_points`).

Loss: mean squared PDE residuals at interior collocation points plus ``boundary_weight`` × the mean squared
initial and boundary mismatch (heat: Dirichlet; the 1-D systems: periodicity).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import PDETask, TaskInstance, check_choice, check_float, check_int, generator, init_module_
from .blocks import MLP
from .pinn_equations import DEFAULT_HORIZON, heat2d_exact, make_equation  # noqa: F401  (heat2d_exact re-exported)
from .pinn_refs import GS, gray_scott_reference  # noqa: F401  (re-exported: the task's public names)

EQUATIONS = ("heat2d", "heat_nd", "gray_scott", "bz", "ks", "ks2d")
MAX_DIM = 64


@dataclass(frozen=True, kw_only=True)
class PINNSuite(PDETask):
    """Options: equation ("heat2d" | "heat_nd" | "gray_scott" | "bz" | "ks" | "ks2d"), frequency (k of the heat
    equations, 1), diffusivity (ν of the heat equations, 0.05), dim (d of heat_nd, 5, at most 64), horizon (T of
    the time-dependent systems; None: gray_scott 5.0, bz 2.0, ks 10.0, ks2d 10.0), width (32), depth (hidden tanh layers, 3), num_points
    (interior collocation points, 256; the initial and boundary sets have num_points // 4 each), boundary_weight
    (1.0).

    Metrics: eval_loss (the PDE loss on a fixed point set), rel_l2 (‖u_net − u‖/‖u‖ on an evaluation set:
    21 × 21 × 11 grid for heat2d, 4096 fixed random points for heat_nd, 64 points × 26 times for the 1-D systems,
    16 × 16 points × 11 times for ks2d; all fields; primary), max_error.
    """

    name = "pinn_pde"
    eval_cost = 2.0
    description = ("physics-informed MLP for heat (2-D, d-D), Gray-Scott, Belousov-Zhabotinsky or Kuramoto-Sivashinsky "
                   "(1-D, 2-D)")
    references = (
        "Raissi, Perdikaris, Karniadakis, 'Physics-informed neural networks', J. Comput. Phys. 378, 2019",
        "Pearson, 'Complex patterns in a simple system', Science 261, 1993 (Gray-Scott)",
        "Tyson, Fife, 'Target patterns in a realistic model of the Belousov-Zhabotinskii reaction', J. Chem. Phys. "
        "73, 1980 (two-variable Oregonator)",
        "Kassam, Trefethen, 'Fourth-order time-stepping for stiff PDEs', SIAM J. Sci. Comput. 26, 2005 (KS, ETDRK4)",
    )

    equation: str = "heat2d"
    frequency: int = 1
    diffusivity: float = 0.05
    dim: int = 5
    horizon: float | None = None
    width: int = 32
    depth: int = 3
    num_points: int = 256
    boundary_weight: float = 1.0

    def __post_init__(self) -> None:
        t = self.name
        check_choice(t, "equation", self.equation, EQUATIONS)
        check_int(t, "frequency", self.frequency, minimum=1)
        check_float(t, "diffusivity", self.diffusivity, minimum=0.0, strict_min=True)
        check_int(t, "dim", self.dim, minimum=1, maximum=MAX_DIM)
        if self.horizon is not None:
            check_float(t, "horizon", self.horizon, minimum=0.0, strict_min=True)
            if self.equation not in DEFAULT_HORIZON:
                raise ValueError(f"{t}: horizon applies to {sorted(DEFAULT_HORIZON)} only (the heat equations run "
                                 f"on t in [0, 1]), got horizon={self.horizon!r} with equation={self.equation!r}")
        check_int(t, "width", self.width, minimum=1)
        check_int(t, "depth", self.depth, minimum=1)
        check_int(t, "num_points", self.num_points, minimum=8)
        check_float(t, "boundary_weight", self.boundary_weight, minimum=0.0)

    def _default_batch_size(self) -> int | None:
        return None

    def _targets(self) -> dict[str, float]:
        return {"rel_l2": 0.1}

    def _build(self, seed: int) -> "PINNSuiteInstance":
        return PINNSuiteInstance(self, seed)


class PINNSuiteInstance(TaskInstance):
    _tensor_attrs = ("grid", "reference")

    def __init__(self, task: PINNSuite, seed: int) -> None:
        self.full_batch = True
        self.equation = make_equation(task)
        self.grid, self.reference = self.equation.eval_set()
        model = MLP(self.equation.d_in, [task.width] * task.depth, self.equation.d_out, "tanh")
        init_module_(model, generator(seed, "init"))
        super().__init__(task, seed, model, role_hints={"head": "head"})

    def exact(self, p: Tensor) -> Tensor:
        """The exact solution of heat2d or heat_nd at points (x..., t); the 1-D systems have a reference on
        ``grid`` (``reference``) instead."""
        if not hasattr(self.equation, "exact"):
            raise ValueError(f"pinn_pde: {self.task.equation!r} has no closed-form solution; use .grid and .reference")
        return self.equation.exact(p)

    def _points(self, gen: torch.Generator) -> tuple:
        return self.equation.points(gen, self.task.num_points, self.task.num_points // 4)

    def _make_batch(self, step: int) -> tuple:
        return self._points(generator(self.seed, "points", 0))

    def residual(self, model: nn.Module, interior: Tensor) -> Tensor:
        """The PDE residual at interior points (rows: points, columns: equations)."""
        with torch.enable_grad():  # input derivatives need autograd even under no_grad
            return self.equation.residual(model, interior)

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        interior, *edges = batch
        pde = self.residual(model, interior).pow(2).mean()
        return pde + self.task.boundary_weight * self.equation.edge_loss(model, *edges)

    def _evaluate(self, model: nn.Module) -> dict:
        eval_loss = self.loss(model, tuple(t.to(self.device) for t in self._points(generator(0, "eval-points"))))
        err = model(self.grid) - self.reference
        return {"eval_loss": eval_loss.detach(), "rel_l2": err.norm() / self.reference.norm(),
                "max_error": err.abs().max()}
