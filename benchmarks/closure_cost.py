"""What the step context costs: AdamW with and without it, and the global pre-pass of DoG / induced metric.

Parameter set: 12 weights of 512×512 (3.1 M parameters), fixed random gradients. Configurations, timed
interleaved in one process (rounds of --steps steps each; medians over --rounds rounds per step):

  adamw          optimlab AdamW as shipped (a StepContext per step, no pre-pass: AdamW declares no needs)
  adamw_no_ctx   the same optimizer with the engine's StepContext replaced by a do-nothing stand-in
                 (the engine as it was before the context) — the ratio adamw / adamw_no_ctx is the
                 context's cost for a recipe that declares nothing
  torch_adamw    torch.optim.AdamW (foreach), the peer
  sgd            optimlab SGD (no momentum): the same elementwise work as the two below, without pre-pass
  induced_metric global ‖g‖² pre-pass (one foreach norm over the gradients, one sync)
  dog            global ‖g‖² and ‖x − x₀‖² pre-pass (a foreach subtraction and two norms, one sync)

All optimlab configurations run with nonfinite="ignore" (torch has no such check) and fused=False (the
pre-pass recipes have no fused kernel; AdamW unfused keeps the comparison to one code path).

    python benchmarks/closure_cost.py [--rounds 15] [--steps 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import optimlab
from optimlab.core import engine
from optimlab.core.context import StepContext


class _NoContext:
    """Stand-in for StepContext: calls the closure like the engine did before, offers nothing else."""

    skip = False

    def __init__(self, loss):
        self.loss = loss

    @classmethod
    def begin(cls, opt, closure):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        return cls(loss)

    def prepare(self, jobs, fresh):
        pass


def params():
    g = torch.Generator().manual_seed(0)
    ps = []
    for _ in range(12):
        p = torch.nn.Parameter(torch.randn(512, 512, generator=g) * 0.02)
        p.grad = torch.randn(512, 512, generator=g) * 1e-3
        ps.append(p)
    return ps


def make(name):
    ps = params()
    if name == "torch_adamw":
        return torch.optim.AdamW(ps, lr=1e-3, foreach=True), None
    base = "adamw" if name.startswith("adamw") else name
    opt = optimlab.create(ps, base, nonfinite="ignore", fused=False)
    return opt, ("stub" if name == "adamw_no_ctx" else None)


def time_steps(opt, stub, steps):
    if stub:
        engine.StepContext = _NoContext
    try:
        start = time.perf_counter()
        for _ in range(steps):
            opt.step()
        return (time.perf_counter() - start) / steps
    finally:
        engine.StepContext = StepContext


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = ["adamw", "adamw_no_ctx", "torch_adamw", "sgd", "induced_metric", "dog"]
    opts = {n: make(n) for n in names}
    for opt, stub in opts.values():  # warm-up (state allocation)
        time_steps(opt, stub, 3)
    times = {n: [] for n in names}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            times[n].append(time_steps(*opts[n], args.steps))
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"12 x 512^2 params, {args.threads} thread(s), median of {args.rounds} rounds x {args.steps} steps")
    for n in names:
        print(f"  {n:<15} {med[n] * 1e3:8.3f} ms/step")
    print(f"adamw / adamw_no_ctx      = {med['adamw'] / med['adamw_no_ctx']:.3f}  (step context, no needs)")
    print(f"adamw / torch_adamw       = {med['adamw'] / med['torch_adamw']:.3f}")
    opt = opts["adamw"][0]
    start = time.perf_counter()
    for _ in range(1000):  # the context's own work for a recipe without needs, alone
        StepContext.begin(opt, None).prepare([], [])
    per = (time.perf_counter() - start) / 1000
    print(f"StepContext.begin + prepare alone: {per * 1e6:.1f} µs/step = {per / med['adamw'] * 100:.3f}% of the AdamW step")
    print(f"induced_metric / sgd      = {med['induced_metric'] / med['sgd']:.3f}  (global ‖g‖² pre-pass)")
    print(f"dog / sgd                 = {med['dog'] / med['sgd']:.3f}  (‖g‖², ‖x − x₀‖² pre-pass)")


if __name__ == "__main__":
    main()
