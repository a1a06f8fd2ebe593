"""Zeroth-order recursive (SPIDER/SARAH) gradient estimator of the δ-smoothed function.

Form (the seed's background for Chen, Xu, Luo, "Faster Gradient-Free Algorithms for Nonsmooth Nonconvex
Stochastic Optimization", arXiv:2301.06428; batch sizes and epoch length are our defaults, the paper's
constants need the paper): with w uniform on the unit sphere of all d parameters,

    g(x; w) = d/(2δ)·[f(x + δw) − f(x − δw)]·w
    v_t = (1/b₁) Σ_{j≤b₁} g(x_t; w_j)                                   every ``epoch`` steps (t ≡ 1 mod epoch)
    v_t = v_{t−1} + (1/b₂) Σ_{j≤b₂} [g(x_t; w_j) − g(x_{t−1}; w_j)]      otherwise (same w_j at both points)
    x_{t+1} = x_t − lr·v_t

State: ``v`` and ``prev`` (x_{t−1}); the directions are regenerated from the seed, never stored.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform
from .zeroth_order import CHUNK, _check_contiguous, _chunk_z, _chunks, _mix, _Perturbation, refuse_nonfinite, trainable

__all__ = ["ZOSpider"]


def _swap(params, prevs) -> None:
    for p, q in zip(params, prevs):
        tmp = p.detach().clone()
        p.detach().copy_(q)
        q.copy_(tmp)


class ZOSpider(Transform):
    name = "zo_spider"
    rule = "v ← mean g(x_t; w) (every epoch) or v + mean[g(x_t; w) − g(x_{t−1}; w)];  x ← x − lr·v"
    hparams = {
        "delta": HParam("float", 1e-3, "smoothing radius δ (parameter units)", low=0.0, low_open=True),
        "epoch": HParam("int", 10, "steps between full estimates", low=1, high=10**6),
        "b1": HParam("int", 16, "directions of a full estimate", low=1, high=4096),
        "b2": HParam("int", 2, "directions of a recursive correction", low=1, high=4096),
        "seed": HParam("int", 0, "seed of the directions", low=0, high=2**31 - 1),
    }

    def init(self, p: Tensor, group: dict) -> dict[str, Tensor]:
        return {"v": torch.zeros_like(p), "prev": p.detach().clone()}

    def prepare(self, b: Bucket) -> None:
        b.ctx.shared("zo_spider", lambda: self._estimate(b))

    def _quotients(self, ctx: Any, step: int, count: int, delta: float, seed: int, salt: int) -> list[tuple]:
        """For each direction j: (its chunk keys, its norm, d/(2δ)·[f(x+δw) − f(x−δw)]) at the current x."""
        params = trainable(ctx)
        d = sum(p.numel() for p in params)
        out = []
        for j in range(count):
            keys = [[_mix(seed, step, salt, j, i, k) for k, _ in _chunks(p)] for i, p in enumerate(params)]
            norm = math.sqrt(sum(float(_chunk_z(p, keys[i][k], v.numel()).double().square().sum())
                                 for i, p in enumerate(params) for k, v in _chunks(p)))
            pert = _Perturbation(params, delta / norm, keys)
            try:
                pert.move(+1)
                fp = ctx.value()
                pert.move(-1)
                fm = ctx.value()
            finally:
                pert.move(0)
            if not refuse_nonfinite(ctx, fp, (float(fp), float(fm)), "x ± δw"):
                return []
            if ctx.loss is None:
                ctx.loss = (fp + fm) / 2
            out.append((keys, norm, d * (float(fp) - float(fm)) / (2 * delta)))
        return out

    def _estimate(self, b: Bucket) -> dict[str, Any]:
        ctx, g = b.ctx, b.group
        params = trainable(ctx)
        _check_contiguous(ctx.name, params)
        step = b.steps[0]
        full = (step - 1) % g["epoch"] == 0
        count = g["b1"] if full else g["b2"]
        terms = [(keys, norm, c / count) for keys, norm, c in
                 self._quotients(ctx, step, count, g["delta"], g["seed"], 0)]
        if not full and not ctx.skip:
            prevs = [ctx.opt.state[p]["zo_spider.prev"] for p in params]
            _swap(params, prevs)  # evaluate the same directions at x_{t−1}
            try:
                loss = ctx.loss
                old = self._quotients(ctx, step, count, g["delta"], g["seed"], 0)
                ctx.loss = loss
            finally:
                _swap(params, prevs)
            terms += [(keys, norm, -c / count) for keys, norm, c in old]
        return {"full": full, "terms": terms, "index": {id(p): i for i, p in enumerate(params)}}

    def update(self, b: Bucket) -> None:
        est = b.ctx.shared("zo_spider", lambda: self._estimate(b))
        for p, v, prev in zip(b.params, b.state(self, "v"), b.state(self, "prev")):
            i = est["index"][id(p)]
            if est["full"]:
                v.zero_()
            vv = v.view(-1)
            for keys, norm, c in est["terms"]:
                for k, chunk in _chunks(p):
                    vv[k * CHUNK:k * CHUNK + chunk.numel()].add_(_chunk_z(p, keys[i][k], chunk.numel()), alpha=c / norm)
            prev.copy_(p.detach())
        b.set_updates(b.state(self, "v"), owned=False)
