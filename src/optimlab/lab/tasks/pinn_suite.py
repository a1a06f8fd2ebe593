"""Physics-informed networks beyond 1-D: the 2-D heat equation and the 1-D Gray–Scott reaction–diffusion system.

The PDE benchmark suite of the seeds (coverage row J3) names high-dimensional heat, Gray–Scott,
Belousov–Zhabotinsky and 2-D Kuramoto–Sivashinsky; this task covers the first two at CPU scale (the other two
need much longer horizons and stiffer solvers than a unit-test budget allows).

heat2d:     u_t = ν (u_xx + u_yy) on (0, 1)² × (0, 1], u = 0 on the boundary, u(x, y, 0) = sin(kπx) sin(kπy);
            exact solution u = exp(−2ν(kπ)² t) sin(kπx) sin(kπy).
gray_scott: u_t = D_u u_xx − u v² + F (1 − u),  v_t = D_v v_xx + u v² − (F + κ) v on the periodic interval
            [0, 1) × (0, T], u(x, 0) = 1 − ½ g(x), v(x, 0) = ¼ g(x), g = exp(−((x − ½)/0.1)²); the reference is a
            finite-difference solution (128 points, explicit Euler, dt = 1e-3, float64) computed at build time.
            The network takes (x, t/T) and returns (u, v).

Loss: mean squared PDE residuals at interior collocation points plus ``boundary_weight`` × the mean squared
initial and boundary mismatch (heat2d: Dirichlet; gray_scott: periodicity u(0, t) = u(1, t) of both fields).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .base import Task, TaskInstance, check_choice, check_float, check_int, generator, init_module_
from .blocks import MLP

EQUATIONS = ("heat2d", "gray_scott")
GS = {"du": 2e-3, "dv": 1e-3, "feed": 0.04, "kill": 0.06}


@dataclass(frozen=True, kw_only=True)
class PINNSuite(Task):
    """Options: equation ("heat2d" | "gray_scott"), frequency (k of heat2d, 1), diffusivity (ν of heat2d, 0.05),
    horizon (T of gray_scott, 5.0), width (32), depth (hidden tanh layers, 3), num_points (interior
    collocation points, 256; the initial and boundary sets have num_points // 4 each), boundary_weight (1.0).

    Metrics: eval_loss (the PDE loss on a fixed point set), rel_l2 (‖u_net − u‖/‖u‖ on an evaluation grid:
    21 × 21 × 11 for heat2d, 64 × 26 for gray_scott with both fields; primary), max_error.
    """

    name = "pinn_pde"
    eval_cost = 2.0
    description = "physics-informed MLP for the 2-D heat equation or the 1-D Gray-Scott system"
    references = (
        "Raissi, Perdikaris, Karniadakis, 'Physics-informed neural networks', J. Comput. Phys. 378, 2019",
        "Pearson, 'Complex patterns in a simple system', Science 261, 1993 (Gray-Scott)",
    )

    equation: str = "heat2d"
    frequency: int = 1
    diffusivity: float = 0.05
    horizon: float = 5.0
    width: int = 32
    depth: int = 3
    num_points: int = 256
    boundary_weight: float = 1.0

    def __post_init__(self) -> None:
        t = self.name
        check_choice(t, "equation", self.equation, EQUATIONS)
        check_int(t, "frequency", self.frequency, minimum=1)
        check_float(t, "diffusivity", self.diffusivity, minimum=0.0, strict_min=True)
        check_float(t, "horizon", self.horizon, minimum=0.0, strict_min=True)
        check_int(t, "width", self.width, minimum=1)
        check_int(t, "depth", self.depth, minimum=1)
        check_int(t, "num_points", self.num_points, minimum=8)
        check_float(t, "boundary_weight", self.boundary_weight, minimum=0.0)

    def _metrics(self):
        return ("eval_loss", "rel_l2", "max_error")

    def _primary_metric(self) -> str:
        return "rel_l2"

    def _default_steps(self) -> int:
        return 3000

    def _default_batch_size(self) -> int | None:
        return None

    def _adamw(self):
        return {"lr": 3e-3, "weight_decay": 0.0}

    def _targets(self) -> dict[str, float]:
        return {"rel_l2": 0.1}

    def _build(self, seed: int) -> "PINNSuiteInstance":
        return PINNSuiteInstance(self, seed)


def gray_scott_reference(horizon: float, points: int = 128, dt: float = 1e-3, saves: int = 26) -> tuple:
    """(x grid, save times, u, v) of the finite-difference Gray–Scott solution (arrays saves × points)."""
    x = np.arange(points) / points
    g = np.exp(-((x - 0.5) / 0.1) ** 2)
    u, v = 1.0 - 0.5 * g, 0.25 * g
    dx2 = (1.0 / points) ** 2
    steps = int(round(horizon / dt))
    save_at = {int(round(i * steps / (saves - 1))): i for i in range(saves)}
    us, vs = np.zeros((saves, points)), np.zeros((saves, points))
    for n in range(steps + 1):
        if n in save_at:
            us[save_at[n]], vs[save_at[n]] = u, v
        if n == steps:
            break
        lap_u = (np.roll(u, 1) - 2 * u + np.roll(u, -1)) / dx2
        lap_v = (np.roll(v, 1) - 2 * v + np.roll(v, -1)) / dx2
        uvv = u * v * v
        u, v = (u + dt * (GS["du"] * lap_u - uvv + GS["feed"] * (1 - u)),
                v + dt * (GS["dv"] * lap_v + uvv - (GS["feed"] + GS["kill"]) * v))
    return x, np.linspace(0.0, horizon, saves), us, vs


def heat2d_exact(p: Tensor, frequency: int, nu: float) -> Tensor:
    """exp(−2ν(kπ)² t) sin(kπx) sin(kπy) at points (x, y, t)."""
    k = frequency * math.pi
    return torch.exp(-2 * nu * k ** 2 * p[:, 2]) * torch.sin(k * p[:, 0]) * torch.sin(k * p[:, 1])


class PINNSuiteInstance(TaskInstance):
    _tensor_attrs = ("grid", "reference")

    def __init__(self, task: PINNSuite, seed: int) -> None:
        self.full_batch = True
        if task.equation == "heat2d":
            lin = torch.linspace(0, 1, 21)
            x, y, t = torch.meshgrid(lin, lin, torch.linspace(0, 1, 11), indexing="ij")
            self.grid = torch.stack([x.reshape(-1), y.reshape(-1), t.reshape(-1)], dim=1)
            self.reference = heat2d_exact(self.grid, task.frequency, task.diffusivity)[:, None]
            d_in, d_out = 3, 1
        else:
            xs, ts, us, vs = gray_scott_reference(task.horizon)
            keep = slice(None, None, 2)  # 64 of the 128 points
            x, t = np.meshgrid(xs[keep], ts / task.horizon, indexing="ij")
            self.grid = torch.tensor(np.stack([x.reshape(-1), t.reshape(-1)], axis=1), dtype=torch.float32)
            self.reference = torch.tensor(np.stack([us[:, keep].T.reshape(-1), vs[:, keep].T.reshape(-1)], axis=1),
                                          dtype=torch.float32)
            d_in, d_out = 2, 2
        model = MLP(d_in, [task.width] * task.depth, d_out, "tanh")
        init_module_(model, generator(seed, "init"))
        super().__init__(task, seed, model, role_hints={"head": "head"})

    def exact(self, p: Tensor) -> Tensor:
        """The heat2d solution at points (x, y, t)."""
        return heat2d_exact(p, self.task.frequency, self.task.diffusivity)

    def _points(self, gen: torch.Generator) -> tuple:
        n, nb = self.task.num_points, self.task.num_points // 4
        if self.task.equation == "heat2d":
            interior = torch.rand(n, 3, generator=gen)
            initial = torch.cat([torch.rand(nb, 2, generator=gen), torch.zeros(nb, 1)], dim=1)
            side = torch.rand(nb, 3, generator=gen)
            axis = torch.arange(nb) % 2  # alternate the x and y walls, at 0 and 1
            side[torch.arange(nb), axis] = (torch.arange(nb) // 2 % 2).float()
            return interior, initial, side
        interior = torch.rand(n, 2, generator=gen)
        initial = torch.stack([torch.rand(nb, generator=gen), torch.zeros(nb)], dim=1)
        times = torch.rand(nb, generator=gen)
        return interior, initial, times

    def _make_batch(self, step: int) -> tuple:
        return self._points(generator(self.seed, "points", 0))

    def _derivatives(self, model: nn.Module, pts: Tensor) -> tuple[Tensor, Tensor, list, list]:
        """(points, outputs, first derivatives per output, second derivatives in space per output)."""
        with torch.enable_grad():
            p = pts.detach().clone().requires_grad_(True)
            out = model(p)
            firsts, seconds = [], []
            space = 2 if self.task.equation == "heat2d" else 1
            for j in range(out.shape[1]):
                (g,) = torch.autograd.grad(out[:, j].sum(), p, create_graph=True)
                lap = 0
                for d in range(space):
                    (h,) = torch.autograd.grad(g[:, d].sum(), p, create_graph=True)
                    lap = lap + h[:, d]
                firsts.append(g)
                seconds.append(lap)
        return p, out, firsts, seconds

    def _residual(self, model: nn.Module, interior: Tensor) -> Tensor:
        p, out, g, lap = self._derivatives(model, interior)
        if self.task.equation == "heat2d":
            return (g[0][:, 2] - self.task.diffusivity * lap[0])[:, None]
        u, v = out[:, 0], out[:, 1]
        uvv = u * v * v
        big_t = self.task.horizon
        ru = g[0][:, 1] / big_t - GS["du"] * lap[0] + uvv - GS["feed"] * (1 - u)
        rv = g[1][:, 1] / big_t - GS["dv"] * lap[1] - uvv + (GS["feed"] + GS["kill"]) * v
        return torch.stack([ru, rv], dim=1)

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        interior, initial, edge = batch
        pde = self._residual(model, interior).pow(2).mean()
        if self.task.equation == "heat2d":
            ic = (model(initial)[:, 0] - self.exact(initial)).pow(2).mean()
            bc = model(edge)[:, 0].pow(2).mean()
        else:
            g = torch.exp(-((initial[:, 0] - 0.5) / 0.1) ** 2)
            target = torch.stack([1 - 0.5 * g, 0.25 * g], dim=1)
            ic = (model(initial) - target).pow(2).mean()
            left = torch.stack([torch.zeros_like(edge), edge], dim=1)
            right = torch.stack([torch.ones_like(edge), edge], dim=1)
            bc = (model(left) - model(right)).pow(2).mean()
        return pde + self.task.boundary_weight * (ic + bc)

    def _evaluate(self, model: nn.Module) -> dict:
        eval_loss = self.loss(model, tuple(t.to(self.device) for t in self._points(generator(0, "eval-points"))))
        err = model(self.grid) - self.reference
        return {"eval_loss": eval_loss.detach(), "rel_l2": err.norm() / self.reference.norm(),
                "max_error": err.abs().max()}
