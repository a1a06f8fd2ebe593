"""The non-finite gradient check: one fused reduction pass over the gradients, no host sync in it.

``flags(grads)`` returns, per device, a 0-d float32 tensor that is 1.0 when some gradient *may* hold a NaN
or an Inf: the L2 norms of all gradients come from one ``torch._foreach_norm`` call (a multi-tensor
kernel: one read of each gradient, no per-tensor Python work), and NaN/±Inf propagate through a sum of
squares. A sum of squares can also overflow for huge finite values, so a raised flag is only a
suspicion: ``first_nonfinite`` then checks the tensors one by one (slow, and only on that rare path).
The flag is in the form torch's fused optimizers take as ``found_inf`` (they skip the update when it
is 1), which lets the engine launch fused kernels before it ever reads the flag on the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["flags", "raised", "first_nonfinite"]

_LOW = (torch.float16, torch.bfloat16)


def flags(grads: Sequence[Tensor]) -> dict[torch.device, Tensor]:
    """{device: 0-d float32 tensor, 1.0 where some gradient on that device may be non-finite}."""
    by_device: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for g in grads:
        by_device.setdefault((g.device, g.dtype), []).append(g)
    out: dict[torch.device, Tensor] = {}
    for (device, dtype), gs in by_device.items():
        # fp16/bf16 norms are accumulated and returned in fp32 so that they do not overflow at 65504; fp32 and
        # fp64 take the call without dtype= (torch's multi-tensor fast path on CUDA)
        norms = torch._foreach_norm(gs, 2, dtype=torch.float32) if dtype in _LOW else torch._foreach_norm(gs, 2)
        # the sum of the norms is NaN or Inf when some gradient is (or when huge finite norms overflow)
        s = torch.stack(norms).sum().float()
        bad = s.isfinite().logical_not().float()  # float32, as torch's fused kernels take found_inf
        out[device] = torch.maximum(out[device], bad) if device in out else bad
    return out


def raised(found: dict[torch.device, Tensor]) -> bool:
    """Whether any flag is set: the one host synchronisation of a checked step."""
    return any(bool(f) for f in found.values())


def first_nonfinite(grads: Sequence[Tensor]) -> int | None:
    """Index of the first gradient with a NaN or Inf, or None (the exact, per-tensor check)."""
    for i, g in enumerate(grads):
        if not bool(g.isfinite().all()):
            return i
    return None
