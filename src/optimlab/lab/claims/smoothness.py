"""Claims on rates and implicit biases: β-normalized GD and RMSProp on generalized-smooth functions,
gradient regularization (exact and finite-difference) on diagonal linear networks, accelerated SGD's
subspace bias, and regularized Muon's energy dissipation. Protocols fixed before the first run."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ._loop import run
from .base import Claim, Outcome, new_figure, register
from .figures import rate_figure, seed_bars


def _slope(eps: Sequence[float], iters: Sequence[float]) -> float:
    if not all(math.isfinite(i) and i > 0 for i in iters):
        return math.nan
    return float(np.polyfit(np.log(eps), np.log(iters), 1)[0])


def _iterations(name: str, x0: torch.Tensor, f: Callable[[torch.Tensor], torch.Tensor], eps: float, cap: int,
                hp: dict[str, Any], noise: Callable[[torch.Tensor, int], torch.Tensor] | None = None) -> float:
    """Steps of ``name`` until the true ‖∇f‖ ≤ eps (inf if not within ``cap`` or diverged)."""
    import optimlab

    x = torch.nn.Parameter(x0.clone())
    opt = optimlab.create([x], name, nonfinite="ignore", **hp)
    for t in range(cap):
        def closure(t: int = t) -> torch.Tensor:
            opt.zero_grad()
            loss = f(x)
            loss.backward()
            return loss

        loss = closure()
        gn = float(x.grad.norm())
        if not math.isfinite(gn) or not math.isfinite(float(loss.detach())):
            return math.inf
        if gn <= eps:
            return float(t)
        if noise is not None:
            x.grad.add_(noise(x.grad, t))
        opt.step(lambda loss=loss: loss)
    return math.inf


# ------------------------------------------------------------------ ngd-generalized-smooth-rate
NGD_EPS = (1e-1, 3e-2, 1e-2, 3e-3)


def _gs(x: torch.Tensor) -> torch.Tensor:
    return (x ** 4).sum() + torch.exp(x[0])


def _ngd_exp(fast: bool, seeds: Sequence[int]) -> Outcome:
    eps_list = NGD_EPS[:3] if fast else NGD_EPS
    per_seed, passed, rows = {}, {}, {}
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        x0 = 10.0 * (1 + 0.1 * torch.randn(10, generator=g, dtype=torch.float64))
        iters = [_iterations("normalized_gd", x0, _gs, e, int(200 / e), {"lr": e}) for e in eps_list]
        gd = [_iterations("sgd", x0, _gs, e, 2000, {"lr": e}) for e in eps_list]
        slope = _slope(eps_list, iters)
        gd_fails = all(not math.isfinite(v) for v in gd)
        per_seed[s] = {"slope": slope, **{f"ngd_iters_eps{e:g}": v for e, v in zip(eps_list, iters)},
                       "gd_diverged_or_stalled_every_eps": float(gd_fails)}
        passed[s] = bool(math.isfinite(slope) and -2.5 <= slope <= -1.5 and gd_fails)
        rows[s] = iters
    fig = rate_figure(eps_list, rows, seeds, "NGD iterations to ‖∇f‖ ≤ ε", "ngd-generalized-smooth-rate")
    expl = ("f = Σx⁴ + exp(x₁), d = 10, x₀ ≈ 10; NGD (β = 1) with step length lr = ε; log-log slope of iterations "
            "vs ε: " + "; ".join(f"seed {s}: {v['slope']:.3g} (GD at lr = ε failed at every ε: "
                                   f"{bool(v['gd_diverged_or_stalled_every_eps'])})" for s, v in per_seed.items())
            + "; rule slope ∈ [−2.5, −1.5]")
    return Outcome(per_seed, passed, expl, fig)


register(Claim(
    id="ngd-generalized-smooth-rate",
    paper="Generalized-Smooth Nonconvex Optimization is As Efficient As Smooth Nonconvex Optimization (Chen, Zhou, "
          "Liang, Lu, ICML 2023)",
    arxiv="2303.02854",
    statement="Normalized GD reaches an ε-stationary point of an α-symmetric generalized-smooth function in "
              "O(ε⁻²) iterations.",
    optimizers=("normalized_gd", "sgd"),
    protocol="f = Σ x_i⁴ + exp(x_1), d = 10, start 10·(1 + 0.1 N(0, 1)) from the seed, fp64; normalized_gd (β = 1, "
             "one tensor: the global norm) with lr = ε; iterations to ‖∇f‖ ≤ ε (cap 200/ε) for ε ∈ {1e-1, 3e-2, "
             "1e-2, 3e-3} (fast: the first three); GD (sgd) at lr = ε from the same start, 2,000 steps.",
    rule="log-log slope of iterations vs ε in [−2.5, −1.5], and GD at lr = ε diverges or does not reach ε at every "
         "ε, every seed",
    margin="slope window ±0.5 around −2",
    experiment=_ngd_exp,
))


# ------------------------------------------------------------------ rmsprop-generalized-smooth
RMS_EPS = (1e-1, 3e-2, 1e-2)


def _rms_exp(fast: bool, seeds: Sequence[int]) -> Outcome:
    cap = 20_000 if fast else 200_000
    per_seed, passed, rows = {}, {}, {}
    f = lambda x: (x ** 4).sum()  # noqa: E731
    for s in seeds:
        g = torch.Generator().manual_seed(s)

        def noise(grad: torch.Tensor, t: int) -> torch.Tensor:  # variance a + b‖∇f‖², a = 0.01, b = 0.1
            var = 0.01 + 0.1 * float(grad.square().sum())
            return math.sqrt(var / grad.numel()) * torch.randn(grad.shape, generator=g, dtype=grad.dtype)

        x0 = torch.ones(10, dtype=torch.float64)
        iters = [_iterations("rmsprop", x0, f, e, cap, {"lr": e / 10}, noise) for e in RMS_EPS]
        slope = _slope(RMS_EPS, iters)
        per_seed[s] = {"slope": slope, **{f"iters_eps{e:g}": v for e, v in zip(RMS_EPS, iters)}}
        passed[s] = bool(math.isfinite(slope) and slope >= -4.5)
        rows[s] = iters
    fig = rate_figure(RMS_EPS, rows, seeds, "RMSProp iterations to ‖∇f‖ ≤ ε", "rmsprop-generalized-smooth")
    expl = ("f = Σx⁴ (d = 10, x₀ = 1), gradient noise variance 0.01 + 0.1‖∇f‖², RMSProp lr = ε/10; slopes: "
            + "; ".join(f"seed {s}: {v['slope']:.3g}" for s, v in per_seed.items()) + "; rule slope ≥ −4.5 "
            "(an upper bound: consistency only)")
    return Outcome(per_seed, passed, expl, fig)


register(Claim(
    id="rmsprop-generalized-smooth",
    paper="Convergence Guarantees for RMSProp and Adam in Generalized-smooth Non-convex Optimization with Affine "
          "Noise Variance",
    arxiv="2404.01436",
    statement="RMSProp reaches ε-stationarity in O(ε⁻⁴) iterations under (L0, L1)-smoothness and affine noise "
              "variance (an upper bound).",
    optimizers=("rmsprop",),
    protocol="f = Σ x_i⁴, d = 10, x₀ = 1, fp64; stochastic gradient ∇f + ξ, ξ ~ N(0, (0.01 + 0.1‖∇f‖²)/d · I) from "
             "the seed; RMSProp (torch defaults, α 0.99) with lr = ε/10; iterations until the true ‖∇f‖ ≤ ε for ε ∈ "
             "{1e-1, 3e-2, 1e-2} (cap 200,000; fast 20,000).",
    rule="log-log slope of iterations vs ε ≥ −4.5 (growth no faster than ε⁻⁴), every seed",
    margin="0.5 on the exponent",
    experiment=_rms_exp,
    full_seeds=(0, 1, 2, 3, 4),
))


# ------------------------------------------------------------------ fd-gr-rich-regime
def _diag_net(seed: int) -> tuple[Callable[[], tuple], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n, d = 40, 100
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    w_star = torch.zeros(d, dtype=torch.float64)
    w_star[torch.randperm(d, generator=g)[:5]] = 1.0
    y = X @ w_star

    def build() -> tuple:
        u = torch.nn.Parameter(torch.full((d,), 0.5, dtype=torch.float64))
        v = torch.nn.Parameter(torch.full((d,), 0.5, dtype=torch.float64))
        loss = lambda t: 0.5 * (X @ (u * u - v * v) - y).square().mean()  # noqa: E731
        return [u, v], loss, lambda: float(loss(0).detach())

    return build, w_star


def _fdgr_exp(fast: bool, seeds: Sequence[int]) -> Outcome:
    from ...optimizers.reevaluated import exact_gr

    steps = 500 if fast else 5000
    hp = {"lr": 0.01, "gr_gamma": 0.05}
    per_seed, passed = {}, {}
    for s in seeds:
        build, w_star = _diag_net(s)
        row = {}
        for label, name, extra, graph in (("gd", "sgd", {"lr": 0.01}, False), ("gr", exact_gr(), hp, True),
                                          ("fd_gr", "fd_gr", {**hp, "gr_h": 0.05}, False)):
            params, step_loss, final = build()
            row[f"{label}_loss"] = run(params, name, steps, step_loss, final, extra, create_graph=graph)[0]
            u, v = params
            row[f"{label}_l1"] = float((u * u - v * v).detach().abs().sum())
        row["w_star_l1"] = float(w_star.abs().sum())
        per_seed[s] = row
        passed[s] = row["gd_l1"] > row["gr_l1"] > row["fd_gr_l1"]
    fig, axes = new_figure(1)
    seed_bars(axes[0], seeds, {k: [per_seed[s][f"{k}_l1"] for s in seeds] for k in ("gd", "gr", "fd_gr")}, 0.27)
    axes[0].set(ylabel="‖w‖₁", title="fd-gr-rich-regime")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    expl = (f"diagonal linear net w = u² − v² (init 0.5), 5-sparse regression n = 40, d = 100, {steps} GD steps, "
            "lr 0.01, γ = 0.05, h = 0.05; ‖w‖₁ (final loss): " + "; ".join(
                f"seed {s}: GD {v['gd_l1']:.4g} ({v['gd_loss']:.2g}), GR {v['gr_l1']:.4g} ({v['gr_loss']:.2g}), "
                f"FD-GR {v['fd_gr_l1']:.4g} ({v['fd_gr_loss']:.2g})" for s, v in per_seed.items())
            + "; rule GD > GR > FD-GR")
    return Outcome(per_seed, passed, expl, fig)


register(Claim(
    id="fd-gr-rich-regime",
    paper="Understanding Gradient Regularization in Deep Learning: Efficient Finite-Difference Computation and "
          "Implicit Bias (Karakida, Takase, Hayase, Osawa, ICML 2023)",
    arxiv="2210.02720",
    statement="In diagonal linear networks gradient regularization biases toward the rich regime (smaller ‖w‖₁), and "
              "the finite-difference computation strengthens this.",
    optimizers=("sgd", "fd_gr"),
    protocol="w = u⊙u − v⊙v, u = v = 0.5 at init; X ~ N(0, 1) 40 × 100, w* 5-sparse (ones), y = Xw*; full-batch, "
             "5,000 steps (fast 500), lr 0.01; GD vs exact GR (double backward, exact_gr) vs FD-GR (h = 0.05), "
             "γ = 0.05 for both; ‖w‖₁ at the end.",
    rule="‖w‖₁: GD > GR > FD-GR, every seed",
    margin="strict orderings",
    experiment=_fdgr_exp,
))


# ------------------------------------------------------------------ asgd-subspace-bias
def _asgd_run(name: str, hp: dict, seed: int, steps: int, sigma: float, start_error: bool) -> tuple[float, float]:
    d = 200
    lam = torch.arange(1, d + 1, dtype=torch.float64) ** -2.0
    g = torch.Generator().manual_seed(seed)
    w_star = torch.randn(d, generator=g, dtype=torch.float64)
    xs = torch.randn(steps, d, generator=g, dtype=torch.float64) * lam.sqrt()
    noise = sigma * torch.randn(steps, generator=g, dtype=torch.float64)
    w = torch.nn.Parameter(w_star + (1.0 if start_error else 0.0))
    ys = xs @ w_star + noise
    tail = max(steps // 10, 1)
    top, bottom = [], []

    def watch(opt: Any, loss: float) -> None:
        e = (w.detach() - w_star) ** 2 * lam / 2
        top.append(float(e[:10].sum()))
        bottom.append(float(e[10:].sum()))

    run([w], name, steps, lambda t: 0.5 * (xs[t] @ w - ys[t]) ** 2, lambda: 0.0, hp, on_step=watch)
    if len(top) < steps:
        return math.inf, math.inf
    return float(np.mean(top[-tail:])), float(np.mean(bottom[-tail:]))


def _asgd_exp(fast: bool, seeds: Sequence[int]) -> Outcome:
    steps = 500 if fast else 2000
    lr = 0.3  # ≈ 0.5 / tr(H)
    cfg = {"sgd": ("sgd", {"lr": lr}), "asgd": ("accelerated_sgd", {"lr": lr})}
    per_seed, passed = {}, {}
    for s in seeds:
        row = {}
        for k, (name, hp) in cfg.items():
            row[f"{k}_bias_top"], row[f"{k}_bias_bottom"] = _asgd_run(name, hp, s, steps, 0.0, True)
            vt, vb = _asgd_run(name, hp, s, steps, 0.1, False)
            row[f"{k}_variance"] = vt + vb
        per_seed[s] = row
        passed[s] = (row["asgd_bias_bottom"] < row["sgd_bias_bottom"] and row["asgd_bias_top"] > row["sgd_bias_top"]
                     and row["asgd_variance"] > row["sgd_variance"])
    keys = [f"{m}_{q}" for q in ("bias_top", "bias_bottom", "variance") for m in ("sgd", "asgd")]
    fig, axes = new_figure(1)
    seed_bars(axes[0], seeds, {k: [max(per_seed[s][k], 1e-30) for s in seeds] for k in keys}, 0.13)
    axes[0].set(yscale="log", title="asgd-subspace-bias")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    expl = (f"linear regression d = 200, λ_k = k⁻², batch 1, {steps} steps, lr 0.3 (ASGD: AccSGD defaults κ 1000, "
            "ξ 10); excess risk (mean of the last 10% of iterates): " + "; ".join(
                f"seed {s}: bias top SGD {v['sgd_bias_top']:.3g} / ASGD {v['asgd_bias_top']:.3g}, bottom "
                f"{v['sgd_bias_bottom']:.3g} / {v['asgd_bias_bottom']:.3g}, variance {v['sgd_variance']:.3g} / "
                f"{v['asgd_variance']:.3g}" for s, v in per_seed.items()))
    return Outcome(per_seed, passed, expl, fig)


register(Claim(
    id="asgd-subspace-bias",
    paper="Risk Bounds of Accelerated SGD for Overparameterized Linear Regression",
    arxiv="2311.14222",
    statement="ASGD has faster bias decay than SGD in the small-eigenvalue subspace, slower in the large-eigenvalue "
              "subspace, and a larger variance error.",
    optimizers=("sgd", "accelerated_sgd"),
    protocol="streaming linear regression d = 200, x ~ N(0, diag(k⁻²)), batch 1, 2,000 steps (fast 500), lr 0.3 "
             "for both (ASGD's short step; κ 1000, ξ 10); bias: σ = 0 from w* + 1; variance: σ = 0.1 from w*; excess "
             "risk ½Σλ_k e_k² split into the top-10 and the other eigendirections, averaged over the last 10% of "
             "the iterates.",
    rule="bias_bottom(ASGD) < bias_bottom(SGD), bias_top(ASGD) > bias_top(SGD), variance(ASGD) > variance(SGD), "
         "every seed",
    margin="strict orderings",
    experiment=_asgd_exp,
))


# ------------------------------------------------------------------ move-on-muon-dissipation
def _muon_exp(fast: bool, seeds: Sequence[int]) -> Outcome:
    import optimlab
    from ...diagnostics.hamiltonian import hamiltonian_energy

    steps = 200 if fast else 2000
    lr, c = 1e-3, 10.0
    per_seed, passed, curves = {}, {}, {}
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        A = torch.randn(50, 20, generator=g, dtype=torch.float64)
        B = torch.randn(50, 10, generator=g, dtype=torch.float64)
        W = torch.nn.Parameter(torch.zeros(20, 10, dtype=torch.float64))
        f = lambda: 0.5 * (A @ W - B).square().sum() / 50  # noqa: E731
        opt = optimlab.create([W], "regularized_muon", lr=lr, momentum=1 - c * lr, weight_decay=0.0, polar_eps=1e-2)
        energy, loss = [hamiltonian_energy(opt, float(f().detach()))], [float(f().detach())]
        for _ in range(steps):
            opt.zero_grad()
            f().backward()
            opt.step()
            loss.append(float(f().detach()))
            energy.append(hamiltonian_energy(opt, loss[-1]))
        e = np.array(energy)
        rises = int(np.sum(e[1:] > e[:-1] * (1 + 1e-8) + 1e-300))
        f_rises = int(np.sum(np.diff(loss) > 0))
        per_seed[s] = {"energy_increases": float(rises), "loss_increases": float(f_rises),
                       "max_rel_energy_rise": float(np.max((e[1:] - e[:-1]) / np.abs(e[:-1])))}
        passed[s] = rises == 0 and f_rises >= 1
        curves[s] = (energy, loss)
    fig, axes = new_figure(1)
    en, lo = curves[seeds[0]]
    axes[0].plot(en, label="energy f + K")
    axes[0].plot(lo, label="f")
    axes[0].set(yscale="log", xlabel="step", title="move-on-muon-dissipation")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    expl = (f"matrix least squares (A 50×20, W 20×10), regularized Muon lr {lr}, β = 1 − {c:g}·lr, ε = 1e-2, {steps} "
            "steps; " + "; ".join(f"seed {s}: energy rose at {int(v['energy_increases'])} steps (max rel. rise "
                                  f"{v['max_rel_energy_rise']:.2g}), f rose at {int(v['loss_increases'])}"
                                  for s, v in per_seed.items()))
    verdict = None
    if all(v["loss_increases"] == 0 for v in per_seed.values()):
        verdict = "inconclusive"  # the regime the claim is about (f not monotone) was not reached
        expl += ("; inconclusive: f decreased at every step on every seed, so 'even when the objective does not' "
                 "is untested")
    return Outcome(per_seed, passed, expl, fig, verdict=verdict)


register(Claim(
    id="move-on-muon-dissipation",
    paper="Move on Muon: A Hamiltonian probability gradient flow perspective of Muon",
    arxiv="2605.23871",
    statement="An exact Hamiltonian dissipation identity: the energy decreases monotonically even when the objective "
              "does not.",
    optimizers=("regularized_muon",),
    protocol="f(W) = ‖AW − B‖²/(2·50), A 50×20, B 50×10 Gaussian from the seed, W₀ = 0, fp64; regularized_muon "
             "lr 1e-3, β = 1 − 10·lr, ε = 1e-2, no weight decay; energy = hamiltonian_energy (f + (lr·s/(1−β))·tr((MᵀM+εI)^½), "
             "our reading of the kinetic energy) after every step; 2,000 steps (fast 200).",
    rule="the energy never increases (relative tolerance 1e-8) while f increases at ≥ 1 step, every seed; f never "
         "increasing on any seed: inconclusive (the regime is not reached)",
    margin="1e-8 relative",
    experiment=_muon_exp,
))
