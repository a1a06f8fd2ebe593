"""Symmetry-compatible stack vs AdamW on a tiny MoE-SwiGLU GPT: final loss and expert load balance
(Lau & Su, arXiv:2605.18106; coverage section 3.3, "symmetry stack load balance").

The paper reports lower final loss and less MoE load imbalance than AdamW for its symmetry-compatible stack
(row-norm embeddings/heads, centered row-norm routers, hybrid SwiGLU, Muon elsewhere) on Qwen3 / OLMoE-scale
models; no CPU-checkable numbers. Proxy protocol (fixed before the first run):

- Model: a 2-block causal GPT, width 32, 2 heads, every block's MLP a top-2 softmax MoE of 4 SwiGLU experts
  (router ``router``, experts ``gate_proj``/``up_proj``/``down_proj``, so ``symmetry_muon`` routes them to its
  router / gate / down roles), no auxiliary load-balancing loss, dense evaluation of the experts. Initialised
  by ``torch.manual_seed(seed)``.
- Data: the lab's ``char_lm`` text (CPython standard-library source, 200k characters), context 32, batch 16;
  the task instance of the same seed gives the batches (its order), the loss and the evaluation windows.
- Optimizers: ``symmetry_muon`` (the verdict), ``symmetry_hybrid`` (context, not in the verdict; full only) and
  ``adamw``, at their defaults except the ``lr`` keyword (symmetry stack: its matrix/expert/gate/down roles;
  embedding, head and router keep the authors' rates; AdamW: every parameter). Same trial budget for each:
  lr grid = default × {1/8, 1/4, 1/2, 1, 2, 4, 8} (fast × {1/2, 1, 2}), every value on every seed, chosen by
  the seed-mean final eval loss. 400 steps (fast 30). Seeds 0, 1, 2 (fast 0, 1).
- Load imbalance: after training, on the task's evaluation windows (validation and training text), the share
  of top-2 assignments each expert receives, per MoE layer; CV = population std / mean over the 4 experts,
  averaged over the 2 layers (0: perfectly balanced; 1: every token on the same two experts, the maximum for
  top-2 of 4).
- Verdict per seed, at the tuned lrs: eval loss(symmetry_muon) < eval loss(AdamW) and CV(symmetry_muon) <
  CV(AdamW). No tolerance. A tuned lr at a grid edge (symmetry_muon's or AdamW's) makes it inconclusive.

A proxy at a scale far below the paper's; the verdict says what holds on it, nothing more.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..stats import paired_test
from .base import Claim, Outcome, new_figure, register
from .protocols import Tuned, grid_edges, plot_tuning
from .proxies import default_lr

D, HEADS, LAYERS, EXPERTS, TOP = 32, 2, 2, 4, 2
TASK_OPTIONS = {"context": 32, "batch_size": 16, "corpus_chars": 200_000, "d": 16, "n_layers": 1, "n_heads": 1}
NEW, REF, CONTEXT = "symmetry_muon", "adamw", ("symmetry_hybrid",)
FAST = {"factors": (0.5, 1.0, 2.0), "steps": 30}
FULL = {"factors": (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0), "steps": 400}


class SwiGLU(nn.Module):
    def __init__(self, d: int, r: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d, r, bias=False)
        self.up_proj = nn.Linear(d, r, bias=False)
        self.down_proj = nn.Linear(r, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MoE(nn.Module):
    """Top-2 of ``n`` softmax routing (weights renormalised over the two); ``counts`` accumulates the
    assignments per expert while ``track`` is on."""

    def __init__(self, d: int, n: int) -> None:
        super().__init__()
        self.router = nn.Linear(d, n, bias=False)
        self.experts = nn.ModuleList(SwiGLU(d, 2 * d) for _ in range(n))
        self.track = False
        self.register_buffer("counts", torch.zeros(n), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, idx = F.softmax(self.router(x), dim=-1).topk(TOP, dim=-1)
        w = w / w.sum(-1, keepdim=True)
        if self.track:
            self.counts += torch.bincount(idx.reshape(-1), minlength=len(self.experts)).to(self.counts)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            out = out + (w * (idx == e)).sum(-1, keepdim=True) * expert(x)
        return out


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        from ..tasks.blocks import CausalSelfAttention

        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, HEADS)
        self.moe = MoE(d, EXPERTS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.moe(self.ln2(x))


class MoEGPT(nn.Module):
    def __init__(self, vocab: int, context: int, d: int = D) -> None:
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.blocks = nn.ModuleList(Block(d) for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x)
        return self.lm_head(self.ln_f(x))

    def moes(self) -> list[MoE]:
        return [b.moe for b in self.blocks]


def load_cv(counts: torch.Tensor) -> float:
    """Coefficient of variation (population std / mean) of one layer's expert assignment counts."""
    c = counts.double()
    return float(c.std(unbiased=False) / c.mean())


def train(name: str, lr: float, seed: int, steps: int) -> dict[str, float]:
    """Train the MoE GPT with optimizer ``name`` at ``lr``; final eval loss and load CV (inf when diverged)."""
    import optimlab

    from ..tasks import get_task
    from ..tasks.char_lm import VOCAB_SIZE

    inst = get_task("char_lm", **TASK_OPTIONS).build(seed)
    torch.manual_seed(seed)
    model = MoEGPT(VOCAB_SIZE, TASK_OPTIONS["context"])
    opt = optimlab.create(model, name, head="lm_head", nonfinite="error", lr=lr)
    failed = {"eval_loss": math.inf, "cv": math.inf}
    for t in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = inst.loss(model, inst.batch(t))
        if not torch.isfinite(loss):
            return failed
        loss.backward()
        try:
            opt.step()
        except FloatingPointError:
            return failed
    for m in model.moes():
        m.counts.zero_()
        m.track = True
    with torch.no_grad():
        ev = inst.evaluate(model)
    for m in model.moes():
        m.track = False
    value = float(ev["eval_loss"])
    if not math.isfinite(value):
        return failed
    return {"eval_loss": value, "cv": statistics.fmean(load_cv(m.counts) for m in model.moes()),
            "max_share": max(float(m.counts.max() / m.counts.sum()) for m in model.moes())}


