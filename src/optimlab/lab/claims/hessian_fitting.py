"""Fitting a preconditioner to Hessian-vector pairs: Lie-group and SPD-manifold steps converge linearly,
Euclidean steps sublinearly (seed C15: "Stochastic Hessian Fitting on Lie Group", Li).

All methods minimise the PSGD criterion ``c(P) = E[hᵀ P h + vᵀ P⁻¹ v]`` over pairs ``(v, h = H v)``,
``v ~ N(0, I)``, whose minimiser is ``P* = H⁻¹``; every step is normalised by a lower bound of the spectral
norm of its direction (as PSGD normalises its own), so the step sizes are comparable. With exact HVPs the
stochastic gradient vanishes at ``P*`` for every ``v`` (``P⁻¹ v vᵀ P⁻¹ = H v vᵀ H``): the noise is the
random probe, and linear convergence is possible; what separates the methods is the geometry.

* Euclidean: ``P ← sym(P − μ ∇ / ‖∇‖₂⁻)``, ``∇ = h hᵀ − P⁻¹ v vᵀ P⁻¹``;
* SPD manifold (affine-invariant metric): ``P ← P^{1/2} exp(−μ S / ‖S‖₂⁻) P^{1/2}``, ``S = P^{1/2} ∇ P^{1/2}``;
* Lie group (PSGD, upper-triangular ``Q``, ``P = Qᵀ Q``): ``Q ← Q − μ triu(A Aᵀ − B Bᵀ) Q / ‖A Aᵀ + B Bᵀ‖₂⁻``,
  ``A = Q h``, ``B = Q⁻ᵀ v`` (the one-factor case of :func:`optimlab.reference.psgd.psgd_fit`).

The paper's "common closed form" is not specified in what we have; it is left out (stated in the evidence).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .base import Claim, Outcome, new_figure, register

FAST = {"dim": 8, "iters": 300, "grid": (0.1, 0.3, 0.9)}
FULL = {"dim": 50, "iters": 2000, "grid": (0.03, 0.1, 0.3, 0.6, 0.9)}
KAPPA = 1e3
# μ, every method. Widened from (0.01, 0.03, 0.1, 0.3) after the first fast run, where every method's best μ
# sat at 0.3 (the grid did not bracket it; verdict inconclusive); μ < 1 keeps the normalised Lie step invertible.
GRID = FULL["grid"]
EVERY = 10
FLOOR = 1e-6  # fitting error below which the linear-fit window ends (float64 round-off sits far below)


def _lb(T: torch.Tensor) -> torch.Tensor:
    from optimlab.transforms.psgd import norm_lower_bound

    return norm_lower_bound(T).reshape(())


def _sqrtm(P: torch.Tensor) -> torch.Tensor:
    lam, V = torch.linalg.eigh(P)
    return (V * lam.clamp_min(0).sqrt()) @ V.T


def _fit(method: str, H: torch.Tensor, mu: float, iters: int, gen: torch.Generator) -> list[float]:
    d = H.shape[0]
    target = torch.linalg.inv(H)
    err = lambda P: float(torch.linalg.matrix_norm(P - target) / torch.linalg.matrix_norm(target))  # noqa: E731
    P = torch.eye(d, dtype=torch.float64)
    Q = torch.eye(d, dtype=torch.float64)
    out = [err(P)]
    for t in range(1, iters + 1):
        v = torch.randn(d, 1, generator=gen, dtype=torch.float64)
        h = H @ v
        if method == "lie":
            A, B = Q @ h, torch.linalg.solve_triangular(Q.T, v, upper=False)
            T1, T2 = A @ A.T, B @ B.T
            Q = Q - mu * torch.triu(T1 - T2) @ Q / _lb(T1 + T2)
            P = Q.T @ Q
        else:
            Pinv_v = torch.linalg.solve(P, v)
            G = h @ h.T - Pinv_v @ Pinv_v.T
            if method == "euclidean":
                P = P - mu * G / _lb(G @ G).sqrt()
                P = 0.5 * (P + P.T)
            else:  # spd
                R = _sqrtm(P)
                S = R @ G @ R
                P = R @ torch.linalg.matrix_exp(-mu * S / _lb(S @ S).sqrt()) @ R
                P = 0.5 * (P + P.T)
        if t % EVERY == 0:
            e = err(P)
            out.append(e if math.isfinite(e) else float("inf"))
    return out


def _window(curve: list[float]) -> int:
    """Number of recorded points before the error first falls below FLOOR (or all of them)."""
    for i, e in enumerate(curve):
        if e < FLOOR:
            return max(i, 3)
    return len(curve)


def _r2_linear(curve: list[float]) -> tuple[float, float]:
    """R² and slope (per iteration) of least squares of log e on t over the pre-floor window."""
    n = _window(curve)
    y = np.log(np.asarray(curve[:n]))
    x = np.arange(n, dtype=float) * EVERY
    if not np.isfinite(y).all() or n < 3:
        return float("nan"), float("nan")
    xc, yc = x - x.mean(), y - y.mean()
    slope = float(xc @ yc / (xc @ xc))
    resid = yc - slope * xc
    return 1.0 - float(resid @ resid) / float(yc @ yc), slope


def _flattening(curve: list[float]) -> float:
    """|slope of log e over the last quarter| / |slope over the first quarter| (< 0.5: flattening)."""
    y = np.log(np.asarray(curve))
    q = max(len(y) // 4, 2)
    first = (y[q] - y[0]) / q
    last = (y[-1] - y[-1 - q]) / q
    return float(abs(last) / abs(first)) if first != 0 else float("nan")


def _problem(dim: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    lam = torch.logspace(0, -math.log10(KAPPA), dim, dtype=torch.float64)
    return (Q * lam) @ Q.T


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = FAST if fast else FULL
    per_seed, passed, curves, edges = {}, {}, {}, []
    for seed in seeds:
        H = _problem(cfg["dim"], seed)
        best = {}
        for method in ("euclidean", "spd", "lie"):
            grid = cfg["grid"]
            runs = {mu: _fit(method, H, mu, cfg["iters"], torch.Generator().manual_seed(1000 + seed)) for mu in grid}
            mu = min(runs, key=lambda m: (runs[m][-1] if math.isfinite(runs[m][-1]) else math.inf))
            best[method] = (mu, runs[mu])
            if mu in (grid[0], grid[-1]) and not (method != "euclidean" and runs[mu][-1] < FLOOR):
                edges.append(f"seed {seed}: {method} μ={mu:g} at the edge of {list(grid)}")
        r2 = {m: _r2_linear(best[m][1]) for m in best}
        flat = _flattening(best["euclidean"][1])
        per_seed[seed] = {
            **{f"{m}_final_error": float(best[m][1][-1]) for m in best},
            **{f"{m}_mu": float(best[m][0]) for m in best},
            **{f"{m}_r2_linear": r2[m][0] for m in best},
            **{f"{m}_log_rate_per_iter": r2[m][1] for m in best},
            "euclidean_slope_last/first_quarter": flat,
        }
        passed[seed] = bool(r2["lie"][0] >= 0.95 and r2["spd"][0] >= 0.95 and flat < 0.5
                            and best["lie"][1][-1] < best["euclidean"][1][-1]
                            and best["spd"][1][-1] < best["euclidean"][1][-1])
        curves[seed] = {m: (best[m][0], best[m][1]) for m in best}
    fig, (ax,) = new_figure(1)
    for i, seed in enumerate(seeds):
        for m, ls in (("euclidean", ":"), ("spd", "--"), ("lie", "-")):
            mu, c = curves[seed][m]
            ax.semilogy(np.arange(len(c)) * EVERY, c, ls, color=f"C{i}", label=f"{m} μ={mu:g}, seed {seed}")
    ax.axhline(FLOOR, color="grey", lw=0.8)
    ax.set(xlabel="fitting iteration", ylabel="‖P − H⁻¹‖_F / ‖H⁻¹‖_F",
           title=f"d = {cfg['dim']}, κ = {KAPPA:g}, one probe per iteration")
    ax.legend(fontsize=6)
    fig.tight_layout()
    mean = lambda k: float(np.mean([v[k] for v in per_seed.values()]))  # noqa: E731
    explanation = (f"d = {cfg['dim']}, κ = {KAPPA:g}, {cfg['iters']} iterations, μ tuned on {list(cfg['grid'])}: final error "
                   f"Lie {mean('lie_final_error'):.2e} (R² of log-linear fit {mean('lie_r2_linear'):.3f}), SPD "
                   f"{mean('spd_final_error'):.2e} (R² {mean('spd_r2_linear'):.3f}), Euclidean "
                   f"{mean('euclidean_final_error'):.2e} (last/first-quarter slope ratio "
                   f"{mean('euclidean_slope_last/first_quarter'):.2f}). The closed-form baseline is not specified "
                   f"in the material we have and is left out.")
    if edges:
        explanation += " Inconclusive: " + "; ".join(edges)
    return Outcome(per_seed, passed, explanation, fig,
                   {"config": {**cfg, "kappa": KAPPA, "every": EVERY, "floor": FLOOR},
                    "curves": {str(s): {m: {"mu": mu, "error": c} for m, (mu, c) in v.items()}
                               for s, v in curves.items()}},
                   grid_edges=edges)


HESSIAN_FITTING = register(Claim(
    id="hessian-fitting-lie-linear",
    paper="Stochastic Hessian Fitting on Lie Group (Li; seed C15)",
    arxiv="2402.04553 (companion PSGD paper; the seed's own id is not in our copy)",
    statement="Euclidean gradient descent fits the Hessian (P → H⁻¹ from Hessian-vector pairs) only sublinearly; "
              "gradient descent on the SPD manifold and on certain Lie groups converges linearly.",
    optimizers=("psgd_kron",),
    protocol="H = Q diag(λ) Qᵀ, λ log-spaced over κ = 1e3, d = 50 (fast 8); pairs (v, Hv), v ~ N(0, I), one per "
             "iteration, 2000 iterations (fast 300), P₀ = I; criterion E[hᵀPh + vᵀP⁻¹v]; Euclidean, SPD-manifold "
             "(affine-invariant exp map) and Lie-group (triangular Q) steps, each normalised by a spectral-norm lower "
             "bound, step μ tuned per method on {0.03, 0.1, 0.3, 0.6, 0.9} (fast {0.1, 0.3, 0.9}; lowest final error); error ‖P − H⁻¹‖_F/‖H⁻¹‖_F "
             "every 10 iterations.",
    rule="per seed: R² ≥ 0.95 of log error vs iteration (until the error first falls below 1e-6) for both Lie and "
         "SPD; the Euclidean curve flattens (|slope| over the last quarter < 0.5 × over the first quarter); and "
         "both end below the Euclidean error. A tuned μ at a grid edge (unless the run reached 1e-6) makes it "
         "inconclusive.",
    margin="R² ≥ 0.95; slope ratio < 0.5",
    experiment=_experiment,
))
