"""Low-rank projected optimizers on char_lm: DCT vs SVD projection, SNSM's memory and speed, OSD vs GaLore.

All three train the lab's ``char_lm`` task (2 layers, 4 heads, context 64, 200k characters of stdlib
source, ``eval_batches`` 4) with a direct loop (not the lab runner), one thread; the measured loss is the
task's ``eval_loss`` (validation cross-entropy, nats/char). Every optimizer is tuned on its own lr grid by
the mean eval_loss over the seeds (a diverged run counts +inf); a tuned lr at an edge of its grid makes
the verdict "inconclusive". Projected optimizers run at their defaults otherwise (rank n/4, α = 0.25),
with the refresh gap T shortened to fit the short runs (stated per protocol). Protocols and margins were
fixed before the first run.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Any, Sequence

import numpy as np
import torch

from .base import Claim, Outcome, new_figure, register


def _task(width: int, batch: int):
    from ..tasks import get_task

    return get_task("char_lm", d=width, n_layers=2, n_heads=4, context=64, batch_size=batch,
                    corpus_chars=200_000, eval_batches=4)


def _train(cfg: dict, name: str, seed: int, lr: float, eval_every: int = 0, **hp: Any) -> dict[str, Any]:
    """Train ``name`` for cfg['steps'] steps; returns eval_loss (final), the eval curve and the optimizer."""
    import optimlab

    inst = _task(cfg["width"], cfg["batch"]).build(seed)
    model = inst.model
    opt = optimlab.create(model, name, lr=lr, **inst.role_hints, **hp)
    curve: list[tuple[int, float]] = []
    for t in range(1, cfg["steps"] + 1):
        opt.zero_grad()
        loss = inst.loss(model, inst.batch(t))
        if not torch.isfinite(loss):
            return {"eval_loss": math.inf, "curve": curve, "opt": opt}
        loss.backward()
        opt.step()
        if eval_every and (t % eval_every == 0 or t == cfg["steps"]):
            curve.append((t, float(inst.evaluate(model)["eval_loss"])))
    final = curve[-1][1] if curve else float(inst.evaluate(model)["eval_loss"])
    return {"eval_loss": final if math.isfinite(final) else math.inf, "curve": curve, "opt": opt}


def _tune(cfg: dict, name: str, grid: Sequence[float], seeds: Sequence[int], label: str, edges: list[str],
          **kw: Any) -> tuple[float, dict[int, dict[str, Any]], dict[str, float]]:
    """Runs of ``name`` at every lr of ``grid`` on every seed; the best lr by the mean over seeds."""
    runs = {lr: {s: _train(cfg, name, s, lr, **kw) for s in seeds} for lr in grid}
    means = {lr: float(np.mean([r["eval_loss"] for r in rs.values()])) for lr, rs in runs.items()}
    best = min(grid, key=lambda lr: means[lr])
    if best in (grid[0], grid[-1]):
        edges.append(f"{label} lr {best:g} at the edge of [{grid[0]:g} .. {grid[-1]:g}]")
    return best, runs[best], {f"{lr:g}": means[lr] for lr in grid}


def _refresh_times(n: int, repeats: int) -> tuple[float, float]:
    """Median seconds of one basis refresh of an n × n gradient at r = n/4: SVD, DCT scoring + top-r."""
    from ...linalg.projectors import dct_select, svd_basis

    g = torch.Generator().manual_seed(n)
    G = torch.randn(1, n, n, generator=g) / n**0.5
    r = n // 4
    svd_basis(G, r, False), dct_select(G, r)  # warm-up (the DCT matrix is cached)
    ts: dict[str, list[float]] = {"svd": [], "dct": []}
    for _ in range(repeats):
        for k, fn in (("svd", lambda: svd_basis(G, r, False)), ("dct", lambda: dct_select(G, r))):
            t0 = time.perf_counter()
            fn()
            ts[k].append(time.perf_counter() - t0)
    return statistics.median(ts["svd"]), statistics.median(ts["dct"])


def _matrix_state_bytes(opt: Any) -> tuple[float, float]:
    from ...core.state_bytes import held_state_bytes

    held = held_state_bytes(opt)
    return held.role_per_param("matrix"), held.per_param


def _curves_figure(panels: list[tuple[str, dict[str, list[tuple[int, float]]]]]) -> Any:
    fig, axes = new_figure(len(panels), width=4.6)
    for ax, (title, curves) in zip(axes, panels):
        for label, curve in curves.items():
            if curve:
                ax.plot([s for s, _ in curve], [v for _, v in curve], label=label, lw=1)
        ax.set(xlabel="step", ylabel="eval loss (nats/char)", title=title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------- DCT vs SVD
DCT_FACTOR, DCT_SPEEDUP = 1.02, 2.0
DCT_FAST = {"width": 32, "batch": 8, "steps": 20, "T": 10, "grid": (1e-2, 3e-2), "n": 256, "repeats": 3}
DCT_FULL = {"width": 64, "batch": 16, "steps": 200, "T": 50, "grid": (3e-3, 1e-2, 3e-2, 1e-1), "n": 512,
            "repeats": 7}


def _dct_experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = DCT_FAST if fast else DCT_FULL
    edges: list[str] = []
    kw = {"update_proj_gap": cfg["T"], "eval_every": max(1, cfg["steps"] // 10)}
    lr_s, svd, sweep_s = _tune(cfg, "galore_adamw", cfg["grid"], seeds, "galore_adamw", edges, **kw)
    lr_d, dct, sweep_d = _tune(cfg, "dct_adamw", cfg["grid"], seeds, "dct_adamw", edges, **kw)
    t_svd, t_dct = _refresh_times(cfg["n"], cfg["repeats"])
    speedup = t_svd / t_dct
    per_seed, passed = {}, {}
    for s in seeds:
        ls, ld = svd[s]["eval_loss"], dct[s]["eval_loss"]
        bs, bd = _matrix_state_bytes(svd[s]["opt"])[0], _matrix_state_bytes(dct[s]["opt"])[0]
        per_seed[s] = {"loss_svd": ls, "loss_dct": ld, "loss_ratio": ld / ls, "refresh_speedup": speedup,
                       "matrix_state_B_per_param_svd": bs, "matrix_state_B_per_param_dct": bd}
        passed[s] = ld <= DCT_FACTOR * ls and speedup >= DCT_SPEEDUP and bd < bs
    fig = _curves_figure([(f"seed {seeds[0]}: GaLore (SVD) vs DCT, r = n/4",
                           {f"SVD lr {lr_s:g}": svd[seeds[0]]["curve"], f"DCT lr {lr_d:g}": dct[seeds[0]]["curve"]})])
    explanation = (f"char_lm d={cfg['width']}, {cfg['steps']} steps, T={cfg['T']}: eval loss DCT/SVD per seed "
                   + ", ".join(f"{per_seed[s]['loss_ratio']:.4f}" for s in seeds)
                   + f" (rule ≤ {DCT_FACTOR}); refresh at n={cfg['n']}: SVD {1e3 * t_svd:.2f} ms, DCT "
                   f"{1e3 * t_dct:.2f} ms, speedup {speedup:.1f}× (rule ≥ {DCT_SPEEDUP}); matrix state "
                   f"{per_seed[seeds[0]]['matrix_state_B_per_param_dct']:.3f} vs "
                   f"{per_seed[seeds[0]]['matrix_state_B_per_param_svd']:.3f} B/param; tuned lr SVD {lr_s:g}, DCT {lr_d:g}")
    return Outcome(per_seed, passed, explanation, fig,
                   {"sweep_svd": sweep_s, "sweep_dct": sweep_d, "config": {k: v for k, v in cfg.items()}},
                   grid_edges=edges)


register(Claim(
    id="dct-vs-svd-projection",
    paper="SVD-Free Low-Rank Adaptive Gradient Optimization for Large Language Models (Modoranu et al.)",
    arxiv="2505.17967",
    statement="Projecting onto r columns of the DCT-II matrix chosen by gradient alignment matches SVD-based "
              "(GaLore) projection at equal rank, with a faster projector refresh and less memory.",
    optimizers=("galore_adamw", "dct_adamw"),
    protocol="char_lm d=64 (fast 32), 2 layers, batch 16 (fast 8), 200 steps (fast 20), rank n/4, α 0.25, "
             "refresh every 50 steps (fast 10); each optimizer's lr tuned on {3e-3, 1e-2, 3e-2, 1e-1} (fast: "
             "{1e-2, 3e-2}) by the mean final eval loss over seeds; refresh time of one n × n gradient at "
             "n = 512 (fast 256), r = n/4, median of 7 (fast 3) interleaved runs, 1 thread; matrix-role state "
             "bytes held",
    rule="per seed: eval_loss(DCT) ≤ 1.02 · eval_loss(SVD) at the tuned lrs, refresh speedup ≥ 2, and DCT's "
         "matrix-role state < SVD's; a tuned lr at a grid edge makes it inconclusive",
    margin=f"loss ratio ≤ {DCT_FACTOR}; SVD/DCT refresh time ≥ {DCT_SPEEDUP}; state strictly smaller",
    experiment=_dct_experiment,
))


# ---------------------------------------------------------------------------------------- SNSM
SNSM_STATE, SNSM_STEPS = 0.25, 0.7
SNSM_FAST = {"width": 32, "batch": 8, "steps": 20, "T": 10, "adamw_grid": (3e-3, 1e-2),
             "snsm_grid": (0.03, 0.1), "every": 10}
SNSM_FULL = {"width": 64, "batch": 16, "steps": 300, "T": 100, "adamw_grid": (1e-3, 3e-3, 1e-2, 3e-2),
             "snsm_grid": (0.01, 0.03, 0.1, 0.3), "every": 25}


def _steps_to(curve: list[tuple[int, float]], target: float) -> float:
    return next((float(s) for s, v in curve if v <= target), math.inf)


def _snsm_experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = SNSM_FAST if fast else SNSM_FULL
    edges: list[str] = []
    lr_a, adamw, sweep_a = _tune(cfg, "adamw", cfg["adamw_grid"], seeds, "adamw", edges, eval_every=cfg["every"])
    # the other roles of snsm use AdamW: at AdamW's tuned lr
    others = {r: {"lr": lr_a} for r in ("embedding", "head", "vector")}
    lr_s, snsm, sweep_s = _tune(cfg, "snsm", cfg["snsm_grid"], seeds, "snsm", edges, eval_every=cfg["every"],
                                update_proj_gap=cfg["T"], per_role=others)
    per_seed, passed = {}, {}
    for s in seeds:
        target = adamw[s]["eval_loss"]
        k_a, k_s = _steps_to(adamw[s]["curve"], target), _steps_to(snsm[s]["curve"], target)
        (ma, wa), (ms, ws) = _matrix_state_bytes(adamw[s]["opt"]), _matrix_state_bytes(snsm[s]["opt"])
        per_seed[s] = {"adamw_final": target, "snsm_final": snsm[s]["eval_loss"], "adamw_steps": k_a,
                       "snsm_steps_to_adamw_final": k_s, "steps_ratio": k_s / k_a,
                       "matrix_state_ratio": ms / ma, "model_state_ratio": ws / wa}
        passed[s] = ms / ma <= SNSM_STATE and k_s <= SNSM_STEPS * k_a
    fig = _curves_figure([(f"seed {seeds[0]}: SNSM vs AdamW",
                           {f"AdamW lr {lr_a:g}": adamw[seeds[0]]["curve"],
                            f"SNSM lr {lr_s:g}": snsm[seeds[0]]["curve"]})])
    explanation = (f"char_lm d={cfg['width']}, {cfg['steps']} steps, T={cfg['T']}: steps to AdamW's final eval loss, "
                   f"SNSM/AdamW per seed " + ", ".join(f"{per_seed[s]['steps_ratio']:.3g}" for s in seeds)
                   + f" (rule ≤ {SNSM_STEPS}; inf = never reached); matrix-role state SNSM/AdamW "
                   f"{per_seed[seeds[0]]['matrix_state_ratio']:.3f} (rule ≤ {SNSM_STATE}), whole model "
                   f"{per_seed[seeds[0]]['model_state_ratio']:.3f}; tuned lr AdamW {lr_a:g}, SNSM {lr_s:g}")
    return Outcome(per_seed, passed, explanation, fig, {"sweep_adamw": sweep_a, "sweep_snsm": sweep_s},
                   grid_edges=edges)


register(Claim(
    id="snsm-memory",
    paper="Efficient Adaptive Optimization via Subset-Norm and Subspace-Momentum (Nguyen, Nguyen, Ene, Nguyen)",
    arxiv="2411.07120",
    statement="Subset-Norm cuts the second-moment memory from O(d) to O(√d); with Subspace-Momentum the "
              "optimizer reaches Adam's loss in about half the tokens with about 20% of its state.",
    optimizers=("adamw", "snsm"),
    protocol="char_lm d=64 (fast 32), batch 16 (fast 8), 300 steps (the paper's setting scaled to a CPU; "
             "fast 30), eval every 25 (fast 10) steps; "
             "AdamW lr tuned on {1e-3, 3e-3, 1e-2, 3e-2}, SNSM matrix lr on {0.01, 0.03, 0.1, 0.3} (fast: the "
             "middle two of each; SNSM's other roles: AdamW at AdamW's tuned lr), rank n/4, refresh every 100 "
             "(fast 10) steps; state bytes held by the matrix role (where SN/SM apply)",
    rule="per seed: SNSM's matrix-role state ≤ 25% of AdamW's, and SNSM reaches AdamW's final eval loss in "
         "≤ 0.7× AdamW's steps (a proxy for the paper's 'half the tokens'); tuned lr at a grid edge: "
         "inconclusive",
    margin=f"state ratio ≤ {SNSM_STATE} (exact); steps ratio ≤ {SNSM_STEPS}",
    experiment=_snsm_experiment,
))


# ---------------------------------------------------------------------------------------- OSD vs GaLore
OSD_TOL = 1.005
OSD_FAST = {"width": 32, "batch": 8, "steps": 20, "T": 10, "grid": (3e-3, 3e-2)}
OSD_FULL = {"width": 64, "batch": 16, "steps": 300, "T": 100, "grid": (3e-3, 1e-2, 3e-2, 1e-1)}


def _osd_experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = OSD_FAST if fast else OSD_FULL
    edges: list[str] = []
    every = max(1, cfg["steps"] // 10)
    lr_a, adamw, sw_a = _tune(cfg, "adamw", cfg["grid"], seeds, "adamw", edges, eval_every=every)
    lr_g, galore, sw_g = _tune(cfg, "galore_adamw", cfg["grid"], seeds, "galore_adamw", edges, eval_every=every,
                               update_proj_gap=cfg["T"])
    lr_o, osd, sw_o = _tune(cfg, "osd_adamw", cfg["grid"], seeds, "osd_adamw", edges, eval_every=every,
                            proj_lr=1.0 / cfg["T"])
    per_seed, passed = {}, {}
    for s in seeds:
        la, lg, lo = adamw[s]["eval_loss"], galore[s]["eval_loss"], osd[s]["eval_loss"]
        per_seed[s] = {"adamw": la, "osd": lo, "galore": lg, "osd_over_galore": lo / lg, "adamw_over_osd": la / lo}
        passed[s] = la <= OSD_TOL * lo and lo <= lg
    fig = _curves_figure([(f"seed {seeds[0]}: rank n/4 vs full rank",
                           {f"AdamW lr {lr_a:g}": adamw[seeds[0]]["curve"], f"GaLore lr {lr_g:g}": galore[seeds[0]]["curve"],
                            f"OSD lr {lr_o:g}": osd[seeds[0]]["curve"]})])
    explanation = (f"char_lm d={cfg['width']}, {cfg['steps']} steps, rank n/4 (GaLore T={cfg['T']}, OSD proj_lr 1/T): "
                   "final eval loss AdamW / OSD / GaLore per seed "
                   + "; ".join(f"{per_seed[s]['adamw']:.4f} / {per_seed[s]['osd']:.4f} / {per_seed[s]['galore']:.4f}"
                               for s in seeds)
                   + f"; tuned lr AdamW {lr_a:g}, GaLore {lr_g:g}, OSD {lr_o:g}")
    return Outcome(per_seed, passed, explanation, fig, {"sweep_adamw": sw_a, "sweep_galore": sw_g, "sweep_osd": sw_o},
                   grid_edges=edges)


register(Claim(
    id="osd-between-adamw-and-galore",
    paper="Memory-Efficient LLM Training with Online Subspace Descent (Liang et al.)",
    arxiv="2408.12857",
    statement="Online Subspace Descent, whose projection is learned online instead of by periodic SVD, narrows "
              "the gap between GaLore and full-rank AdamW at equal rank.",
    optimizers=("adamw", "galore_adamw", "osd_adamw"),
    protocol="char_lm d=64 (fast 32), batch 16 (fast 8), 300 steps (fast 20), rank n/4, α 0.25, GaLore refresh "
             "every 100 (fast 10) steps, OSD projector lr 1/T as its reference code; every optimizer's lr tuned on "
             "{3e-3, 1e-2, 3e-2, 1e-1} (fast {3e-3, 3e-2}) by the mean final eval loss over seeds",
    rule="per seed: eval_loss(AdamW) ≤ 1.005 · eval_loss(OSD) and eval_loss(OSD) ≤ eval_loss(GaLore); a tuned lr "
         "at a grid edge makes it inconclusive",
    margin=f"AdamW ≤ {OSD_TOL}·OSD; OSD ≤ GaLore (no tolerance)",
    experiment=_osd_experiment,
))
