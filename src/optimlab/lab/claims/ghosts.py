"""Ghosts of softmax: the safe-step radius ρ_a = π/Δ_a of cross-entropy, and a controller that enforces it.

Paper: "Ghosts of Softmax: Complex Singularities That Limit Safe Step Sizes in Cross-Entropy",
arXiv:2603.13552. Shared setting (fixed before the first run): 8×8 digits (pixels/16), split 1,297 train /
500 test by the seed; an MLP 64-64-10 (tanh), PyTorch default init from the seed; cross-entropy; Adam
(lr 1e-3) with batches of 64 drawn with the seed to make the checkpoints. The mnist1d CNN of the coverage
protocol is left out (CPU minutes).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .base import Claim, Outcome, new_figure, register

RISE = 0.1  # a "failure": the batch loss rises by more than this along the step


def _data(seed: int) -> tuple[torch.Tensor, ...]:
    from ..tasks.classification import _digits

    x_np, y_np = _digits()
    x, y = torch.tensor(x_np / 16.0), torch.tensor(y_np)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:1297], perm[1297:]
    return x[tr].float(), y[tr], x[te].float(), y[te]


def _mlp(seed: int, temperature: float = 1.0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
    if temperature != 1.0:
        with torch.no_grad():  # logits / T, folded into the last layer
            net[2].weight.div_(temperature)
            net[2].bias.div_(temperature)
    return net


def _train_adam(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int,
                lr: float = 1e-3) -> torch.optim.Adam:
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    return opt


def _loss_along(net: nn.Module, x: torch.Tensor, y: torch.Tensor, direction: list[torch.Tensor],
                taus: Sequence[float]) -> list[float]:
    base = [p.detach().clone() for p in net.parameters()]
    out = []
    with torch.no_grad():
        for tau in taus:
            for p, b, d in zip(net.parameters(), base, direction):
                p.copy_(b + tau * d)
            out.append(float(nn.functional.cross_entropy(net(x), y)))
        for p, b in zip(net.parameters(), base):
            p.copy_(b)
    return out


def _unit(vs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    n = math.sqrt(sum(float(v.double().square().sum()) for v in vs))
    return [v / n for v in vs]


def _directions(net: nn.Module, opt: torch.optim.Adam, x: torch.Tensor, y: torch.Tensor, seed: int
                ) -> dict[str, list[torch.Tensor]]:
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    grad = [-p.grad.detach().clone() for p in net.parameters()]
    adam = []
    for p, g in zip(net.parameters(), grad):  # the step Adam would take next (bias-corrected), on this batch
        st = opt.state.get(p, {})
        if st:
            b1, b2 = opt.param_groups[0]["betas"]
            t = int(st["step"]) + 1
            m = (b1 * st["exp_avg"] - (1 - b1) * g) / (1 - b1 ** t)
            v = (b2 * st["exp_avg_sq"] + (1 - b2) * g * g) / (1 - b2 ** t)
            adam.append(-m / (v.sqrt() + 1e-8))
        else:
            adam.append(torch.sign(g))
    gen = torch.Generator().manual_seed(seed + 7)
    rand = [torch.randn(p.shape, generator=gen) for p in net.parameters()]
    net.zero_grad()
    return {"gradient": _unit(grad), "adam": _unit(adam), "random": _unit(rand)}


# ------------------------------------------------------------------ ghosts-safe-radius
R_GRID = tuple(float(r) for r in np.round(np.geomspace(0.1, 30.0, 26), 4))


def _safe_radius_exp(fast: bool, seeds: Sequence[int]) -> Outcome:
    from ...diagnostics.ghosts import safe_radius

    checkpoints = (0, 20) if fast else (0, 100, 500)
    per_seed, passed, cases = {}, {}, []
    for seed in seeds:
        x, y, _, _ = _data(seed)
        xb, yb = x[:256], y[:256]
        net = _mlp(seed)
        opt, done, below, onsets = None, 0, 0, []
        for ck in checkpoints:
            opt_new = _train_adam(net, x, y, ck - done, seed + ck) if ck > done else opt
            opt = opt_new if opt_new is not None else torch.optim.Adam(net.parameters(), lr=1e-3)
            done = ck
            for dname, d in _directions(net, opt, xb, yb, seed + ck).items():
                rho = safe_radius(net, xb, d)["rho"]
                base = float(nn.functional.cross_entropy(net(xb), yb).detach())
                losses = _loss_along(net, xb, yb, d, [r * rho for r in R_GRID])
                fails = [r for r, l in zip(R_GRID, losses) if not (l - base <= RISE)]
                first = fails[0] if fails else math.inf
                below += int(first < 1)  # cases whose first failure comes before r = 1
                onsets.append(first)
                cases.append({"seed": seed, "step": ck, "direction": dname, "rho": rho, "first_failure_r": first})
        inside = sum(1 for r in onsets if 1 <= r <= 3) / len(onsets)
        per_seed[seed] = {"cases_failing_below_r1": float(below), "frac_first_failure_in_1_3": inside,
                          "median_first_failure_r": float(np.median(onsets))}
        passed[seed] = below == 0 and inside >= 0.8
    fig, axes = new_figure(1)
    for i, dname in enumerate(("gradient", "adam", "random")):
        pts = [(c["step"], c["first_failure_r"]) for c in cases if c["direction"] == dname]
        axes[0].scatter([p[0] + 3 * i for p in pts], [min(p[1], 100) for p in pts], label=dname)
    axes[0].axhspan(1, 3, color="C2", alpha=0.15, label="r ∈ [1, 3]")
    axes[0].set(yscale="log", xlabel="checkpoint step", ylabel="first failure r = τ/ρ_a (100 = none)",
                title="ghosts-safe-radius")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    by_dir = {d: sum(1 for c in cases if c["direction"] == d and c["first_failure_r"] < 1)
              for d in ("gradient", "adam", "random")}
    expl = "; ".join(f"seed {s}: {int(v['cases_failing_below_r1'])} of {len(checkpoints) * 3} cases fail at r<1, "
                     f"{v['frac_first_failure_in_1_3']:.0%} first failures in [1,3], median onset r "
                     f"{v['median_first_failure_r']:.3g}" for s, v in per_seed.items())
    expl += f"; cases failing below r = 1 by direction: {by_dir}"
    return Outcome(per_seed, passed, expl, fig, {"cases": cases, "r_grid": list(R_GRID)})


SAFE = register(Claim(
    id="ghosts-safe-radius",
    paper="Ghosts of Softmax: Complex Singularities That Limit Safe Step Sizes in Cross-Entropy",
    arxiv="2603.13552",
    statement="Across step directions no model fails (batch loss rise > 0.1) for r = τ/ρ_a < 1, while failure "
              "appears once r ≥ 1 (first failure at r ∈ [1, 3]).",
    optimizers=(),
    protocol="digits MLP 64-64-10 (tanh, CE), Adam-trained checkpoints at steps {0, 100, 500} (fast {0, 20}); "
             "directions: −gradient, Adam's next step, random (unit); ρ_a from one JVP of the logits on a batch "
             "of 256; loss on that batch at τ = r·ρ_a for 26 r from 0.1 to 30 (log grid).",
    rule="per seed: no failure at r < 1 in any case, and the first failure at r ∈ [1, 3] in ≥ 80% of the cases",
    margin="loss rise > 0.1 is a failure; ≥ 80% of first failures in r ∈ [1, 3]; none below r = 1",
    experiment=_safe_radius_exp,
))


# ------------------------------------------------------------------ ghosts-controller-lr-spike
def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(-1) == y).float().mean())


def _spike_run(seed: int, mode: str, spike_at: int, after: int, factor: float = 1e4) -> list[float]:
    import optimlab
    from ...optimizers.ghosts import safe_radius

    x, y, xt, yt = _data(seed)
    net = _mlp(seed)
    if mode == "controller":
        opt: Any = optimlab.create(list(net.parameters()), safe_radius("adam"), lr=1e-3, radius_c=1.0)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed + 1)
    accs = []
    for t in range(spike_at + after + 1):
        idx = torch.randint(0, len(x), (64,), generator=g)
        spike = t == spike_at and mode != "no_spike"
        for grp in opt.param_groups:
            grp["lr"] = 1e-3 * (factor if spike else 1.0)

        def closure(idx: torch.Tensor = idx) -> torch.Tensor:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            loss.backward()
            return loss

        closure.outputs = lambda idx=idx: net(x[idx])  # type: ignore[attr-defined]
        if mode == "controller":
            opt.step(closure)
        else:
            closure()
            if mode == "clip":
                nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
        if t >= spike_at:
            accs.append(_accuracy(net, xt, yt))
    return accs


MODES = ("no_spike", "controller", "clip", "plain")


def _spike_exp(fast: bool, seeds: Sequence[int]) -> Outcome:
    spike_at, after = (60, 40) if fast else (200, 100)
    per_seed, passed, curves = {}, {}, {}
    for seed in seeds:
        runs = {m: _spike_run(seed, m, spike_at, after) for m in MODES}
        final = {m: runs[m][-1] for m in MODES}
        per_seed[seed] = {f"acc_{m}": final[m] for m in MODES}
        passed[seed] = (final["no_spike"] - final["controller"] <= 0.02
                        and final["no_spike"] - final["clip"] > 0.20)
        curves[seed] = runs
    fig, axes = new_figure(1)
    for m in MODES:
        axes[0].plot(curves[seeds[0]][m], label=m)
    axes[0].set(xlabel=f"steps after the ×1e4 lr spike (t={spike_at})", ylabel="test accuracy",
                title="ghosts-controller-lr-spike")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    expl = "; ".join(f"seed {s}: " + ", ".join(f"{m} {v[f'acc_{m}']:.3f}" for m in MODES)
                     for s, v in per_seed.items()) + f" (test accuracy {after} steps after the spike)"
    return Outcome(per_seed, passed, expl, fig, {"spike_at": spike_at, "after": after})


SPIKE = register(Claim(
    id="ghosts-controller-lr-spike",
    paper="Ghosts of Softmax: Complex Singularities That Limit Safe Step Sizes in Cross-Entropy",
    arxiv="2603.13552",
    statement="A controller enforcing τ ≤ ρ_a survives learning-rate spikes up to 10,000×, where gradient "
              "clipping still collapses.",
    optimizers=("adam",),
    protocol="digits MLP 64-64-10 (tanh, CE), Adam lr 1e-3, batch 64; a one-step lr spike ×1e4 at t=200 (fast 60); "
             "runs: no spike, Adam + safe_radius controller (c = 1), Adam with clip-norm 1, plain Adam; test "
             "accuracy 100 steps after the spike (fast 40).",
    rule="controller's test accuracy within 2 pp of the no-spike run, and clipping's more than 20 pp below it",
    margin="acc(no spike) − acc(controller) ≤ 0.02 and acc(no spike) − acc(clip) > 0.20",
    experiment=_spike_exp,
))


# ------------------------------------------------------------------ ghosts-temperature-spread
TEMPS = (0.25, 0.5, 1.0, 2.0, 4.0)
TAU_GRID = tuple(float(t) for t in np.geomspace(1e-3, 1e3, 97))


def _temperature_exp(fast: bool, seeds: Sequence[int]) -> Outcome:
    from ...diagnostics.ghosts import safe_radius

    steps = 20 if fast else 100
    per_seed, passed, rows = {}, {}, []
    for seed in seeds:
        x, y, _, _ = _data(seed)
        xb, yb = x[:256], y[:256]
        log_tau, log_r = [], []
        for T in TEMPS:
            net = _mlp(seed, T)
            opt = _train_adam(net, x, y, steps, seed)
            d = _directions(net, opt, xb, yb, seed)["gradient"]
            rho = safe_radius(net, xb, d)["rho"]
            base = float(nn.functional.cross_entropy(net(xb), yb).detach())
            losses = _loss_along(net, xb, yb, d, TAU_GRID)
            onset = next((t for t, l in zip(TAU_GRID, losses) if not (l - base <= RISE)), math.nan)
            rows.append({"seed": seed, "T": T, "tau_onset": onset, "rho": rho, "r_onset": onset / rho})
            log_tau.append(math.log(onset))
            log_r.append(math.log(onset / rho))
        sd_tau, sd_r = float(np.std(log_tau)), float(np.std(log_r))
        per_seed[seed] = {"sd_log_tau_onset": sd_tau, "sd_log_r_onset": sd_r,
                          "ratio": sd_r / sd_tau if sd_tau > 0 else math.inf}
        passed[seed] = bool(sd_r <= 0.3 * sd_tau)
    fig, axes = new_figure(1)
    for s in seeds:
        rs = [r for r in rows if r["seed"] == s]
        axes[0].loglog([r["T"] for r in rs], [r["tau_onset"] for r in rs], "o-", color="C0",
                       label="onset τ" if s == seeds[0] else None)
        axes[0].loglog([r["T"] for r in rs], [r["r_onset"] for r in rs], "s--", color="C1",
                       label="onset r = τ/ρ_a" if s == seeds[0] else None)
    axes[0].set(xlabel="logit temperature T", ylabel="onset", title="ghosts-temperature-spread")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    expl = "; ".join(f"seed {s}: SD(log τ_onset) {v['sd_log_tau_onset']:.3g}, SD(log r_onset) "
                     f"{v['sd_log_r_onset']:.3g}, ratio {v['ratio']:.3g}" for s, v in per_seed.items()) + "; rule ≤ 0.3"
    nan = any(not math.isfinite(r["tau_onset"]) for r in rows)
    return Outcome(per_seed, passed, expl, fig, {"rows": rows}, "inconclusive" if nan else None)


TEMP = register(Claim(
    id="ghosts-temperature-spread",
    paper="Ghosts of Softmax: Complex Singularities That Limit Safe Step Sizes in Cross-Entropy",
    arxiv="2603.13552",
    statement="Normalizing by ρ_a shrinks the spread of the onset threshold across temperatures (SD 0.992 → 0.164).",
    optimizers=(),
    protocol="digits MLP 64-64-10 with logits/T, T ∈ {0.25, 0.5, 1, 2, 4}, trained 100 Adam steps (fast 20); along the "
             "unit −gradient on a batch of 256, onset τ = first τ of a 97-point log grid 1e-3..1e3 where the loss "
             "rises by > 0.1; onset r = τ/ρ_a.",
    rule="per seed SD(log r_onset) ≤ 0.3 × SD(log τ_onset) (paper's ratio 0.165); an onset off the grid: inconclusive",
    margin="SD ratio ≤ 0.3",
    experiment=_temperature_exp,
))
