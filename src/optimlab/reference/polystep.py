"""PolyStep (Le, "Training Non-Differentiable Networks via Optimal Transport", arXiv:2605.01928), transcribed
literally particle by particle and vertex by vertex (float64, plain Python loops), for parity tests.

One step on a flat parameter vector x given, per particle b, its projection columns P_b (n × d), its rotation
R_b (d × d) and the template's unit vertices v_j::

    C_bj = f(x + P_b·(probe·R_b v_j))                    every cost at the same x
    W_bj = e^{−(C_bj − min_k C_bk)/ε} / Σ_k e^{−(C_bk − min_k C_bk)/ε}
    x   ← x + Σ_b P_b·(lr·Σ_j W_bj R_b v_j)               the barycentric projection, all particles at once
"""

from __future__ import annotations

import math

import torch

__all__ = ["simplex_vertices", "polystep_step"]


def simplex_vertices(d: int) -> list[torch.Tensor]:
    """The regular simplex's d+1 unit vertices in R^d, centred: e_k − 1/(d+1) in R^{d+1}, written in the
    orthonormal basis of the hyperplane Σ = 0 obtained by Gram–Schmidt on its first d such vectors."""
    pts = [torch.tensor([(1.0 if i == k else 0.0) - 1.0 / (d + 1) for i in range(d + 1)], dtype=torch.float64)
           for k in range(d + 1)]
    basis: list[torch.Tensor] = []
    for k in range(d):
        w = pts[k].clone()
        for q in basis:
            w = w - (w @ q) * q
        basis.append(w / w.norm())
    out = []
    for pt in pts:
        v = torch.tensor([float(pt @ q) for q in basis], dtype=torch.float64)
        out.append(v / v.norm())
    return out


def polystep_step(f, x: torch.Tensor, blocks: list[torch.Tensor], rotations: list[torch.Tensor],
                  verts: list[torch.Tensor], *, lr: float, probe: float, eps: float) -> torch.Tensor:
    """One step from the flat vector ``x``; ``blocks[b]`` is P_b (n × d), ``rotations[b]`` is R_b."""
    move = torch.zeros_like(x)
    for P, R in zip(blocks, rotations):
        us = [R @ v for v in verts]
        costs = [float(f(x + P @ (probe * u))) for u in us]
        cmin = min(costs)
        ws = [math.exp(-(c - cmin) / eps) for c in costs]
        total = sum(ws)
        bary = sum((w / total) * u for w, u in zip(ws, us))
        move = move + P @ (lr * bary)
    return x + move
