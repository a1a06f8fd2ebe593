"""The equations of the ``pinn_pde`` task: for each, the network's inputs and outputs, the collocation sets, the PDE
residual, the initial/boundary mismatch and the evaluation set with its exact or reference solution.

Inputs are scaled to the unit box: space x ∈ [0, 1]^space and time s = t/T ∈ [0, 1] (heat equations: T = 1).
The loss of the task is mean(residual²) + boundary_weight × ``edge_loss``; residuals are in the units below.

heat2d:     u_t − ν Δu, exact u = exp(−2ν(kπ)² t) sin(kπx) sin(kπy), Dirichlet walls.
heat_nd:    u_t − ν Δu in d dimensions, exact u = exp(−ν(kπ)² t) · (1/d) Σ_i sin(kπ x_i) (a sum, not a product,
            so that the solution does not vanish as d grows); Dirichlet walls with the exact values.
gray_scott: u_s/T − D_u u_xx + u v² − F (1 − u) and v_s/T − D_v v_xx − u v² + (F + κ) v; periodicity of u, v.
bz:         u_s/T − D_u u_xx − R_u/ε and v_s/T − D_v v_xx − (u − v), R_u = u (1 − u) − f v (u − q)/(|u| + q) (the
            |u| keeps the network's residual finite when its u dips below −q; the solution stays ≥ q); periodicity
            of the fields and of their first x-derivatives (scaled by 1/(2π)).
ks:         u_s + T (u u_x/L + u_xx/L² + u_xxxx/L⁴) with L = 32π (the KS residual times T, so that it is O(1));
            periodicity of u and of ∂ᵏu/∂xᵏ / (2π)ᵏ for k = 1, 2, 3.
ks2d:       u_s + T (½|∇u|²/L² + Δu/L² + Δ²u/L⁴) with L = 8π (2-D KS in its gradient form, times T); periodicity
            of u, ∇u/(2π), Δu/(2π)², ∇Δu/(2π)³ across opposite faces.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .base import generator
from .pinn_points import initial_points, unit_points, wall_points
from .pinn_refs import BZ, GS, KS2D_LENGTH, KS_LENGTH, bz_initial, bz_reference, gray_scott_reference, \
    ks2d_initial, ks2d_reference, ks_initial, ks_reference

DEFAULT_HORIZON = {"gray_scott": 5.0, "bz": 2.0, "ks": 10.0, "ks2d": 10.0}


def _grad(y: Tensor, p: Tensor) -> Tensor:
    return torch.autograd.grad(y.sum(), p, create_graph=True)[0]


def _laplacian(g: Tensor, p: Tensor, axes: int) -> Tensor:
    lap = 0
    for d in range(axes):
        lap = lap + _grad(g[:, d], p)[:, d]
    return lap


def _x_derivatives(model: nn.Module, pts: Tensor, order: int) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """(outputs, ∂/∂s per output, [[∂ᵏ/∂xᵏ for k = 1..order] per output]) at (x, s) points; autograd is on."""
    p = pts.detach().clone().requires_grad_(True)
    out = model(p)
    d_s, d_x = [], []
    for j in range(out.shape[1]):
        g = _grad(out[:, j], p)
        d_s.append(g[:, 1])
        chain = [g[:, 0]]
        for _ in range(order - 1):
            chain.append(_grad(chain[-1], p)[:, 0])
        d_x.append(chain)
    return out, d_s, d_x


def _grid_reference(xs: np.ndarray, ts: np.ndarray, fields: list, keep: int) -> tuple[Tensor, Tensor]:
    """The (x, s) grid of every ``keep``-th point × every save, and the fields there (columns), in float32."""
    x, s = np.meshgrid(xs[::keep], ts / ts[-1], indexing="ij")
    grid = torch.tensor(np.stack([x.reshape(-1), s.reshape(-1)], axis=1), dtype=torch.float32)
    ref = torch.tensor(np.stack([f[:, ::keep].T.reshape(-1) for f in fields], axis=1), dtype=torch.float32)
    return grid, ref


def heat2d_exact(p: Tensor, frequency: int, nu: float) -> Tensor:
    """exp(−2ν(kπ)² t) sin(kπx) sin(kπy) at points (x, y, t)."""
    k = frequency * math.pi
    return torch.exp(-2 * nu * k ** 2 * p[:, 2]) * torch.sin(k * p[:, 0]) * torch.sin(k * p[:, 1])


class Heat:
    """heat2d (``nd=False``: the product solution in 2-D) and heat_nd (the mean-of-sines solution in d-D)."""

    def __init__(self, task, nd: bool) -> None:
        self.nd, self.frequency, self.nu = nd, task.frequency, task.diffusivity
        self.k = task.frequency * math.pi
        self.space = task.dim if nd else 2
        self.d_in, self.d_out = self.space + 1, 1

    def exact(self, p: Tensor) -> Tensor:
        if not self.nd:
            return heat2d_exact(p, self.frequency, self.nu)
        x, t = p[:, :-1], p[:, -1]
        return torch.exp(-self.nu * self.k ** 2 * t) * torch.sin(self.k * x).mean(dim=1)

    def points(self, gen: torch.Generator, n: int, nb: int) -> tuple:
        return (unit_points(gen, n, self.d_in), initial_points(gen, nb, self.space),
                wall_points(gen, nb, self.space))

    def residual(self, model: nn.Module, interior: Tensor) -> Tensor:
        p = interior.detach().clone().requires_grad_(True)
        g = _grad(model(p)[:, 0], p)
        return (g[:, self.space] - self.nu * _laplacian(g, p, self.space))[:, None]

    def edge_loss(self, model: nn.Module, initial: Tensor, walls: Tensor) -> Tensor:
        ic = (model(initial)[:, 0] - self.exact(initial)).pow(2).mean()
        target = self.exact(walls) if self.nd else 0
        return ic + (model(walls)[:, 0] - target).pow(2).mean()

    def eval_set(self) -> tuple[Tensor, Tensor]:
        if self.nd:
            grid = torch.rand(4096, self.d_in, generator=generator(0, "heat_nd-eval"))
        else:
            lin = torch.linspace(0, 1, 21)
            x, y, t = torch.meshgrid(lin, lin, torch.linspace(0, 1, 11), indexing="ij")
            grid = torch.stack([x.reshape(-1), y.reshape(-1), t.reshape(-1)], dim=1)
        return grid, self.exact(grid)[:, None]


class Periodic1D:
    """The 1-D periodic systems on [0, 1) × [0, T]: gray_scott, bz (two fields) and ks (one field)."""

    def __init__(self, task, kind: str) -> None:
        self.kind, self.d_in = kind, 2
        self.d_out = 1 if kind == "ks" else 2
        self.horizon = DEFAULT_HORIZON[kind] if task.horizon is None else task.horizon
        self.order = {"gray_scott": 2, "bz": 2, "ks": 4}[kind]  # the highest x-derivative in the residual
        self.matched = {"gray_scott": 1, "bz": 2, "ks": 4}[kind]  # x-derivatives 0..matched-1 made periodic

    def initial(self, x: Tensor) -> Tensor:
        if self.kind == "gray_scott":
            g = torch.exp(-((x - 0.5) / 0.1) ** 2)
            return torch.stack([1 - 0.5 * g, 0.25 * g], dim=1)
        if self.kind == "bz":
            return torch.stack(bz_initial(x), dim=1)
        return ks_initial(x)[:, None]

    def points(self, gen: torch.Generator, n: int, nb: int) -> tuple:
        return unit_points(gen, n, 2), initial_points(gen, nb, 1), unit_points(gen, nb, 1)[:, 0]

    def residual(self, model: nn.Module, interior: Tensor) -> Tensor:
        out, d_s, d_x = _x_derivatives(model, interior, self.order)
        big_t = self.horizon
        if self.kind == "ks":
            u, (u_x, u_xx, _, u_xxxx) = out[:, 0], d_x[0]
            big_l = KS_LENGTH
            return (d_s[0] + big_t * (u * u_x / big_l + u_xx / big_l ** 2 + u_xxxx / big_l ** 4))[:, None]
        u, v = out[:, 0], out[:, 1]
        if self.kind == "gray_scott":
            uvv = u * v * v
            ru = d_s[0] / big_t - GS["du"] * d_x[0][1] + uvv - GS["feed"] * (1 - u)
            rv = d_s[1] / big_t - GS["dv"] * d_x[1][1] - uvv + (GS["feed"] + GS["kill"]) * v
        else:
            react = u * (1 - u) - BZ["f"] * v * (u - BZ["q"]) / (u.abs() + BZ["q"])
            ru = d_s[0] / big_t - BZ["du"] * d_x[0][1] - react / BZ["eps"]
            rv = d_s[1] / big_t - BZ["dv"] * d_x[1][1] - (u - v)
        return torch.stack([ru, rv], dim=1)

    def edge_loss(self, model: nn.Module, initial: Tensor, times: Tensor) -> Tensor:
        ic = (model(initial) - self.initial(initial[:, 0])).pow(2).mean()
        left = torch.stack([torch.zeros_like(times), times], dim=1)
        right = torch.stack([torch.ones_like(times), times], dim=1)
        if self.matched == 1:
            return ic + (model(left) - model(right)).pow(2).mean()
        with torch.enable_grad():
            out_l, _, dx_l = _x_derivatives(model, left, self.matched - 1)
            out_r, _, dx_r = _x_derivatives(model, right, self.matched - 1)
        bc = (out_l - out_r).pow(2).mean()
        for j in range(self.d_out):
            for k, (a, b) in enumerate(zip(dx_l[j], dx_r[j]), start=1):
                bc = bc + ((a - b) / (2 * math.pi) ** k).pow(2).mean() / self.d_out
        return ic + bc

    def eval_set(self) -> tuple[Tensor, Tensor]:
        if self.kind == "gray_scott":
            xs, ts, us, vs = gray_scott_reference(self.horizon)
            return _grid_reference(xs, ts, [us, vs], 2)
        if self.kind == "bz":
            xs, ts, us, vs = bz_reference(self.horizon)
            return _grid_reference(xs, ts, [us, vs], 4)
        xs, ts, us = ks_reference(self.horizon)
        return _grid_reference(xs, ts, [us], 2)


class KS2D:
    """ks2d: u_t + ½|∇u|² + Δu + Δ²u = 0 on [0, 8π)² periodic, inputs (x, y, s) in the unit cube."""

    d_in, d_out = 3, 1

    def __init__(self, task) -> None:
        self.horizon = DEFAULT_HORIZON["ks2d"] if task.horizon is None else task.horizon

    def points(self, gen: torch.Generator, n: int, nb: int) -> tuple:
        return unit_points(gen, n, 3), initial_points(gen, nb, 2), unit_points(gen, nb, 2)

    @staticmethod
    def _jet(model: nn.Module, pts: Tensor) -> tuple:
        """(u, ∇u, u_s, Δu, ∇Δu, Δ²u) in unit-cube coordinates; autograd is on."""
        p = pts.detach().clone().requires_grad_(True)
        u = model(p)[:, 0]
        g = _grad(u, p)
        lap = _laplacian(g, p, 2)
        g_lap = _grad(lap, p)
        return u, g[:, :2], g[:, 2], lap, g_lap[:, :2], _laplacian(g_lap, p, 2)

    def residual(self, model: nn.Module, interior: Tensor) -> Tensor:
        _, grad, u_s, lap, _, bilap = self._jet(model, interior)
        big_l, big_t = KS2D_LENGTH, self.horizon
        return (u_s + big_t * (0.5 * grad.pow(2).sum(dim=1) / big_l ** 2 + lap / big_l ** 2
                               + bilap / big_l ** 4))[:, None]

    def edge_loss(self, model: nn.Module, initial: Tensor, faces: Tensor) -> Tensor:
        ic = (model(initial)[:, 0] - ks2d_initial(initial[:, 0], initial[:, 1])).pow(2).mean()
        a, s = faces[:, 0], faces[:, 1]
        zero, one = torch.zeros_like(a), torch.ones_like(a)
        bc = 0
        for lo, hi in (((zero, a, s), (one, a, s)), ((a, zero, s), (a, one, s))):  # x faces, y faces
            with torch.enable_grad():
                jl = self._jet(model, torch.stack(lo, dim=1))[:5]
                jr = self._jet(model, torch.stack(hi, dim=1))[:5]
            for order, (left, right) in zip((0, 1, None, 2, 3), zip(jl, jr)):
                if order is not None:  # u, ∇u, Δu, ∇Δu match; u_s follows from u
                    bc = bc + ((left - right) / (2 * math.pi) ** order).pow(2).mean()
        return ic + bc / 2

    def eval_set(self) -> tuple[Tensor, Tensor]:
        xs, ts, us = ks2d_reference(self.horizon)
        keep = 2
        x, y, s = np.meshgrid(xs[::keep], xs[::keep], ts / ts[-1], indexing="ij")
        grid = torch.tensor(np.stack([x.reshape(-1), y.reshape(-1), s.reshape(-1)], axis=1), dtype=torch.float32)
        ref = torch.tensor(us[:, ::keep, ::keep].transpose(1, 2, 0).reshape(-1, 1), dtype=torch.float32)
        return grid, ref


def make_equation(task):
    if task.equation == "ks2d":
        return KS2D(task)
    if task.equation in ("heat2d", "heat_nd"):
        return Heat(task, task.equation == "heat_nd")
    return Periodic1D(task, task.equation)


__all__ = ["Heat", "Periodic1D", "KS2D", "make_equation", "DEFAULT_HORIZON", "heat2d_exact"]
