"""Run in a fresh process: the peak resident memory of one kind of step on a 1M-parameter MLP.

Usage: ``python zo_memory_probe.py MODE`` with MODE ``forward`` (inference under no_grad), ``zo_sgd``
(two ZO-SGD steps) or ``sgd`` (two backprop SGD steps). Prints one JSON line: the peak above the baseline
taken before the model was built (``VmHWM`` after resetting it through ``/proc/self/clear_refs``, Linux ≥
4.0), the parameter bytes, the fix-up count of the exact restore, and whether any ``.grad`` appeared.
The OS's own accounting counts every allocation (torch's CPU allocator keeps no peak statistics); run with
``MALLOC_MMAP_THRESHOLD_=8192`` so that freed blocks above 8 KiB go back to the OS and the peak is the live peak.
"""

import json
import sys

import torch
from torch import nn

import optimlab


def rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def no_huge_pages() -> None:
    """PR_SET_THP_DISABLE: transparent huge pages would make RSS jump in 2 MiB steps at random."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(mode: str) -> None:
    no_huge_pages()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = torch.randn(32, 1000), torch.randint(0, 10, (32,))
    warm = nn.Sequential(nn.Linear(1000, 8), nn.Tanh(), nn.Linear(8, 10))  # lazy library setup, outside the peak
    loss = nn.functional.cross_entropy(warm(x), y)
    loss.backward()
    optimlab.create(warm, "zo_sgd").step(lambda: nn.functional.cross_entropy(warm(x), y))
    del warm, loss
    base = rss("VmRSS")
    model = nn.Sequential(nn.Linear(1000, 1000), nn.Tanh(), nn.Linear(1000, 10))
    closure = lambda: nn.functional.cross_entropy(model(x), y)  # noqa: E731
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    if mode == "forward":
        with torch.no_grad():
            closure()
    elif mode == "zo_sgd":
        opt = optimlab.create(model, "zo_sgd", lr=1e-3)
        for _ in range(2):
            opt.step(closure)
    elif mode == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        for _ in range(2):
            opt.zero_grad(set_to_none=False)
            closure().backward()
            opt.step()
    peak = rss("VmHWM") - base
    print(json.dumps({"mode": mode, "peak_bytes": peak, "param_bytes": sum(p.numel() * 4 for p in model.parameters()),
                      "params": sum(p.numel() for p in model.parameters()),
                      "grads": any(p.grad is not None for p in model.parameters())}))


if __name__ == "__main__":
    main(sys.argv[1])
