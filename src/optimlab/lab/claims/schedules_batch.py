"""Schedules and batch size: WSD's decay drop and WSD-S, and the square-root scaling rule (``lab.schedules``).

- wsd-decay-drop (Wen et al., "Understanding Warmup-Stable-Decay Learning Rates: A River Valley Loss
  Landscape Perspective", arXiv:2410.05192): under WSD the loss stays elevated in the stable phase and drops
  sharply in the decay; WSD-S beats WSD and cyclic cosine over several budgets from one run. Protocol (fixed
  before the first run): bigram Markov-chain LM, vocabulary 50, transition rows ~ Dirichlet(0.1·1) from the
  seed, model = a 50×50 logit table (zero init), minibatches of 32 (state, next state) pairs drawn from the
  chain's stationary distribution, optimlab ``adam`` lr 0.01; eval = exact expected cross-entropy minus the
  chain's entropy rate (excess loss). Budgets B ∈ {1000, 2000, 4000} (fast {200, 400}), decay 10% of B
  (linear to 0). WSD: one stable run, a branch per budget from its state at 0.9B (model and optimizer
  state dicts), decaying for 0.1B steps. WSD-S: one run with ``wsd_s(budgets)``. Cyclic cosine: period B_1
  (its minima fall on every budget). Verdict per seed: at every budget, WSD's decay-phase drop
  L(0.9B) − L(B) ≥ 3 × the stable run's drop over the preceding 0.1B steps; and WSD-S(B) ≤ WSD(B) and
  WSD-S(B) ≤ cyclic cosine(B) at every budget.
- sqrt-scaling-rule (Malladi, Lyu, Panigrahi, Arora, "On the SDEs and Scaling Rules for Adaptive Gradient
  Algorithms", arXiv:2205.10287): the square-root rule keeps Adam trajectories matched when the batch size
  changes. Protocol: digits (first 1,500 images train, the rest test), MLP 64→32→10 tanh, Adam lr 1e-3,
  β = (0.9, 0.999), ε = 1e-8 at B = 32; at B = 128 (κ = 4): sqrt-scaled (``schedules.sqrt_scaling``),
  unscaled, and linearly scaled (lr × 4); 10 epochs (fast 3); test loss after each epoch; same init.
  Verdict per seed: max over epochs of |L_128(e) − L_32(e)| / L_32(e) ≤ 10% for the sqrt rule and smaller
  than both alternatives'.
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .. import schedules
from .base import Claim, Outcome, new_figure, register

WSD_FAST, WSD_FULL = {"budgets": (200, 400)}, {"budgets": (1000, 2000, 4000)}
VOCAB, BATCH, LR, DECAY, DROP_FACTOR = 50, 32, 0.01, 0.1, 3.0


class _Chain:
    def __init__(self, seed: int, stream: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + stream)  # minibatch stream; the chain is the seed's
        alpha = torch.full((VOCAB,), 0.1, dtype=torch.float64)
        rows = torch.distributions.Gamma(alpha, torch.ones(VOCAB, dtype=torch.float64))
        torch.manual_seed(seed)
        g = rows.sample((VOCAB,)) + 1e-12
        self.p = g / g.sum(1, keepdim=True)
        w, v = torch.linalg.eig(self.p.T)
        pi = v[:, torch.argmin((w - 1).abs())].real
        self.pi = (pi / pi.sum()).clamp(min=0)
        self.entropy = float(-(self.pi[:, None] * self.p * self.p.clamp(min=1e-300).log()).sum())
        self.gen = gen

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.multinomial(self.pi.float(), BATCH, replacement=True, generator=self.gen)
        y = torch.multinomial(self.p[x].float(), 1, generator=self.gen)[:, 0]
        return x, y

    def excess(self, table: torch.Tensor) -> float:
        logq = torch.log_softmax(table.detach().double(), dim=1)
        return float(-(self.pi[:, None] * self.p * logq).sum()) - self.entropy


def _train(chain: _Chain, state: dict | None, start: int, stop: int, f) -> tuple[dict, dict[int, float]]:
    """Train steps start..stop-1 with lr multiplier f(step) from ``state`` (or zero init); eval after each step."""
    import optimlab

    table = nn.Parameter(torch.zeros(VOCAB, VOCAB))
    opt = optimlab.create([table], "adam", lr=LR)
    if state is not None:
        with torch.no_grad():
            table.copy_(state["table"])
        opt.load_state_dict(state["opt"])
    curve = {}
    for t in range(start, stop):
        for g in opt.param_groups:
            g["lr"] = LR * f(t)
        x, y = chain.batch()
        opt.zero_grad()
        nn.functional.cross_entropy(table[x], y).backward()
        opt.step()
        curve[t + 1] = chain.excess(table)
    return {"table": table.detach().clone(), "opt": copy.deepcopy(opt.state_dict())}, curve


def _wsd(fast: bool, seeds: Sequence[int]) -> Outcome:
    budgets = (WSD_FAST if fast else WSD_FULL)["budgets"]
    last = max(budgets)
    per_seed, passed, plots = {}, {}, {}
    for seed in seeds:
        # stable run (lr 1 throughout), with its state kept at every branch point
        branch_at = dict(schedules.wsd_branches(budgets, DECAY))
        chain, stable_curve, states, state, t = _Chain(seed), {}, {}, None, 0
        for start in sorted(branch_at):
            state, c = _train(chain, state, t, start, schedules.constant())
            stable_curve.update(c)
            states[start], t = copy.deepcopy(state), start
        vals = {}
        wsd_end, wsds_end, cyc_end = {}, {}, {}
        chain_s = _Chain(seed, stream=1)
        _, wsds_curve = _train(chain_s, None, 0, last, schedules.wsd_s(budgets, decay=DECAY))
        chain_c = _Chain(seed, stream=2)
        _, cyc_curve = _train(chain_c, None, 0, last, schedules.cyclic_cosine(min(budgets)))
        ok = True
        branches = {}
        for b in budgets:
            start, n_dec = b - int(round(DECAY * b)), int(round(DECAY * b))
            f = schedules.wsd(b, decay=DECAY)
            _, branch = _train(_Chain(seed, stream=b), states[start], start, b, f)
            branches[b] = branch
            l_start = stable_curve[start] if start in stable_curve else branch[start + 1]
            decay_drop = l_start - branch[b]
            prev = start - n_dec
            stable_drop = (stable_curve[prev] if prev in stable_curve else math.nan) - l_start
            wsd_end[b], wsds_end[b], cyc_end[b] = branch[b], wsds_curve[b], cyc_curve[b]
            vals.update({f"wsd@{b}": branch[b], f"wsd_s@{b}": wsds_curve[b], f"cyclic@{b}": cyc_curve[b],
                         f"decay_drop@{b}": decay_drop, f"stable_drop@{b}": stable_drop})
            ok &= (math.isfinite(stable_drop) and decay_drop >= DROP_FACTOR * max(stable_drop, 0.0)
                   and wsds_curve[b] <= branch[b] and wsds_curve[b] <= cyc_curve[b])
        per_seed[seed], passed[seed] = vals, ok
        plots[seed] = (stable_curve, branches, wsds_curve, cyc_curve)
    fig, (ax,) = new_figure(1, width=7)
    stable_curve, branches, wsds_curve, cyc_curve = plots[seeds[0]]
    ts = sorted(stable_curve)
    ax.plot(ts, [stable_curve[t] for t in ts], color="grey", lw=0.8, label="WSD stable run")
    for i, (b, br) in enumerate(branches.items()):
        bt = sorted(br)
        ax.plot(bt, [br[t] for t in bt], color="C0", lw=1.2, label="WSD decay branches" if i == 0 else None)
    ts = sorted(wsds_curve)
    ax.plot(ts, [wsds_curve[t] for t in ts], color="C1", lw=0.8, label="WSD-S")
    ax.plot(ts, [cyc_curve[t] for t in ts], color="C2", lw=0.8, label=f"cyclic cosine (period {min(budgets)})")
    ax.set(yscale="log", xlabel="step", ylabel="excess cross-entropy (exact)", title=f"bigram chain, V={VOCAB}, seed {seeds[0]}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    explanation = "; ".join(
        f"seed {s}: " + ", ".join(
            f"B={b}: drop decay/stable {per_seed[s][f'decay_drop@{b}']:.3g}/{per_seed[s][f'stable_drop@{b}']:.3g}, "
            f"WSD {per_seed[s][f'wsd@{b}']:.4f} WSD-S {per_seed[s][f'wsd_s@{b}']:.4f} cyclic {per_seed[s][f'cyclic@{b}']:.4f}"
            for b in budgets) for s in seeds)
    explanation += f" (need decay drop ≥ {DROP_FACTOR}× stable drop and WSD-S ≤ both, every budget)"
    return Outcome(per_seed, passed, explanation, fig, {"budgets": list(budgets), "lr": LR, "decay": DECAY})


SQ_FAST, SQ_FULL = {"epochs": 3}, {"epochs": 10}
BASE = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8}
KAPPA, SQ_GAP = 4, 0.10


def _sq_run(hp: dict, batch: int, epochs: int, seed: int, x, y, xt, yt) -> list[float]:
    import optimlab

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    opt = optimlab.create(list(model.parameters()), "adam", **hp)
    gen = torch.Generator().manual_seed(seed + 5)
    out = []
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x) - batch + 1, batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        with torch.no_grad():
            out.append(float(nn.functional.cross_entropy(model(xt), yt)))
    return out


def _sqrt(fast: bool, seeds: Sequence[int]) -> Outcome:
    from ..tasks.classification import _digits

    epochs = (SQ_FAST if fast else SQ_FULL)["epochs"]
    x_np, y_np = _digits()
    x_all, y_all = torch.tensor(x_np / 16.0, dtype=torch.float32), torch.tensor(y_np, dtype=torch.int64)
    x, y, xt, yt = x_all[:1500], y_all[:1500], x_all[1500:], y_all[1500:]
    variants = {"sqrt": schedules.sqrt_scaling(BASE, KAPPA), "unscaled": dict(BASE),
                "linear": {**BASE, "lr": BASE["lr"] * KAPPA}}
    per_seed, passed, curves = {}, {}, {}
    for seed in seeds:
        ref = np.asarray(_sq_run(BASE, 32, epochs, seed, x, y, xt, yt))
        runs = {k: np.asarray(_sq_run(hp, 32 * KAPPA, epochs, seed, x, y, xt, yt)) for k, hp in variants.items()}
        gaps = {k: float(np.max(np.abs(v - ref) / ref)) for k, v in runs.items()}
        curves[seed] = (ref, runs)
        per_seed[seed] = {f"gap_{k}": v for k, v in gaps.items()}
        passed[seed] = gaps["sqrt"] <= SQ_GAP and gaps["sqrt"] < gaps["unscaled"] and gaps["sqrt"] < gaps["linear"]
    fig, (ax,) = new_figure(1)
    ref, runs = curves[seeds[0]]
    ep = np.arange(1, epochs + 1)
    ax.plot(ep, ref, "k-o", label="B=32 (reference)")
    for i, (k, v) in enumerate(runs.items()):
        ax.plot(ep, v, "--o", color=f"C{i}", label=f"B=128, {k}")
    ax.set(yscale="log", xlabel="epoch", ylabel="test cross-entropy", title=f"digits MLP, Adam, seed {seeds[0]}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    explanation = ("max relative test-loss gap to B=32 (sqrt / unscaled / linear): " + "; ".join(
        f"seed {s}: {v['gap_sqrt']:.3f} / {v['gap_unscaled']:.3f} / {v['gap_linear']:.3f}" for s, v in per_seed.items())
        + f" (need sqrt ≤ {SQ_GAP} and smallest)")
    return Outcome(per_seed, passed, explanation, fig,
                   {"epochs": epochs, "variants": {k: {kk: list(vv) if isinstance(vv, tuple) else vv for kk, vv in hp.items()}
                                                   for k, hp in variants.items()}})


WSD_CLAIM = register(Claim(
    id="wsd-decay-drop",
    paper="Understanding Warmup-Stable-Decay Learning Rates: A River Valley Loss Landscape Perspective (Wen et al.)",
    arxiv="2410.05192",
    statement="Under WSD the loss stays elevated in the stable phase and drops sharply in the decay phase; WSD-S "
              "beats WSD and cyclic cosine over several budgets from one run.",
    optimizers=("adam",),
    protocol="bigram Markov chain (V=50, Dirichlet(0.1) rows), logit-table model, adam lr 0.01 batch 32; budgets "
             "{1000, 2000, 4000} (fast {200, 400}); WSD branches (10% linear decay) from the stable run's state, "
             "WSD-S in one run, cyclic cosine with period B_1; exact excess cross-entropy.",
    rule=f"every budget: WSD decay-phase drop ≥ {DROP_FACTOR}× the stable drop over as many steps; WSD-S ≤ WSD "
         "and ≤ cyclic cosine",
    margin=f"drop ratio ≥ {DROP_FACTOR}; WSD-S ≤ both (no tolerance), every budget and seed",
    experiment=_wsd,
))

SQRT_RULE = register(Claim(
    id="sqrt-scaling-rule",
    paper="On the SDEs and Scaling Rules for Adaptive Gradient Algorithms (Malladi, Lyu, Panigrahi, Arora)",
    arxiv="2205.10287",
    statement="The square-root scaling rule (lr·√κ, 1−β → κ(1−β), ε/√κ) keeps Adam's trajectory matched when the "
              "batch size grows by κ.",
    optimizers=("adam",),
    protocol="digits MLP 64→32→10, Adam (1e-3, (0.9, 0.999), 1e-8) at B=32 vs B=128 sqrt-scaled, unscaled and "
             "linearly scaled; test loss per epoch, 10 epochs (fast 3); same init and data order seed.",
    rule=f"max relative test-loss gap to B=32 ≤ {SQ_GAP} for the sqrt rule and below both alternatives'",
    margin=f"gap_sqrt ≤ {SQ_GAP}; gap_sqrt < gap_unscaled, gap_linear, every seed",
    experiment=_sqrt,
))
