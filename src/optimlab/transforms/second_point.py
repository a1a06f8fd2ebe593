"""Work done at a second point *while the closure's graph is alive there*: ``reevaluate_with``.

``ctx.reevaluate(deltas)`` (core/context.py) moves every parameter by δ, calls the closure and restores the
parameters and their ``.grad`` exactly; it returns the loss and gradients there. Some rules need more than
the gradients at the second point: a Hessian-vector product at ``x + δ`` (N-HARPG's correction at a random
point between two iterates), or Hutchinson probes of the Hessian of another part of the batch (cross-fitted
Sophia). Those must be taken before the parameters are restored (the double backward reads the parameters'
saved versions). ``reevaluate_with`` runs a ``probe`` right after the closure, inside the same
``ctx.reevaluate`` call, so the counting, the in-place check, the non-finite policy and the exact restore are
core's. It only swaps ``ctx.closure`` for the duration of the call (a public slot of the step context).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["reevaluate_with", "hvp_probe"]


def reevaluate_with(ctx: Any, deltas: Sequence[Tensor | None], probe: Callable[[], Any],
                    closure: Callable[[], Any] | None = None) -> tuple[Any, list[Tensor | None], Any]:
    """``(loss, grads, probe())`` at ``x + δ``: ``closure`` (default: the step's) is called there, then
    ``probe()`` while the parameters are still moved and ``p.grad`` holds the second point's gradients.
    The recipe must declare ``needs={"reevaluate"}``."""
    user = ctx.closure
    call = user if closure is None else closure
    found: dict[str, Any] = {}

    def wrapped() -> Any:
        loss = call()
        found["probe"] = probe()
        return loss

    ctx.closure = wrapped
    try:
        loss, grads = ctx.reevaluate(deltas)
    finally:
        ctx.closure = user
    return loss, grads, found["probe"]


def hvp_probe(ctx: Any, vectors: Sequence[Tensor | None]) -> Callable[[], list[Tensor | None]]:
    """A probe for :func:`reevaluate_with`: ``H v`` at the second point (one entry per ``ctx.params``), by double
    backward through the gradients the closure left there (the closure must call
    ``loss.backward(create_graph=True)``). An entry is None where the vector is None or the parameter has no
    gradient graph there (the closure did not reach it, or did not back-propagate): the caller decides what that
    means (N-HARPG drops the transport term for it; cross-fitted Sophia takes no curvature for it)."""

    def probe() -> list[Tensor | None]:
        pairs = [(i, p) for i, p in enumerate(ctx.params)
                 if vectors[i] is not None and p.grad is not None and p.grad.requires_grad]
        out: list[Tensor | None] = [None] * len(ctx.params)
        if not pairs:
            return out
        try:
            hv = torch.autograd.grad([p.grad for _, p in pairs], ctx.params,
                                     grad_outputs=[vectors[i] for i, _ in pairs], allow_unused=True)
        except RuntimeError as err:
            raise ValueError(f"{ctx.name}: needs Hessian-vector products, but the model has no second "
                             f"derivatives (double backward failed: {err})") from err
        reached = {i for i, _ in pairs}
        return [(torch.zeros_like(p) if h is None else h.detach()) if i in reached else None
                for i, (h, p) in enumerate(zip(hv, ctx.params))]

    return probe