def _experiment(fast: bool, seeds: Sequence[int]) -> Outcome:
    cfg = FAST if fast else FULL
    tuned: dict[str, Tuned] = {}
    runs: dict[str, dict[float, dict[int, dict[str, float]]]] = {}
    for name in (NEW, REF) + (() if fast else CONTEXT):
        grid = [default_lr(name) * f for f in cfg["factors"]]
        runs[name] = {lr: {s: train(name, lr, s, cfg["steps"]) for s in seeds} for lr in grid}
        curve = {lr: [r[s]["eval_loss"] for s in seeds] for lr, r in runs[name].items()}
        means = {lr: (statistics.fmean(v) if all(map(math.isfinite, v)) else math.inf) for lr, v in curve.items()}
        best = min(curve, key=lambda lr: (means[lr], lr))
        tuned[name] = Tuned(name, curve, best, dict(zip(seeds, curve[best])))
    chosen = {name: runs[name][tuned[name].lr] for name in tuned}
    per_seed: dict[int, dict[str, float]] = {}
    passed: dict[int, bool] = {}
    for s in seeds:
        per_seed[s] = {f"{k}[{n}]": float(v) for n in tuned for k, v in chosen[n][s].items()}
        new, ref = chosen[NEW][s], chosen[REF][s]
        passed[s] = new["eval_loss"] < ref["eval_loss"] and new["cv"] < ref["cv"]
    diffs = {}
    for key in ("eval_loss", "cv"):
        a, b = [chosen[NEW][s][key] for s in seeds], [chosen[REF][s][key] for s in seeds]
        diffs[key] = str(paired_test(a, b)) if all(map(math.isfinite, a + b)) else "non-finite"
    fig, (ax_lr, ax_cv) = new_figure(2)
    plot_tuning(ax_lr, tuned, "eval_loss")
    ax_lr.set_title(f"MoE GPT on char_lm text: lr sweeps ({cfg['steps']} steps)")
    width = 0.8 / len(tuned)
    for i, n in enumerate(tuned):
        ax_cv.bar([j + i * width for j in range(len(seeds))], [chosen[n][s]["cv"] for s in seeds], width,
                  color=f"C{i}", label=f"{n} @ lr {tuned[n].lr:g}")
    ax_cv.set_xticks([j + 0.4 - width / 2 for j in range(len(seeds))], [f"seed {s}" for s in seeds])
    ax_cv.set(ylabel="expert load CV (mean over MoE layers)", title="load imbalance at the tuned lr")
    ax_cv.legend(fontsize=7)
    fig.tight_layout()
    explanation = (f"{cfg['steps']} steps, tuned lr: " + ", ".join(
        f"{n} eval loss {tuned[n].mean():.4f}, CV {statistics.fmean(chosen[n][s]['cv'] for s in seeds):.3f} "
        f"(lr {tuned[n].lr:g})" for n in tuned)
        + f"; paired {NEW} − {REF}: eval loss {diffs['eval_loss']}, CV {diffs['cv']}"
        + f" (need {NEW} below {REF} in both on every seed)")
    details: dict[str, Any] = {
        "config": {"model": {"d": D, "heads": HEADS, "layers": LAYERS, "experts": EXPERTS, "top": TOP},
                   "task_options": TASK_OPTIONS, "factors": list(cfg["factors"]), "steps": cfg["steps"]},
        "chosen_lr": {n: t.lr for n, t in tuned.items()},
        "runs": {n: {str(lr): {str(s): r for s, r in by_seed.items()} for lr, by_seed in rs.items()}
                 for n, rs in runs.items()},
        "paired": diffs}
    return Outcome(per_seed, passed, explanation, fig, details,
                   grid_edges=grid_edges({k: tuned[k] for k in (NEW, REF)}))


SYMMETRY_LOAD = register(Claim(
    id="symmetry-stack-moe-load-balance",
    paper="Symmetry-Compatible Principle for Optimizer Design: Embeddings, LM Heads, SwiGLU MLPs, and MoE Routers "
          "(Lau & Su)",
    arxiv="2605.18106",
    statement="The symmetry-compatible stack reaches a lower final loss and less MoE load imbalance than AdamW "
              "(Qwen3-0.6B / OLMoE-1B-7B scale; no CPU-checkable numbers).",
    optimizers=(NEW, REF, *CONTEXT),
    protocol="proxy: 2-block MoE-SwiGLU GPT (width 32, 4 experts, top-2, no aux loss) on char_lm text (context 32, "
             "batch 16), 400 steps (fast 30); lr tuned per optimizer on default × {1/8 … 8} (fast × {1/2, 1, 2}) by "
             "the seed-mean final eval loss; load CV of the top-2 assignments on the evaluation windows; "
             "symmetry_hybrid as context",
    rule="per seed at the tuned lrs: eval loss(symmetry_muon) < eval loss(AdamW) and load CV(symmetry_muon) < load "
         "CV(AdamW); a tuned lr at a grid edge makes it inconclusive",
    margin="strictly lower in both, every seed, no tolerance",
    experiment=_experiment,
))
