"""Collocation points for the PINN tasks (``pinn`` and ``pinn_pde``): one sampler for both.

Every point set lives in the unit box [0, 1]^dims, space first and (when the problem is time dependent) time last.
Three kinds of sets:

interior: uniform in the box;
initial:  uniform in space at t = 0;
walls:    on the spatial faces of the box: row i sits on the face x_a = s with a = i mod space and
          s = (i div space) mod 2 (so the rows alternate the walls: x=0, x=1 in 1-D; x=0, y=0, x=1, y=1 in 2-D), the
          other coordinates uniform.

Random draws come from a ``torch.Generator``; with ``gen=None`` the sets are deterministic midpoint grids instead
(1-D: (i + ½)/count; in ``dims`` dimensions a side × … × side grid, side = max(2, ⌊count^(1/dims)⌋)).

Two draw orders are in use, and each task keeps its own so that its seeds give the samples they always gave:
``columns=False`` draws one (count, dims) tensor (``pinn_pde``); ``columns=True`` draws one vector of ``count`` per
coordinate and stacks them (``pinn``), and on the walls draws only the coordinates no row pins (with one spatial
dimension: time only). Row layout draws the whole row and then pins the wall coordinate.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["unit_points", "initial_points", "wall_points", "grid_side"]


def grid_side(count: int, dims: int) -> int:
    """max(2, ⌊count^(1/dims)⌋) computed in integers."""
    side = 1
    while (side + 1) ** dims <= count:
        side += 1
    return max(2, side)


def _midpoints(count: int) -> Tensor:
    return (torch.arange(count) + 0.5) / count


def unit_points(gen: torch.Generator | None, count: int, dims: int, *, columns: bool = False) -> Tensor:
    """``count`` points uniform in [0, 1)^dims (shape (count, dims)); the midpoint grid when ``gen`` is None
    (then ``count`` points only in 1-D, side^dims otherwise)."""
    if gen is None:
        if dims == 1:
            return _midpoints(count)[:, None]
        axes = torch.meshgrid(*[_midpoints(grid_side(count, dims))] * dims, indexing="ij")
        return torch.stack([a.reshape(-1) for a in axes], dim=1)
    if columns:
        return torch.stack([torch.rand(count, generator=gen) for _ in range(dims)], dim=1)
    return torch.rand(count, dims, generator=gen)


def initial_points(gen: torch.Generator | None, count: int, space: int, *, columns: bool = False) -> Tensor:
    """``count`` points uniform in [0, 1)^space with a last (time) coordinate 0; shape (count, space + 1).
    With ``gen=None`` (1-D space only): the ``count`` midpoints at t = 0."""
    if gen is None:
        if space != 1:
            raise ValueError("initial_points: the grid form is 1-D in space")
        x = _midpoints(count)[:, None]
    else:
        x = unit_points(gen, count, space, columns=columns)
    return torch.cat([x, torch.zeros(count, 1)], dim=1)


def wall_points(gen: torch.Generator | None, count: int, space: int, *, time: bool = True,
                columns: bool = False) -> Tensor:
    """``count`` points on the spatial faces of [0, 1]^space (× [0, 1) in time when ``time``), alternating the
    faces as the module docstring says; shape (count, space + time)."""
    dims = space + int(time)
    rows = torch.arange(count)
    axis, side = rows % space, (rows // space % 2).float()
    if columns and space == 1:  # every row pins x: draw the other coordinates only
        if dims == 1:
            free = torch.zeros(count, 0)
        elif gen is None:
            free = _midpoints(count)[:, None]
        else:
            free = unit_points(gen, count, dims - 1, columns=True)
        return torch.cat([side[:, None], free], dim=1)
    if gen is None:
        raise ValueError("wall_points: the grid form needs one spatial dimension and columns=True")
    points = unit_points(gen, count, dims, columns=columns)
    points[rows, axis] = side
    return points
