"""The convex program whose optima are the global optima of a weight-decayed two-layer ReLU network.

Training f(x) = Σ_j α_j (w_jᵀx̃)_+ (x̃ = (x, 1): the bias is the last weight) on
    ½ Σ_i (f(x_i) − y_i)² + (β/2) Σ_j (‖w_j‖² + α_j²)
has the same optimal value as the constrained group lasso over the activation patterns D = diag(1[X̃g ≥ 0])
(Pilanci & Ergen, "Neural Networks are Convex Regularizers", arXiv:2002.10553; the optimal sets: Mishkin &
Pilanci, "Optimal Sets and Solution Paths of ReLU Networks", arXiv:2306.00119):

    min_{v, u}  ½ ‖Σ_D D X̃ (v_D − u_D) − y‖² + β Σ_D (‖v_D‖ + ‖u_D‖)
    s.t.        (2D − I) X̃ v_D ≥ 0,  (2D − I) X̃ u_D ≥ 0,

as soon as the width is at least the number of non-zero blocks of a solution; a neuron is read off a block
as w = v/√‖v‖, α = ±√‖v‖. Every network maps to a feasible point with no larger objective, so the convex
optimum is a lower bound on the training objective at any width.

``activation_patterns`` enumerates every pattern for inputs in R^(d−1) with d = 3 exactly (each cell of the
central arrangement {X̃g = 0} ⊂ R³ is adjacent to an extreme ray ±x̃_i × x̃_k, and the cells around a ray are
reached by stepping off it in the four sign quadrants), and by sampling otherwise. The cone projections
Π_K of a block (used by the dual) is computed exactly in R³ by comparing the projections onto every face of the
cone. ``solve`` works on the n-dimensional dual and returns a certified bracket [dual value, primal value] of
the optimum.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["activation_patterns", "ConvexSolution", "solve", "network_objective", "network_from_solution",
           "patterns_of_network"]


def activation_patterns(x: np.ndarray, samples: int = 20000, seed: int = 0) -> np.ndarray:
    """Distinct non-zero patterns 1[X̃g ≥ 0] (rows of a bool array) of the lifted inputs x (n × d)."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    rng = np.random.default_rng(seed)
    gs = [rng.standard_normal((samples, d))]
    if d == 3:
        for i, k in itertools.combinations(range(n), 2):
            ray = np.cross(x[i], x[k])
            if np.linalg.norm(ray) < 1e-12:
                continue
            dual = np.linalg.pinv(np.stack([x[i], x[k]]))  # columns b_i, b_k: x_iᵀb_i = 1, x_kᵀb_i = 0
            eps = 1e-7 * np.linalg.norm(ray) / max(np.linalg.norm(dual), 1e-300)
            for sign in (1.0, -1.0):
                for si, sk in itertools.product((1.0, -1.0), repeat=2):
                    gs.append((sign * ray + eps * (si * dual[:, 0] + sk * dual[:, 1]))[None])
    pats = np.unique(np.concatenate(gs) @ x.T >= 0, axis=0)
    return pats[pats.any(axis=1)]


