"""Small proxies for seed papers that only compare optimizers qualitatively (coverage section 3.3).

Their abstracts give no CPU-checkable numbers; each proxy turns "outperforms" / "comparable to" into a tuned
comparison on a small lab task. Protocol (fixed before the first run):

- Task ``mnist1d`` (the lab's MLP) unless stated; every optimizer at its defaults except its main learning
  rate (the matrix role's where the recipe has one), tuned per optimizer on its own grid = its default lr ×
  {1/4, 1/2, 1, 2, 4} (fast × {1/2, 1, 2}) by the seed-mean final eval loss; a chosen lr at a grid edge
  makes the verdict inconclusive. Full 600 steps, fast 60. Seeds paired.
- "beats": per seed L_new < L_ref for every reference; "matches": per seed |L_new − L_ref| ≤ 10% of L_ref.
- mimuon-clion-generalization-gap: task ``digits_mlp`` with test_fraction ∈ {0.9, 0.8, 0.6} (≈ 180, 360, 719
  training images; fast {0.9}), lr tuned per optimizer and size; gap = final eval loss − final train loss
  (full training set); per seed gap(MiMuon) ≤ gap(Muon) and gap(CLion) ≤ gap(Lion) at every size.

These are proxies at a scale far below the papers'; a verdict says what holds on the proxy, nothing more.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from .base import Claim, Outcome, new_figure, register
from .protocols import Tuned, grid_edges, plot_tuning, tuned_comparison

FAST = {"factors": (0.5, 1.0, 2.0), "steps": 60}
FULL = {"factors": (0.25, 0.5, 1.0, 2.0, 4.0), "steps": 600}
MATCH = 0.10


def default_lr(name: str) -> float:
    from optimlab.core.registry import get_recipe

    defaults = getattr(get_recipe(name), "defaults", {}) or {}
    for role in ("matrix", "*"):
        if isinstance(defaults.get(role), dict) and "lr" in defaults[role]:
            return float(defaults[role]["lr"])
    return 1e-3


def _tune(task: str, names: Sequence[str], fast: bool, seeds: Sequence[int],
          task_options: dict | None = None) -> dict[str, Tuned]:
    cfg = FAST if fast else FULL
    out = {}
    for name in names:
        grid = tuple(default_lr(name) * f for f in cfg["factors"])
        out.update(tuned_comparison(task, {name: {"optimizer": name}}, grid, seeds, cfg["steps"],
                                    task_options=task_options))
    return out


def _figure(tuned: dict[str, Tuned], seeds: Sequence[int], title: str) -> Any:
    fig, (ax, ax2) = new_figure(2)
    plot_tuning(ax, tuned, "eval_loss")
    ax.set_title("lr sweep (each optimizer on its own grid)")
    width = 0.8 / len(tuned)
    for i, (label, t) in enumerate(tuned.items()):
        ax2.bar([j + i * width for j in range(len(seeds))], [t.per_seed[s] for s in seeds], width,
                color=f"C{i}", label=f"{label} @ lr {t.lr:g}")
    ax2.set_xticks([j + 0.4 - width / 2 for j in range(len(seeds))], [f"seed {s}" for s in seeds])
    ax2.set(ylabel="final eval loss at the tuned lr", title=title)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _make(new: Sequence[str], refs: Sequence[str], mode: str, title: str):
    def experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
        tuned = _tune("mnist1d", list(new) + list(refs), fast, seeds)
        per_seed, passed = {}, {}
        for s in seeds:
            vals = {k: t.per_seed[s] for k, t in tuned.items()}
            ok = True
            row = {f"eval_loss[{k}]": float(v) for k, v in vals.items()}
            for n in new:
                for r in refs:
                    rel = (vals[n] - vals[r]) / vals[r] if math.isfinite(vals[n]) and math.isfinite(vals[r]) else math.inf
                    row[f"rel_gap[{n} vs {r}]"] = float(rel)
                    ok &= (rel < 0) if mode == "beats" else (abs(rel) <= MATCH)
            per_seed[s], passed[s] = row, ok
        steps = (FAST if fast else FULL)["steps"]
        explanation = (f"mnist1d, {steps} steps, lr tuned per optimizer: " + ", ".join(
            f"{k} {t.mean():.4f} (lr {t.lr:g})" for k, t in tuned.items())
            + f"; rule: {', '.join(new)} {'below' if mode == 'beats' else 'within 10% of'} {', '.join(refs)} on every seed")
        return Outcome(per_seed, passed, explanation, _figure(tuned, seeds, title),
                       {"chosen_lr": {k: t.lr for k, t in tuned.items()},
                        "curves": {k: {str(lr): v for lr, v in t.curve.items()} for k, t in tuned.items()}},
                       grid_edges=grid_edges(tuned))
    return experiment


SIZES_FAST, SIZES_FULL = (0.9,), (0.9, 0.8, 0.6)  # the task allows test_fraction ≤ 0.9
PAIRS = (("mimuon", "muon"), ("clion", "lion"))


def _gap(fast: bool, seeds: Sequence[int]) -> Outcome:
    from ..runner import run

    cfg = FAST if fast else FULL
    per_seed: dict[int, dict[str, float]] = {s: {} for s in seeds}
    passed = {s: True for s in seeds}
    edges, gaps = [], {}
    for frac in (SIZES_FAST if fast else SIZES_FULL):
        opts = {"test_fraction": frac}
        tuned = _tune("digits_mlp", [n for pair in PAIRS for n in pair], fast, seeds, opts)
        edges += [f"test_fraction {frac}: {e}" for e in grid_edges(tuned)]
        for s in seeds:
            g = {}
            for name, t in tuned.items():
                res = run("digits_mlp", name, hparams={"lr": t.lr}, seed=s, steps=cfg["steps"], task_options=opts,
                          store=None)
                g[name] = float(res.final["eval_loss"] - res.final["train_loss"]) if res.status == "finished" else math.inf
                per_seed[s][f"gap[{name},tf={frac}]"] = g[name]
            gaps[(s, frac)] = g
            passed[s] &= all(g[a] <= g[b] for a, b in PAIRS)
    fig, (ax,) = new_figure(1)
    fracs = list(SIZES_FAST if fast else SIZES_FULL)
    for i, name in enumerate(n for pair in PAIRS for n in pair):
        for j, s in enumerate(seeds):
            ax.plot([round(1797 * (1 - f)) for f in fracs], [gaps[(s, f)][name] for f in fracs], "o-",
                    color=f"C{i}", alpha=0.8, label=name if j == 0 else None)
    ax.set(xscale="log", xlabel="training images", ylabel="eval loss − train loss", title="generalization gap, digits MLP")
    ax.legend(fontsize=8)
    fig.tight_layout()
    explanation = "; ".join(f"seed {s}, {round(1797 * (1 - f))} images: " + ", ".join(
        f"{a} {gaps[(s, f)][a]:.3f} vs {b} {gaps[(s, f)][b]:.3f}" for a, b in PAIRS) for s in seeds for f in fracs)
    explanation += " (need MiMuon ≤ Muon and CLion ≤ Lion at every size)"
    return Outcome(per_seed, passed, explanation, fig, {"test_fractions": fracs}, grid_edges=edges)


def _claim(cid: str, paper: str, arxiv: str, statement: str, new: Sequence[str], refs: Sequence[str], mode: str) -> Claim:
    rule = (f"per seed, {' and '.join(new)} below {' and '.join(refs)} (eval loss at tuned lrs)" if mode == "beats"
            else f"per seed, {' and '.join(new)} within {MATCH:.0%} of {' and '.join(refs)}")
    return register(Claim(
        id=cid, paper=paper, arxiv=arxiv, statement=statement, optimizers=tuple(new) + tuple(refs),
        protocol="proxy: mnist1d MLP, lr tuned per optimizer on default × {1/4, 1/2, 1, 2, 4} by the seed-mean final "
                 "eval loss, 600 steps (fast: × {1/2, 1, 2}, 60 steps)",
        rule=rule + "; a tuned lr at a grid edge makes it inconclusive",
        margin="L_new < L_ref, every seed" if mode == "beats" else f"|L_new − L_ref| ≤ {MATCH} · L_ref, every seed",
        experiment=_make(new, refs, mode, cid)))


ADAGO = _claim("adago-beats-muon-adamw", "AdaGO: AdaGrad-type step sizes for orthogonalized updates", "2509.02981",
               "AdaGO outperforms Muon and Adam (CIFAR-10 and function regression; no numbers in the abstract).",
               ("adago",), ("muon", "adamw"), "beats")
AUON = _claim("auon-matches-muon", "AuON: alternative unit-norm momentum updates", "2509.24320",
              "AuON and Hybrid-AuON perform comparably to AdamW and Muon (no numbers in the abstract).",
              ("auon", "hybrid_auon"), ("muon",), "matches")
ROOT = _claim("root-beats-muon", "ROOT: robust orthogonalized optimizer", "2511.20626",
              "ROOT converges faster and ends better than Muon and Adam, especially in noisy settings (no numbers).",
              ("root",), ("muon",), "beats")
NORMUON = _claim("normuon-adamuon-beat-muon-adamw", "NorMuon (2510.05491) and AdaMuon (2507.11005)", "2510.05491",
                 "NorMuon and AdaMuon outperform both Adam and Muon (numbers only at 1.1B scale and above).",
                 ("normuon", "adamuon"), ("muon", "adamw"), "beats")
PION = _claim("pion-matches-adamw", "Pion", "2605.12492",
              "Pion is a stable, competitive alternative to AdamW for pretraining and finetuning (no numbers).",
              ("pion",), ("adamw",), "matches")
GAP = register(Claim(
    id="mimuon-clion-generalization-gap",
    paper="MiMuon (2605.19619) and CLion (2604.14587)", arxiv="2605.19619",
    statement="MiMuon and CLion generalize better than Muon and Lion: smaller generalization error (O(1/N) bounds; "
              "no CPU-checkable numbers).",
    optimizers=("mimuon", "muon", "clion", "lion"),
    protocol="proxy: digits_mlp with test_fraction ∈ {0.9, 0.8, 0.6} (fast {0.9}); lr tuned per optimizer and size "
             "on default × {1/4 … 4} (fast × {1/2, 1, 2}); 600 steps (fast 60); gap = eval − train loss.",
    rule="per seed and size, gap(MiMuon) ≤ gap(Muon) and gap(CLion) ≤ gap(Lion); a tuned lr at a grid edge makes it "
         "inconclusive",
    margin="no tolerance, every size and seed",
    experiment=_gap,
))


HORIZONS_FAST, HORIZONS_FULL = (30, 60), (150, 300, 600)
SF_OPTS = {"adamw_cosine": {"optimizer": "adamw", "schedule": "cosine"}, "sf_adamw": {"optimizer": "sf_adamw"},
           "sf_normuon": {"optimizer": "sf_normuon"}}


def _sf(fast: bool, seeds: Sequence[int]) -> Outcome:
    """SF-NorMuon horizons (arXiv:2605.23061): at every horizon T, tuned AdamW with a cosine schedule over T beats
    SF-AdamW, and SF-NorMuon matches or beats it. Each optimizer's lr tuned per horizon (grids as above)."""
    factors = (FAST if fast else FULL)["factors"]
    per_seed: dict[int, dict[str, float]] = {s: {} for s in seeds}
    passed = {s: True for s in seeds}
    edges, means = [], {}
    for horizon in (HORIZONS_FAST if fast else HORIZONS_FULL):
        tuned = {}
        for label, cfg in SF_OPTS.items():
            grid = tuple(default_lr(cfg["optimizer"]) * f for f in factors)
            tuned.update(tuned_comparison("mnist1d", {label: cfg}, grid, seeds, horizon))
        edges += [f"T={horizon}: {e}" for e in grid_edges(tuned)]
        means[horizon] = {k: t.mean() for k, t in tuned.items()}
        for s in seeds:
            v = {k: t.per_seed[s] for k, t in tuned.items()}
            per_seed[s].update({f"{k}@T={horizon}": float(x) for k, x in v.items()})
            passed[s] &= v["sf_adamw"] > v["adamw_cosine"] and v["sf_normuon"] <= v["adamw_cosine"]
    fig, (ax,) = new_figure(1)
    hs = sorted(means)
    for i, k in enumerate(SF_OPTS):
        ax.plot(hs, [means[h][k] for h in hs], "o-", color=f"C{i}", label=k)
    ax.set(xscale="log", yscale="log", xlabel="horizon T (steps)", ylabel="final eval loss (seed mean, tuned lr)",
           title="mnist1d: schedule-free vs tuned cosine AdamW")
    ax.legend(fontsize=8)
    fig.tight_layout()
    explanation = "seed-mean eval loss by horizon: " + "; ".join(
        f"T={h}: " + ", ".join(f"{k} {v:.4f}" for k, v in means[h].items()) for h in hs)
    explanation += " (need SF-AdamW > AdamW-cosine ≥ SF-NorMuon at every T, every seed)"
    return Outcome(per_seed, passed, explanation, fig, {"horizons": hs}, grid_edges=edges)


