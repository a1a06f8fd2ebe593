"""The optimizer's collectives: torch.distributed calls with a bounded wait and clear errors, and byte counts.

Every collective is issued asynchronously and waited on with this optimizer's own ``timeout`` (default 300 s,
independent of the process group's, which is often 30 min): a rank that failed mid-step, or stopped calling
``step()``, turns into a :class:`DistributedStepError` on the others instead of a hang. After such an error
the process group is in an unknown state: tear it down and restart from the last checkpoint.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["DistributedStepError", "Comm", "as_bytes", "from_bytes", "ALIGN"]

ALIGN = 8  # byte alignment of every item in a packed payload (the largest element size we send)


class DistributedStepError(RuntimeError):
    """A collective of the optimizer step failed or timed out (another rank failed or diverged)."""


def as_bytes(t: Tensor) -> Tensor:
    """``t``'s bytes as a flat uint8 view (a copy when ``t`` is not contiguous)."""
    return t.contiguous().view(-1).view(torch.uint8)


def from_bytes(buf: Tensor, dtype: torch.dtype, shape: Any) -> Tensor:
    """A view of ``buf`` (uint8, aligned) as a tensor of ``dtype`` and ``shape``."""
    return buf.view(dtype).view(shape)


def padded(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


class Comm:
    """One optimizer's view of a process group: rank, world size, timeout, and counters."""

    def __init__(self, owner: str, group: Any = None, timeout: float = 300.0, bucket_cap_mb: float = 32.0):
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(f"{owner}: a process group was given but torch.distributed is not initialized; "
                               f"call torch.distributed.init_process_group first (torchrun sets the environment)")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"{owner}: timeout must be a number of seconds > 0, got {timeout!r}")
        if not (isinstance(bucket_cap_mb, (int, float)) and bucket_cap_mb > 0):
            raise ValueError(f"{owner}: bucket_cap_mb must be > 0, got {bucket_cap_mb!r}")
        self.owner = owner
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        self.timeout = float(timeout)
        self.cap_bytes = int(bucket_cap_mb * 2 ** 20)
        self.bytes_received = 0  # payload bytes this rank received from others (padding included)
        self.bytes_needed = 0  # the part of it that carried data
        self.collectives = 0

    def _wait(self, work: Any, what: str) -> None:
        try:
            work.wait(timeout=timedelta(seconds=self.timeout))
        except Exception as err:  # gloo: "Operation timed out!", "Connection closed by peer", ...
            raise DistributedStepError(
                f"{self.owner}: rank {self.rank}/{self.world}: the optimizer step's {what} failed or timed out "
                f"after {self.timeout:g} s ({type(err).__name__}: {err}). Another rank probably failed mid-step "
                f"(see its own error) or does not call step() in lockstep; the process group cannot be used "
                f"any more: restart from the last checkpoint") from err

    def all_gather(self, t: Tensor, what: str) -> Tensor:
        """``(world, *t.shape)``: every rank's ``t``."""
        out = torch.empty(self.world * t.numel(), dtype=t.dtype, device=t.device)
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # renamed in torch 2.13
        try:
            work = gather(out, t.contiguous().view(-1), group=self.group, async_op=True)
        except Exception as err:
            raise DistributedStepError(f"{self.owner}: rank {self.rank}: could not start the {what}: {err}") from err
        self._wait(work, what)
        self.collectives += 1
        return out.view(self.world, *t.shape)

    def gather_payloads(self, mine: Tensor, lengths: list[int], what: str = "all-gather of owner results"
                        ) -> list[Tensor]:
        """All ranks' byte payloads (``lengths[r]`` bytes from rank ``r``; ``mine`` is this rank's), sent in
        rounds of at most ``cap_bytes`` received per rank; returns one uint8 tensor per rank."""
        longest = max(lengths)
        out = [torch.empty(n, dtype=torch.uint8, device=mine.device) for n in lengths]
        if longest == 0:
            return out
        out[self.rank] = mine
        chunk = max(ALIGN, (self.cap_bytes // self.world) // ALIGN * ALIGN)
        buf = torch.zeros(chunk, dtype=torch.uint8, device=mine.device)
        for start in range(0, longest, chunk):
            n = min(chunk, longest - start)
            send = buf[:n]
            part = mine[start:start + n]
            send[:part.numel()].copy_(part)
            got = self.all_gather(send, what)
            for r in range(self.world):
                if r != self.rank and start < lengths[r]:
                    k = min(n, lengths[r] - start)
                    out[r][start:start + k].copy_(got[r, :k])
            self.bytes_received += n * (self.world - 1)
        self.bytes_needed += sum(lengths) - lengths[self.rank]
        return out

    def all_to_all(self, send: Tensor, send_splits: list[int], recv_splits: list[int], what: str) -> Tensor:
        """``all_to_all_single`` of uint8 payloads with the given split sizes (bytes)."""
        out = torch.empty(sum(recv_splits), dtype=torch.uint8, device=send.device)
        try:
            work = dist.all_to_all_single(out, send, recv_splits, send_splits, group=self.group, async_op=True)
        except Exception as err:
            raise DistributedStepError(f"{self.owner}: rank {self.rank}: could not start the {what}: {err}") from err
        self._wait(work, what)
        self.collectives += 1
        self.bytes_received += sum(recv_splits) - recv_splits[self.rank]
        self.bytes_needed += sum(recv_splits) - recv_splits[self.rank]
        return out