def _project_cones(z: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Euclidean projection of each z[b] (∈ R³) onto {v : rows[b] v ≥ 0} (rows[b]: n × 3), exactly."""
    bsz, n, _ = rows.shape
    rr = np.einsum("bnk,bnk->bn", rows, rows)
    cands = [z[:, None, :], np.zeros_like(z)[:, None, :]]
    cands.append(z[:, None, :] - (np.einsum("bnk,bk->bn", rows, z) / rr)[..., None] * rows)  # planes
    ii, kk = np.triu_indices(n, 1)
    lines = np.cross(rows[:, ii], rows[:, kk])
    ll = np.einsum("bpk,bpk->bp", lines, lines)
    ok = ll > 1e-20
    coef = np.where(ok, np.einsum("bpk,bk->bp", lines, z) / np.where(ok, ll, 1.0), 0.0)
    cands.append(coef[..., None] * lines)
    cands = np.concatenate(cands, axis=1)  # b × c × 3
    slack = np.einsum("bck,bnk->bcn", cands, rows)
    scale = 1e-10 * (np.linalg.norm(cands, axis=2, keepdims=True) + 1e-12) * np.sqrt(rr)[:, None, :]
    feasible = (slack >= -scale).all(axis=2)
    dist = np.where(feasible, ((cands - z[:, None, :]) ** 2).sum(axis=2), np.inf)
    return cands[np.arange(bsz), dist.argmin(axis=1)]


@dataclass
class ConvexSolution:
    """objective (of the primal point ``blocks``); lower_bound (the dual value of a feasible dual point: the
    optimum lies in [lower_bound, objective]); blocks (P × 2 × d: v_D and u_D per pattern); patterns."""

    objective: float
    lower_bound: float
    blocks: np.ndarray
    patterns: np.ndarray

    @property
    def gap(self) -> float:
        return self.objective - self.lower_bound

    @property
    def active(self) -> int:
        """Non-zero blocks: the smallest width that attains the optimum through this solution."""
        return int((np.linalg.norm(self.blocks, axis=2) > 1e-10).sum())


def _block_maps(x: np.ndarray, patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(maps, rows): maps[b] (n × d) is D X̃ for v-blocks and −D X̃ for u-blocks (order v_1, u_1, v_2, ...);
    rows[b] (n × d) the cone constraints (2D − I) X̃."""
    dx = patterns[:, :, None] * x[None]
    maps = np.stack([dx, -dx], axis=1).reshape(-1, *x.shape)
    rows = np.repeat((2.0 * patterns - 1.0)[:, :, None] * x[None], 2, axis=0)
    return maps, rows


def solve(x: np.ndarray, y: np.ndarray, beta: float, patterns: np.ndarray) -> ConvexSolution:
    """Solve the constrained group lasso through its n-dimensional dual

        max_λ  yᵀλ − ½‖λ‖²   s.t.  ‖Π_{K_b}(A_bᵀλ)‖ ≤ β for every block b

    (SLSQP; ½‖Π_K(s)‖² is C¹ with gradient Π_K(s)), then rebuild a primal point: a block can be non-zero only
    where its constraint is active, and then points along Π_{K_b}(A_bᵀλ) (the optimality conditions), so the
    primal reduces to min_{t ≥ 0} ½‖Σ_b t_b A_b ĝ_b − y‖² + β Σ_b t_b (L-BFGS-B). Returns the primal value
    and the dual value of the dual point scaled to feasibility: a certified bracket of the optimum.
    """
    from scipy.optimize import minimize

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    maps, rows = _block_maps(x, patterns)

    def proj(lam: np.ndarray) -> np.ndarray:
        return _project_cones(np.einsum("bnk,n->bk", maps, lam), rows)

    cons = {"type": "ineq",
            "fun": lambda lam: beta ** 2 - (proj(lam) ** 2).sum(axis=1),
            "jac": lambda lam: -2.0 * np.einsum("bnk,bk->bn", maps, proj(lam))}
    res = minimize(lambda lam: (0.5 * lam @ lam - y @ lam, lam - y), np.zeros_like(y), jac=True,
                   method="SLSQP", constraints=[cons], options={"maxiter": 1000, "ftol": 1e-16})
    lam = res.x
    norms = np.linalg.norm(proj(lam), axis=1)
    lam_f = lam * min(1.0, beta / max(float(norms.max()), 1e-300))
    lower = float(y @ lam_f - 0.5 * lam_f @ lam_f)
    pdir = proj(lam)
    active = np.flatnonzero(norms >= beta * (1.0 - 1e-4))
    dirs = pdir[active] / norms[active, None]
    cols = np.einsum("bnk,bk->nb", maps[active], dirs)  # n × |active|
    fit = minimize(lambda t: (0.5 * float(((cols @ t - y) ** 2).sum()) + beta * t.sum(),
                              cols.T @ (cols @ t - y) + beta), np.zeros(len(active)), jac=True,
                   method="L-BFGS-B", bounds=[(0.0, None)] * len(active),
                   options={"maxiter": 10000, "ftol": 1e-16, "gtol": 1e-13})
    blocks = np.zeros((len(maps), x.shape[1]))
    blocks[active] = fit.x[:, None] * dirs
    z = blocks.reshape(len(patterns), 2, x.shape[1])
    pred = np.einsum("bnk,bk->n", maps, blocks)
    objective = 0.5 * float(((pred - y) ** 2).sum()) + beta * float(np.linalg.norm(blocks, axis=1).sum())
    return ConvexSolution(objective, lower, z, patterns)


def network_from_solution(sol: ConvexSolution) -> tuple[np.ndarray, np.ndarray]:
    """(W: width × d, α: width) of the network built from the non-zero blocks (w = v/√‖v‖, α = ±√‖v‖)."""
    ws, alphas = [], []
    for block in sol.blocks:
        for vec, sign in ((block[0], 1.0), (block[1], -1.0)):
            norm = float(np.linalg.norm(vec))
            if norm > 1e-12:
                ws.append(vec / math.sqrt(norm))
                alphas.append(sign * math.sqrt(norm))
    d = sol.blocks.shape[2]
    return np.array(ws).reshape(-1, d), np.array(alphas)


def network_objective(w: np.ndarray, alpha: np.ndarray, x: np.ndarray, y: np.ndarray, beta: float) -> float:
    """½ Σ (Σ_j α_j (w_jᵀx̃_i)_+ − y_i)² + (β/2) Σ_j (‖w_j‖² + α_j²) with lifted inputs x (n × d)."""
    pred = np.maximum(x @ w.T, 0.0) @ alpha
    return 0.5 * float(((pred - y) ** 2).sum()) + 0.5 * beta * float((w ** 2).sum() + (alpha ** 2).sum())


def patterns_of_network(w: np.ndarray, alpha: np.ndarray, x: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """The distinct non-zero activation patterns of the neurons with α ≠ 0 (the sub-sampled convex program)."""
    keep = np.abs(alpha) > tol
    if not keep.any():
        return np.zeros((0, x.shape[0]), dtype=bool)
    pats = np.unique(x @ w[keep].T >= 0, axis=1).T
    pats = np.unique(pats, axis=0)
    return pats[pats.any(axis=1)]
