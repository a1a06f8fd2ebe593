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
  adamw_prepass  AdamW with a global ‖g‖² pre-pass added in front (a probe transform declaring needs
                 {"global"}; one foreach norm and one sync per step): adamw_prepass / adamw is the pre-pass's
                 cost on an AdamW step

--methods: the cost per step of each closure-using method on one model (an MLP 64-256-256-10 on a fixed
batch of 64, closure = zero_grad + forward + backward): closure evaluations per step (forward+backward
passes, counted by the engine) and wall time per step relative to SGD with the same closure, interleaved.

All optimlab configurations run with nonfinite="ignore" (torch has no such check) and fused=False (the
pre-pass recipes have no fused kernel; AdamW unfused keeps the comparison to one code path).

    python benchmarks/closure_cost.py [--rounds 15] [--steps 5] [--threads 1] [--methods]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import optimlab
from optimlab.core import engine
from optimlab.core.context import StepContext, sq_norm
from optimlab.core.recipe import Recipe
from optimlab.core.registry import get_recipe
from optimlab.core.transform import Transform, chain


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


class _GradNormProbe(Transform):
    """A pre-pass only: adds the bucket's ‖g‖² to a global reduction and reads the total once per step."""

    name = "probe"

    def prepare(self, b):
        b.ctx.add("probe.g_sq", sq_norm(b.grads))

    def update(self, b):
        b.ctx.shared("probe.total", lambda: float(b.ctx.total("probe.g_sq")))


def _adamw_prepass() -> Recipe:
    base = get_recipe("adamw")
    chains = {role: chain(_GradNormProbe(), *c.transforms) for role, c in base.chains.items()}
    return base.replace("adamw_prepass", chains=chains, defaults={r: base.defaults.get(r, {}) for r in chains},
                        needs=frozenset({"global"}))


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
    base = _adamw_prepass() if name == "adamw_prepass" else "adamw" if name.startswith("adamw") else name
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
    ap.add_argument("--methods", action="store_true", help="cost per step of the closure-using methods")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.methods:
        return methods(args)
    names = ["adamw", "adamw_prepass", "adamw_no_ctx", "torch_adamw", "sgd", "induced_metric", "dog"]
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
    print(f"adamw_prepass / adamw     = {med['adamw_prepass'] / med['adamw']:.3f}  (global ‖g‖² pre-pass on AdamW)")
    opt = opts["adamw"][0]
    start = time.perf_counter()
    for _ in range(1000):  # the context's own work for a recipe without needs, alone
        StepContext.begin(opt, None).prepare([], [])
    per = (time.perf_counter() - start) / 1000
    print(f"StepContext.begin + prepare alone: {per * 1e6:.1f} µs/step = {per / med['adamw'] * 100:.3f}% of the AdamW step")
    print(f"induced_metric / sgd      = {med['induced_metric'] / med['sgd']:.3f}  (global ‖g‖² pre-pass)")
    print(f"dog / sgd                 = {med['dog'] / med['sgd']:.3f}  (‖g‖², ‖x − x₀‖² pre-pass)")


CLOSURE_METHODS = ["sgd", "sps", "polyak_momentum", "sania_adagrad_sqr", "sania_adam_sqr", "aegd", "fd_gr", "igt",
                   "o2nc", "spider_ngd", "smb", "udog", "adam+safe_radius"]


def _method(name):
    from optimlab.optimizers.ghosts import safe_radius

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Tanh(), torch.nn.Linear(256, 256), torch.nn.Tanh(),
                              torch.nn.Linear(256, 10))
    x, y = torch.randn(64, 64), torch.randint(0, 10, (64,))
    opt = optimlab.create(net, safe_radius("adam") if name == "adam+safe_radius" else name,
                          **({"lr": 1e-3} if name in ("sgd", "adam+safe_radius") else {}))

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        return loss

    closure.outputs = lambda: net(x)
    return opt, closure


def methods(args) -> None:
    runs = {n: _method(n) for n in CLOSURE_METHODS}
    for opt, closure in runs.values():
        for _ in range(3):
            opt.step(closure)
    times = {n: [] for n in CLOSURE_METHODS}
    evals = {}
    for r in range(args.rounds):
        for n in (CLOSURE_METHODS if r % 2 == 0 else CLOSURE_METHODS[::-1]):
            opt, closure = runs[n]
            before = opt.closure_evals
            start = time.perf_counter()
            for _ in range(args.steps):
                opt.step(closure)
            times[n].append((time.perf_counter() - start) / args.steps)
            evals[n] = (opt.closure_evals - before) / args.steps
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"MLP 64-256-256-10, batch 64, {args.threads} thread(s), median of {args.rounds} rounds x {args.steps} steps")
    print(f"  {'method':<18} {'evals/step':>10} {'ms/step':>9} {'time / sgd':>11}")
    for n in CLOSURE_METHODS:
        print(f"  {n:<18} {evals[n]:10.2f} {med[n] * 1e3:9.3f} {med[n] / med['sgd']:11.2f}")


if __name__ == "__main__":
    main()
