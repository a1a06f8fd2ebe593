"""The non-finite gradient check: one fused reduction pass over the gradients, no host sync in it.

:class:`Check` reads every gradient once with ``torch._foreach_norm(gs, inf)`` (a multi-tensor kernel: the
largest magnitude of each gradient, no per-tensor Python work). The max-norm is exact as a test: NaN
propagates through it, ±Inf gives Inf, and every finite tensor gives a finite value (no sum that could
overflow on huge finite gradients, as a sum of squares did). Per device it keeps a 0-d float32 flag,
1.0 when some gradient there has a NaN or an Inf, in the form torch's fused optimizers take as
``found_inf`` (they skip the update when it is 1), which lets the engine launch fused kernels before it
ever reads the flag on the host.

Reading the flag on the host is a synchronisation. On an accelerator the engine may *defer* it when every
chain of the step was served by a fused kernel that skips itself (:meth:`Check.defer`): the flag and the
per-gradient maxima are copied to host memory without blocking, behind an event, and read at the start of
the next ``step()`` (or ``state_dict()``, ``settle()``), by which time the copy is long done. On CPU there
is nothing to overlap, so the flag is read at once (``DEFER_ON_CPU`` exists for the tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["Check", "flags", "raised", "first_nonfinite", "DEFER_ON_CPU"]

_LOW = (torch.float16, torch.bfloat16)
DEFER_ON_CPU = False  # tests set it to exercise the deferred path on CPU


class Check:
    """One step's check of ``grads``: per-device flags (``found``), exact per-gradient verdicts on demand."""

    __slots__ = ("found", "_parts", "_host", "_events")

    def __init__(self, grads: Sequence[Tensor]):
        by_key: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, g in enumerate(grads):
            by_key.setdefault((g.device, g.dtype), []).append(i)
        self.found: dict[torch.device, Tensor] = {}
        self._parts: list[tuple[list[int], Tensor]] = []  # (gradient indices, their max-norms) per key
        for (device, dtype), idx in by_key.items():
            gs = [grads[i] for i in idx]
            # fp16/bf16 maxima are returned in fp32 (found_inf is fp32); fp32/fp64 take torch's fast path
            norms = torch._foreach_norm(gs, float("inf"), dtype=torch.float32) if dtype in _LOW \
                else torch._foreach_norm(gs, float("inf"))
            vec = torch.stack(norms)  # native dtype: an fp64 maximum of 1e300 is finite
            bad = vec.amax().isfinite().logical_not().float()  # NaN propagates through amax
            self.found[device] = torch.maximum(self.found[device], bad) if device in self.found else bad
            self._parts.append((idx, vec))
        self._host: list[tuple[list[int], Tensor]] | None = None
        self._events: list = []

    def can_defer(self) -> bool:
        """Whether reading the flags would stall an accelerator (never on CPU unless ``DEFER_ON_CPU``)."""
        return all(d.type != "cpu" for d in self.found) or DEFER_ON_CPU

    def defer(self) -> None:
        """Start copying the per-gradient maxima to host memory without blocking; read them in ``bad()``."""
        self._host = [(idx, vec.to("cpu", non_blocking=True)) for idx, vec in self._parts]
        for d in self.found:
            if d.type == "cuda":
                ev = torch.cuda.Event()
                ev.record(torch.cuda.current_stream(d))
                self._events.append(ev)

    def raised(self) -> bool:
        """Whether some gradient is non-finite: a host synchronisation unless :meth:`defer` ran."""
        return self.bad() is not None

    def bad(self) -> int | None:
        """Index of the first non-finite gradient, or None."""
        if self._host is None:
            if not any(bool(f) for f in self.found.values()):  # the one host read of the happy path
                return None
            parts = self._parts
        else:
            for ev in self._events:  # recorded right after the copies: done long before the next step
                ev.synchronize()
            parts = self._host
        worst = None
        for idx, vec in parts:
            hits = vec.isfinite().logical_not().nonzero()
            if hits.numel():
                i = idx[int(hits[0])]
                worst = i if worst is None else min(worst, i)
        return worst


def flags(grads: Sequence[Tensor]) -> dict[torch.device, Tensor]:
    """{device: 0-d float32 tensor, 1.0 where some gradient on that device is non-finite}."""
    return Check(grads).found


def raised(found: dict[torch.device, Tensor]) -> bool:
    """Whether any flag is set: the one host synchronisation of a checked step."""
    return any(bool(f) for f in found.values())


def first_nonfinite(grads: Sequence[Tensor]) -> int | None:
    """Index of the first gradient with a NaN or Inf, or None (the exact, per-tensor check)."""
    for i, g in enumerate(grads):
        if not bool(g.isfinite().all()):
            return i
    return None
