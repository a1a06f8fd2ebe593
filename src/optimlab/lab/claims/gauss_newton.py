"""Gauss–Newton claims: EGN's exact direction and linear rate; gradient-regularised Newton's linear rate.

``egn-exact-linear-rate`` — Korbit, Adeoye, Bemporad, Zanon, "Exact Gauss-Newton Optimization for Training
Deep Neural Networks" (arXiv:2405.14402). Protocol (fixed before the first run), float64:
(a) a 64-16-1 tanh MLP regressing the digit's label/9 from the 8×8 digits (pixels/16), a batch of b = 32
drawn with the seed: relative error of the Duncan–Guttman direction (:func:`~optimlab.linalg.gauss_newton.
egn_direction`) vs the dense d × d solve, λ ∈ {1e-3, 1e-1}; (b) full-batch least squares on 256 such points
(loss (1/n)Σ½(f − y)², d = 1,057 > n): EGN iterations with Armijo backtracking from step 1 and LM damping
λ₀ = 1e-3 (λ ← max(λ/2, 1e-10) when step 1 is accepted, else 2λ), 40 iterations (fast: 4) or until the loss
≤ 1e-8. Verdict per seed: error ≤ 1e-8 and log(loss) vs iteration linear with R² ≥ 0.95 over the run.

``gn-smoothness-linear-rate`` — "Gradient-Normalized Smoothness for Optimization with Approximate Hessians"
(Semenov, Jaggi, Doikov, arXiv:2506.13710). Protocol (fixed before the first run), float64:
ℓ2-regularised (μ = 1e-3) softmax regression on all 1,797 digits (pixels/16, 650 parameters), full batch,
from W = 0; gradient-regularised Newton ``x⁺ = x − (H̃ + λ_k I)⁻¹∇f``, ``λ_k = √(L‖∇f‖)`` with L = 1, with
H̃ = the exact Hessian and H̃ = the empirical Fisher (1/n)Σ gᵢgᵢᵀ + μI; f* from 30 exact Newton steps after
the runs; 40 iterations (fast: 8) or until f − f* ≤ 1e-12. Verdict per seed (seeds permute the samples, which
changes nothing but the summation order): log(f − f*) vs k linear with R² ≥ 0.95 for both H̃.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .base import Claim, Outcome, new_figure, register


def _digits(seed: int, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    from ..tasks.classification import _digits as load

    x_np, y_np = load()
    x, y = torch.tensor(x_np / 16.0, dtype=torch.float64), torch.tensor(y_np, dtype=torch.int64)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    return (x, y) if n is None else (x[:n], y[:n])


def _r2(values: list[float]) -> float:
    ys = np.log(np.asarray(values, dtype=float))
    if len(ys) < 3 or not np.all(np.isfinite(ys)):
        return float("nan")
    k = np.arange(len(ys))
    fit = np.polyval(np.polyfit(k, ys, 1), k)
    ss = float(((ys - ys.mean()) ** 2).sum())
    return 1.0 - float(((ys - fit) ** 2).sum()) / ss if ss > 0 else float("nan")


def _egn_seed(seed: int, iters: int) -> tuple[dict[str, float], list[float]]:
    from ...linalg.gauss_newton import dense_gn_direction, egn_direction, egn_step, output_derivatives, \
        per_sample_jacobian

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    x, labels = _digits(seed, 256)
    y = (labels.to(torch.float64) / 9).unsqueeze(1)
    out, J = per_sample_jacobian(model, x[:32])
    r, Q = output_derivatives("mse", out, y[:32])
    err = max(float((egn_direction(J, Q, r, lam, 32) - (w := dense_gn_direction(J, Q, r, lam, 32))).norm()
                    / w.norm()) for lam in (1e-3, 1e-1))

    def loss_fn() -> torch.Tensor:
        return 0.5 * (model(x) - y).square().sum(1).mean()

    losses, lam = [float(loss_fn())], 1e-3
    for _ in range(iters):
        if losses[-1] <= 1e-8:
            break
        info = egn_step(model, "mse", x, y, loss_fn, damp=lam)
        lam = max(lam / 2, 1e-10) if info["armijo"] and info["step"] == 1.0 else 2 * lam
        losses.append(info["loss_after"])
    return {"direction_rel_error": err, "final_loss": losses[-1], "r2_log_loss": _r2(losses),
            "iterations": float(len(losses) - 1)}, losses


def _egn_experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    iters = 4 if fast else 40
    per_seed, passed, curves = {}, {}, {}
    for s in seeds:
        per_seed[s], curves[s] = _egn_seed(s, iters)
        v = per_seed[s]
        passed[s] = v["direction_rel_error"] <= 1e-8 and v["r2_log_loss"] >= 0.95
    fig, axes = new_figure(1)
    for s in seeds:
        axes[0].semilogy(curves[s], "o-", ms=3, label=f"seed {s}")
    axes[0].set(xlabel="EGN iteration", ylabel="full-batch loss", title="EGN, least squares, n=256")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    text = "; ".join(f"seed {s}: error {per_seed[s]['direction_rel_error']:.2e}, R² {per_seed[s]['r2_log_loss']:.3f}, "
                     f"final loss {per_seed[s]['final_loss']:.2e} after {per_seed[s]['iterations']:g}" for s in seeds)
    verdict = "inconclusive" if any(math.isnan(per_seed[s]["r2_log_loss"]) for s in seeds) else None
    return Outcome(per_seed, passed, text + " (rules: error ≤ 1e-8, R² ≥ 0.95)", fig,
                   {"curves": {str(s): curves[s] for s in seeds}}, verdict)


EGN = register(Claim(
    id="egn-exact-linear-rate",
    paper="Exact Gauss-Newton Optimization for Training Deep Neural Networks (Korbit, Adeoye, Bemporad, Zanon)",
    arxiv="2405.14402",
    statement="The Duncan–Guttman mini-batch-size solve gives the exact GGN/LM direction, and EGN converges at a "
              "linear rate under mild assumptions.",
    optimizers=(),
    protocol="64-16-1 tanh MLP on digits (label/9), fp64: direction vs dense solve on a batch of 32 (λ 1e-3, "
             "1e-1); full-batch least squares on 256 points, EGN with Armijo and LM damping, 40 iterations "
             "(fast 4) or loss ≤ 1e-8",
    rule="direction relative error ≤ 1e-8 and log(loss) linear in the iteration with R² ≥ 0.95",
    margin="error ≤ 1e-8; R² ≥ 0.95",
    experiment=_egn_experiment,
))


def _softmax_problem(seed: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    x, y = _digits(seed)
    return torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1), y, 1e-3


def _f(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, mu: float) -> torch.Tensor:
    W = w.view(x.shape[1], 10)
    return nn.functional.cross_entropy(x @ W, y) + 0.5 * mu * (W[:-1] ** 2).sum()


def _derivs(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, mu: float, kind: str):
    W = w.view(x.shape[1], 10)
    p = torch.softmax(x @ W, 1)
    R = p - nn.functional.one_hot(y, 10).to(torch.float64)
    reg = torch.zeros_like(W)
    reg[:-1] = mu * W[:-1]
    g = (x.T @ R / len(x) + reg).reshape(-1)
    mask = torch.ones_like(W)
    mask[-1] = 0  # the bias row is not penalised
    if kind == "hessian":  # (1/n)Σ xxᵀ ⊗ (diag p − ppᵀ), in w's (feature, class) order, + the penalty
        n, f = x.shape
        Z = (x.unsqueeze(2) * p.unsqueeze(1)).reshape(n, -1)  # z_i = x_i ⊗ p_i
        H = -(Z.T @ Z)
        for j in range(10):  # + Σ_i p_ij x_i x_iᵀ on the (j, j) blocks
            H.view(f, 10, f, 10)[:, j, :, j] += (x * p[:, j:j + 1]).T @ x
        H = H / n + torch.diag(mu * mask.reshape(-1))
    else:  # empirical Fisher of the data term, plus the penalty's curvature
        per = (x.unsqueeze(2) * R.unsqueeze(1)).reshape(len(x), -1)
        H = per.T @ per / len(x) + torch.diag(mu * mask.reshape(-1))
    return g, H


def _grn_run(x, y, mu, kind: str, iters: int, L: float = 1.0) -> list[torch.Tensor]:
    w = torch.zeros(x.shape[1] * 10, dtype=torch.float64)
    ws = [w]
    for _ in range(iters):
        g, H = _derivs(w, x, y, mu, kind)
        lam = math.sqrt(L * float(g.norm()))
        w = w - torch.linalg.solve(H + lam * torch.eye(len(w), dtype=torch.float64), g)
        ws.append(w)
    return ws


def _gn_experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    iters = 8 if fast else 40
    per_seed, passed, curves = {}, {}, {}
    for s in seeds:
        x, y, mu = _softmax_problem(s)
        runs = {k: _grn_run(x, y, mu, k, iters) for k in ("hessian", "fisher")}
        w = runs["hessian"][-1]
        for _ in range(30):  # f*: Newton from the best point
            g, H = _derivs(w, x, y, mu, "hessian")
            w = w - torch.linalg.solve(H, g)
        f_star = float(_f(w, x, y, mu))
        per_seed[s] = {}
        for k, ws in runs.items():
            gaps = [float(_f(v, x, y, mu)) - f_star for v in ws]
            gaps = [max(gp, 0.0) for gp in gaps]
            cut = next((i for i, gp in enumerate(gaps) if gp <= 1e-12), len(gaps))
            curves[(s, k)] = gaps
            per_seed[s][f"r2_{k}"] = _r2(gaps[:cut])
            per_seed[s][f"final_gap_{k}"] = gaps[-1]
            per_seed[s][f"iters_used_{k}"] = float(cut)
        passed[s] = all(per_seed[s][f"r2_{k}"] >= 0.95 for k in runs)
    fig, axes = new_figure(1)
    for k in ("hessian", "fisher"):
        axes[0].semilogy([max(v, 1e-16) for v in curves[(seeds[0], k)]], "o-", ms=3, label=f"H̃ = {k}")
    axes[0].set(xlabel="iteration k", ylabel="f − f*", title="gradient-regularised Newton, softmax regression")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    text = "; ".join(f"seed {s}: " + ", ".join(f"{k}={v:.3g}" for k, v in per_seed[s].items()) for s in seeds)
    verdict = "inconclusive" if any(math.isnan(v) for s in seeds for v in per_seed[s].values()) else None
    return Outcome(per_seed, passed, text + " (rule: R² ≥ 0.95 for both)", fig, {}, verdict)


GN = register(Claim(
    id="gn-smoothness-linear-rate",
    paper="Gradient-Normalized Smoothness for Optimization with Approximate Hessians",
    arxiv="2506.13710",
    statement="Global linear rates for logistic and softmax regression with approximate Hessians.",
    optimizers=(),
    protocol="ℓ2 (1e-3) softmax regression on 1,797 digits, fp64, from 0: x⁺ = x − (H̃ + √(L‖∇f‖)I)⁻¹∇f, L = 1, "
             "H̃ = exact Hessian and empirical Fisher + μI; 40 iterations (fast 8) or f − f* ≤ 1e-12",
    rule="log(f − f*) linear in k with R² ≥ 0.95 for both H̃",
    margin="R² ≥ 0.95",
    experiment=_gn_experiment,
))