SF_NORMUON = register(Claim(
    id="sf-normuon-horizons",
    paper="Anytime Training with Schedule-Free Spectral Optimization (Apte, Deshpande, Kumar, Chakrabarti, Kim)",
    arxiv="2605.23061",
    statement="SF-AdamW underperforms tuned AdamW (cosine), while SF-NorMuon matches or beats it across horizons "
              "(125M/772M models; no CPU-checkable numbers).",
    optimizers=("adamw", "sf_adamw", "sf_normuon"),
    protocol="proxy: mnist1d, horizons {150, 300, 600} (fast {30, 60}); AdamW with a cosine schedule over the "
             "horizon (lab.schedules via the runner), SF-AdamW, SF-NorMuon; lr tuned per optimizer and horizon on "
             "default × {1/4 … 4} (fast × {1/2, 1, 2}). The weight-decay-at-z ablation is its own claim, "
             "sf-normuon-wd-at-fast-iterate.",
    rule="per seed and horizon: L(SF-AdamW) > L(AdamW-cosine) and L(SF-NorMuon) ≤ L(AdamW-cosine); a tuned lr at a "
         "grid edge makes it inconclusive",
    margin="no tolerance, every horizon and seed",
    experiment=_sf,
))


WIDTHS_FAST, WIDTHS_FULL = (32, 64), (64, 256)


