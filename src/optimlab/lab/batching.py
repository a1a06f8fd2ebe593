"""Adaptive batch size in the runner: the norm test of AdAdaGrad on whole task batches (gradient accumulation).

``hparams={"batch_control": "norm_test(eta=0.5, start=2, max_mult=64)"}`` makes each step of a minibatch task
average the gradients of m consecutive task batches (size B each: ``task_options`` ``batch_size``), with m
chosen by the norm test (Byrd, Chin, Nocedal, Wu 2012; AdAdaGrad: Lau, Liu, Kolar, "AdAdaGrad: Adaptive Batch
Size Schemes for Adaptive Gradient Methods", arXiv:2402.11215): after a step with m batches, the per-example
variance is estimated from the m batch gradients, σ² ≈ B·s² (s²: their unbiased sample variance, summed over
coordinates), and the test Var/b > η²‖ḡ‖² with b = m·B asks for the next

    m' = max(m, ⌈s² / (η²‖ḡ‖²)⌉), capped at ``max_mult``

(never smaller: AdAdaGrad's batch only grows). The data stream is shared across steps: step t uses the task
batches n_t .. n_t + m_t − 1 where n_t counts every batch used before, so every example is still seen once per
epoch. The runner logs ``batch`` (examples in the step, m·B) and ``batch_mult`` every step; a resumed run
reads both back from the store (written with its checkpoint), so it continues bit-identically.

Pair it with ``adagrad_norm`` (or ``adagrad``) for AdAdaGrad(-Norm); any optimizer whose step reads only the
gradient (and the loss, given as the mean over the m batches) works. Recipes that re-evaluate the loss
through their closure, or evaluate it without gradients, are refused: their closure would see one batch.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import nn

from .schedules import parse_spec

__all__ = ["NormTestControl", "from_spec"]


class NormTestControl:
    """The norm-test batch multiplier (see the module docstring) and the shared batch stream."""

    def __init__(self, eta: float = 0.5, start: int = 2, max_mult: int = 64):
        if not isinstance(eta, (int, float)) or isinstance(eta, bool) or not math.isfinite(eta) or eta <= 0:
            raise ValueError(f"batch_control: eta must be a finite number > 0, got {eta!r}")
        for name, v, lo in (("start", start, 2), ("max_mult", max_mult, 2)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"batch_control: {name} must be an int >= {lo}, got {v!r}")
        if start > max_mult:
            raise ValueError(f"batch_control: start ({start}) must not exceed max_mult ({max_mult})")
        self.eta, self.mult, self.max_mult = float(eta), start, max_mult
        self.next_batch = 0  # index of the next task batch in the stream

    def restore(self, metrics: Mapping[str, list[tuple[int, float]]], step: int) -> None:
        """Continue after ``step`` from the run's logged ``batch_mult`` / ``next_mult`` (a resumed run)."""
        used = [(s, v) for s, v in metrics.get("batch_mult", []) if s <= step]
        nxt = [v for s, v in metrics.get("next_mult", []) if s == step]
        if len(used) != step or not nxt:
            raise ValueError(f"batch_control: the stored run lacks batch_mult/next_mult up to step {step}; "
                             f"restart it (restart=True)")
        self.next_batch = int(sum(v for _, v in used))
        self.mult = int(nxt[0])

    def step(self, instance: Any, model: nn.Module) -> tuple[torch.Tensor, list[tuple[str, float]]]:
        """Forward and backward over this step's m batches (gradients averaged into ``.grad``); returns the
        mean loss (detached) and the values to log; updates m for the next step."""
        params = [p for p in model.parameters() if p.requires_grad]
        m, first = self.mult, self.next_batch
        self.next_batch += m
        total = torch.zeros(())
        mean = sq = None  # running sums of the flattened batch gradients and of their squared norms
        prev = None
        for j in range(m):
            loss = instance.loss(model, instance.batch(first + j))
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"non-finite training loss {float(loss.detach())} in batch {j} of {m}")
            (loss / m).backward()
            total = total + loss.detach() / m
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
            g_j = (flat if prev is None else flat - prev) * m  # this batch's own gradient
            prev = flat
            mean = g_j.clone() if mean is None else mean + g_j
            sq = float(g_j @ g_j) + (0.0 if sq is None else sq)
        gbar = mean / m
        g2 = float(gbar @ gbar)
        s2 = (sq - m * g2) / (m - 1)  # Σ‖g_j − ḡ‖² / (m − 1)
        if g2 > 0 and math.isfinite(s2) and s2 / m > self.eta ** 2 * g2:
            self.mult = min(self.max_mult, max(self.mult, math.ceil(s2 / (self.eta ** 2 * g2))))
        size = _rows(instance.batch(first)) * m
        return total, [("batch", float(size)), ("batch_mult", float(m)), ("next_mult", float(self.mult))]


def _rows(batch: tuple) -> int:
    first = batch[0]
    return int(first.shape[0]) if isinstance(first, torch.Tensor) and first.ndim else 1


def from_spec(spec: Any, instance: Any, needs: frozenset) -> NormTestControl:
    """``"norm_test(eta=0.5, start=2, max_mult=64)"`` → the controller, after checking the task and recipe."""
    name, kwargs = parse_spec(spec, "batch_control", "norm_test(eta=0.5)")
    if name != "norm_test":
        raise ValueError(f"unknown batch_control {name!r}; the only one is 'norm_test(...)'")
    unknown = set(kwargs) - {"eta", "start", "max_mult"}
    if unknown:
        raise ValueError(f"batch_control {spec!r}: unknown options {sorted(unknown)}; known: eta, start, max_mult")
    if getattr(instance, "full_batch", False):
        raise ValueError("batch_control: the task is full-batch (batch_size=None); the norm test needs minibatches")
    if needs & {"reevaluate", "hvp", "value", "outputs"}:
        raise ValueError(f"batch_control: the optimizer re-evaluates the loss through its closure "
                         f"(needs {sorted(needs)}), which would see one batch; use a gradient-only optimizer")
    return NormTestControl(**kwargs)
