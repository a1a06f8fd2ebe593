"""The non-finite check of a compiled step: on the device, with no graph break.

Under ``torch.compile`` (``nonfinite="error"``, one device) the engine cannot read the flag on the host
without splitting the graph, and torch's fused kernels (which take the flag as ``found_inf``) are not used.
So the step runs every chain, then keeps the old values wherever the flag is set —
``t.copy_(torch.where(bad, old, t))`` for the parameters and every state tensor, which inductor fuses into
the update itself — and asserts on the device, one ``torch._assert_async`` per gradient carrying the
message that names its parameter. A non-finite gradient therefore raises when the compiled graph runs,
as a ``RuntimeError`` (torch's device assertion) rather than ``FloatingPointError``, with the same message;
parameters and state tensors keep their values bit for bit, and the host-side bookkeeping (step counts,
state created by this step) is not applied either, since dynamo replays Python side effects only after
the graph has run. The check is the exact max-norm (no overflow false alarm to confirm on the host).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .finite import Check

__all__ = ["applies", "run"]


def applies(check: Check | None, nonfinite: str) -> bool:
    """Whether a compiled step takes the guarded path: an ``"error"`` check on a single device."""
    return check is not None and nonfinite == "error" and len(check.found) == 1


def _tensors(b: Any) -> list[Tensor]:
    out = list(b.params)
    for st in b.states:
        out.extend(v for v in st.values() if isinstance(v, Tensor))
    return out


def run(buckets: Sequence[tuple[Any, Any]], check: Check, messages: Sequence[str], ctx: Any) -> None:
    """Every chain (and the context's post-pass), then the masked write-back and the device assertions."""
    saved = [(t, t.clone()) for _, b in buckets for t in _tensors(b)]
    for chain, b in buckets:
        chain.step(b, fused=False)
    if any(c.finishes for c, _ in buckets):
        ctx.finish(buckets)
    bad = next(iter(check.found.values())).bool()
    for t, old in saved:
        t.copy_(torch.where(bad, old, t))
    check.assert_finite(messages)
