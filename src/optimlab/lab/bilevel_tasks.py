"""Bilevel tasks on the 8×8 digits (bundled with scikit-learn): data hyper-cleaning and per-weight L2.

Each builder returns a :class:`BilevelTask`: the outer parameters ``x0``, the inner start ``y0``, the inner
loss g(x, y), the outer loss f(x, y) (both callables on lists of tensors, as ``optimlab.bilevel`` expects),
and ``evaluate(x, y)`` with clean test metrics. Data splits and label noise come from the seed.

- ``hyper_cleaning``: a fraction ``noise`` of the training labels is replaced by a random *other* class;
  x = one logit per training example (weight σ(x_i)); g = Σ σ(x_i)·CE_i / n + reg·‖W‖²; f = CE on a clean
  validation split; evaluated by clean test accuracy and how much weight the noisy examples keep.
  (Franceschi et al., "Forward and Reverse Gradient-Based Hyperparameter Optimization", arXiv:1703.01785.)
- ``per_weight_l2``: multinomial logistic regression with one L2 coefficient per weight:
  x = log λ (64·10 + 10 = 650 hyperparameters), g = CE_train + ½ Σ exp(x_j)·y_j², f = CE_val
  (Lorraine et al., arXiv:1911.02590).
- ``global_l2``: the same with one scalar log λ (truncated back-propagation experiments).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["BilevelTask", "digits_splits", "hyper_cleaning", "per_weight_l2", "global_l2"]


@dataclass
class BilevelTask:
    x0: list[Tensor]
    y0: list[Tensor]
    inner_loss: Callable[[list[Tensor], list[Tensor]], Tensor]
    outer_loss: Callable[[list[Tensor], list[Tensor]], Tensor]
    evaluate: Callable[[list[Tensor], list[Tensor]], dict[str, float]]
    info: dict[str, Any] = field(default_factory=dict)


def digits_splits(seed: int, sizes: tuple[int, ...], dtype: torch.dtype = torch.float64) -> list[tuple[Tensor, Tensor]]:
    """Disjoint random splits of the 1,797 digits (pixels / 16, plus a constant 1 feature for the bias)."""
    from .tasks.classification import _digits

    x, y = _digits()
    if sum(sizes) > len(x):
        raise ValueError(f"digits has {len(x)} images, asked for {sum(sizes)}")
    perm = np.random.default_rng(seed).permutation(len(x))
    X = torch.tensor(np.concatenate([x / 16.0, np.ones((len(x), 1))], axis=1), dtype=dtype)
    Y = torch.tensor(y, dtype=torch.int64)
    out, off = [], 0
    for n in sizes:
        idx = torch.as_tensor(perm[off:off + n])
        out.append((X[idx], Y[idx]))
        off += n
    return out


def _logits(X: Tensor, W: Tensor) -> Tensor:
    return X @ W


def _acc(X: Tensor, Y: Tensor, W: Tensor) -> float:
    with torch.no_grad():
        return float((_logits(X, W).argmax(1) == Y).double().mean())


def hyper_cleaning(seed: int, noise: float = 0.5, n_train: int = 600, n_val: int = 300, n_test: int = 600,
                   reg: float = 1e-3, dtype: torch.dtype = torch.float64) -> BilevelTask:
    (Xt, Yt), (Xv, Yv), (Xs, Ys) = digits_splits(seed, (n_train, n_val, n_test), dtype)
    gen = torch.Generator().manual_seed(10_000 + seed)
    flip = torch.rand(n_train, generator=gen) < noise
    shift = torch.randint(1, 10, (n_train,), generator=gen)
    Yn = torch.where(flip, (Yt + shift) % 10, Yt)

    def inner(xs, ys):
        W = ys[0]
        return (torch.sigmoid(xs[0]) * F.cross_entropy(_logits(Xt, W), Yn, reduction="none")).mean() + reg * (W * W).sum()

    def outer(xs, ys):
        return F.cross_entropy(_logits(Xv, ys[0]), Yv)

    def evaluate(xs, ys):
        w = torch.sigmoid(xs[0].detach())
        return {"test_acc": _acc(Xs, Ys, ys[0].detach()), "val_loss": float(outer(xs, [ys[0].detach()])),
                "noisy_weight": float(w[flip].mean()), "clean_weight": float(w[~flip].mean())}

    return BilevelTask([torch.zeros(n_train, dtype=dtype)], [torch.zeros(65, 10, dtype=dtype)], inner, outer,
                       evaluate, {"noise": noise, "n_noisy": int(flip.sum())})


def per_weight_l2(seed: int, n_train: int = 100, n_val: int = 400, n_test: int = 600, init: float = -3.0,
                  dtype: torch.dtype = torch.float64) -> BilevelTask:
    (Xt, Yt), (Xv, Yv), (Xs, Ys) = digits_splits(seed, (n_train, n_val, n_test), dtype)

    def inner(xs, ys):
        return F.cross_entropy(_logits(Xt, ys[0]), Yt) + 0.5 * (xs[0].exp() * ys[0] ** 2).sum()

    def outer(xs, ys):
        return F.cross_entropy(_logits(Xv, ys[0]), Yv)

    def evaluate(xs, ys):
        return {"test_acc": _acc(Xs, Ys, ys[0].detach()), "val_loss": float(outer(xs, [ys[0].detach()]))}

    return BilevelTask([torch.full((65, 10), init, dtype=dtype)], [torch.zeros(65, 10, dtype=dtype)], inner, outer,
                       evaluate, {"hyperparameters": 650})


def global_l2(seed: int, n_train: int = 100, n_val: int = 400, n_test: int = 600, init: float = -3.0,
              dtype: torch.dtype = torch.float64) -> BilevelTask:
    task = per_weight_l2(seed, n_train, n_val, n_test, init, dtype)
    (Xt, Yt), = digits_splits(seed, (n_train,), dtype)

    def inner(xs, ys):
        return F.cross_entropy(_logits(Xt, ys[0]), Yt) + 0.5 * xs[0].exp() * (ys[0] ** 2).sum()

    return BilevelTask([torch.tensor(init, dtype=dtype)], task.y0, inner, task.outer_loss, task.evaluate,
                       {"hyperparameters": 1})