def _dion(fast: bool, seeds: Sequence[int]) -> Outcome:
    """Dion vs Muon as the model grows (arXiv:2504.05295): Dion's advantage L_Muon − L_Dion grows with width."""
    widths = WIDTHS_FAST if fast else WIDTHS_FULL
    per_seed: dict[int, dict[str, float]] = {s: {} for s in seeds}
    edges, adv = [], {}
    for width in widths:
        tuned = _tune("mnist1d", ["muon", "dion"], fast, seeds, {"width": width})
        edges += [f"width {width}: {e}" for e in grid_edges(tuned)]
        for s in seeds:
            a = tuned["muon"].per_seed[s] - tuned["dion"].per_seed[s]
            adv[(s, width)] = a
            per_seed[s].update({f"muon@w{width}": float(tuned["muon"].per_seed[s]),
                                f"dion@w{width}": float(tuned["dion"].per_seed[s]), f"advantage@w{width}": float(a)})
    passed = {s: adv[(s, widths[-1])] > adv[(s, widths[0])] for s in seeds}
    fig, (ax,) = new_figure(1)
    for i, s in enumerate(seeds):
        ax.plot(widths, [adv[(s, w)] for w in widths], "o-", color=f"C{i}", label=f"seed {s}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xscale="log", xlabel="MLP width", ylabel="L_Muon − L_Dion (tuned lrs)", title="mnist1d: Dion's advantage vs size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    explanation = "Dion's advantage L_Muon − L_Dion by width: " + "; ".join(
        f"seed {s}: " + ", ".join(f"w{w} {adv[(s, w)]:+.4f}" for w in widths) for s in seeds)
    explanation += " (need larger at the larger width, every seed)"
    return Outcome(per_seed, passed, explanation, fig, {"widths": list(widths)}, grid_edges=edges)


DION_SIZE = register(Claim(
    id="dion-advantage-grows-with-size",
    paper="Dion: Distributed Orthonormalized Updates (Ahn, Xu, et al.)",
    arxiv="2504.05295",
    statement="Dion's benefits over Muon grow with model size and batch size (120M–3B; no CPU-checkable numbers).",
    optimizers=("muon", "dion"),
    protocol="proxy, weak on CPU: mnist1d MLP widths {64, 256} (fast {32, 64}); Muon and Dion (defaults, rank "
             "fraction included) with lr tuned per optimizer and width on default × {1/4 … 4} (fast × {1/2, 1, 2}); "
             "600 steps (fast 60). Batch size not varied.",
    rule="per seed, L_Muon − L_Dion larger at the larger width; a tuned lr at a grid edge makes it inconclusive",
    margin="no tolerance, every seed",
    experiment=_dion,
))
