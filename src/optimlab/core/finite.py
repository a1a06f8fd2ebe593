"""The non-finite gradient check: one fused reduction pass over the gradients, no host sync in it.

:class:`Check` reads every gradient once with one ``torch._foreach_norm`` call per (device, dtype) (a
multi-tensor kernel: no per-tensor Python work) and keeps, per device, a 0-d float32 flag: 1.0 when some
gradient there may have a NaN or an Inf, in the form torch's fused optimizers take as ``found_inf`` (they
skip the update when it is 1), which lets the engine launch fused kernels before it ever reads the flag.

On accelerators the norm is the max-norm, which is exact as a test: NaN propagates through it, ±Inf gives
Inf, and a finite tensor gives a finite value. On CPU torch's max-norm is ~20× slower than its 2-norm (not
vectorised), so the CPU flag is the 2-norm, NaN/Inf propagating through a sum of squares; the sum can also
overflow on huge finite gradients (≥ ~1e19), so a raised CPU flag is confirmed gradient by gradient
(:meth:`Check.bad`) and a false alarm runs the step after all.

Reading the flag on the host is a synchronisation. On an accelerator the engine may *defer* it when every
chain of the step was served by a fused kernel that skips itself (:meth:`Check.defer`): the per-gradient
norms are copied to host memory without blocking, behind an event, and read at the start of the next
``step()`` (or ``state_dict()``, ``settle()``), by which time the copy is long done. On CPU there is nothing
to overlap, so the flag is read at once (``DEFER_ON_CPU`` exists for the tests, and makes the CPU flag exact).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["Check", "flags", "raised", "first_nonfinite", "messages", "DEFER_ON_CPU"]

_LOW = (torch.float16, torch.bfloat16)
DEFER_ON_CPU = False  # tests set it to exercise the deferred path on CPU


class Check:
    """One step's check of ``grads``: per-device flags (``found``), exact per-gradient verdicts on demand."""

    __slots__ = ("found", "_parts", "_grads", "_host", "_events")

    def __init__(self, grads: Sequence[Tensor], compiled: bool = False):
        by_key: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, g in enumerate(grads):
            by_key.setdefault((g.device, g.dtype), []).append(i)
        self.found: dict[torch.device, Tensor] = {}
        self._parts: list[tuple[list[int], Tensor, bool]] = []  # (indices, their norms, exact?) per key
        for (device, dtype), idx in by_key.items():
            gs = [grads[i] for i in idx]
            part_exact = compiled or device.type != "cpu" or DEFER_ON_CPU
            order = float("inf") if part_exact else 2.0
            if compiled:  # exact, and lowered by inductor into its own reduction (its CPU max-norm is eager's)
                norms = [g.abs().amax() for g in gs]
            # fp16/bf16 norms come back in fp32 (no overflow at 65504; found_inf is fp32); fp32/fp64 take the
            # call without dtype= (torch's multi-tensor fast path on CUDA)
            elif dtype in _LOW:
                norms = torch._foreach_norm(gs, order, dtype=torch.float32)
            else:
                norms = torch._foreach_norm(gs, order)
            vec = torch.stack(norms)  # native dtype: an fp64 norm of 1e300 is finite
            bad = vec.amax().isfinite().logical_not().float()  # NaN propagates through amax
            self.found[device] = torch.maximum(self.found[device], bad) if device in self.found else bad
            self._parts.append((idx, vec, part_exact))
        self._grads: Sequence[Tensor] | None = grads  # to confirm an inexact (CPU) flag; dropped by defer()
        self._host: list[tuple[list[int], Tensor, bool]] | None = None
        self._events: list = []

    def can_defer(self) -> bool:
        """Whether the flags are exact and reading them would stall an accelerator (never on CPU, unless
        ``DEFER_ON_CPU``)."""
        return all(exact for _, _, exact in self._parts)

    def defer(self) -> None:
        """Start copying the per-gradient norms to host memory without blocking; :meth:`bad` reads them."""
        self._host = [(idx, vec.to("cpu", non_blocking=True), exact) for idx, vec, exact in self._parts]
        self._grads = None  # no reference to last step's gradients is kept
        for d in self.found:
            if d.type == "cuda":
                ev = torch.cuda.Event()
                ev.record(torch.cuda.current_stream(d))
                self._events.append(ev)

    def assert_finite(self, messages: Sequence[str]) -> None:
        """One device-side assertion per gradient, ``messages[i]`` when gradient ``i`` is non-finite (no host
        read: under ``torch.compile`` it stays in the graph; it raises ``RuntimeError`` when the graph runs).
        Only meaningful on an exact check (``exact=True`` or an accelerator)."""
        for idx, vec, _ in self._parts:
            ok = vec.isfinite()
            for k, i in enumerate(idx):
                torch._assert_async(ok[k], messages[i])

    def flagged(self) -> bool:
        """Whether some flag is set (a host synchronisation): some gradient may be non-finite."""
        return any(bool(f) for f in self.found.values())

    def bad(self) -> int | None:
        """Index of the first non-finite gradient, or None (exact: an inexact flag is confirmed per gradient)."""
        if self._host is None:
            if not self.flagged():
                return None
            parts = self._parts
        else:
            for ev in self._events:  # recorded right after the copies: done long before the next step
                ev.synchronize()
            parts = self._host
        worst = None
        for idx, vec, exact in parts:
            for k in vec.isfinite().logical_not().nonzero().flatten().tolist():
                i = idx[k]
                if exact or not bool(self._grads[i].isfinite().all()):
                    worst = i if worst is None else min(worst, i)
                    break
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


def messages(name: str, work: Sequence[tuple[dict, Sequence[Tensor]]], late: bool = False) -> list[str]:
    """The ``"error"`` refusal naming each checked parameter (by name when its group has ``param_names``, else
    by its index in its group), in the order of the check's gradients (``work``: (group, parameters) pairs)."""
    what = "had NaN or Inf at the previous step(), whose check was deferred" if late else "has NaN or Inf"
    out = []
    for g, ps in work:
        names = g.get("param_names")
        for p in ps:
            j = next(k for k, q in enumerate(g["params"]) if q is p)  # identity: == on tensors compares values
            label = repr(names[j]) if names else f"#{j} of the {g['role']!r} group"
            out.append(f"{name}: gradient of parameter {label} (shape {tuple(p.shape)}) {what}; nothing was updated "
                       f"(nonfinite='error'; 'skip' skips such steps, 'ignore' checks nothing)")
    return out
