"""``torch.compile(opt.step)``: compile time and compiled vs eager step time, at the default settings.

    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) PYTHONPATH=src python benchmarks/compile_step.py --threads 1

An MLP of 4 Linear(256, 256) layers with fixed gradients; per optimizer: the first compiled call (tracing
+ inductor, cold cache when TORCHINDUCTOR_CACHE_DIR is fresh), then eager and compiled steps in alternation,
median of 20 after 3 warm-up, beside a compiled step with ``nonfinite="ignore"`` (no check: the check's
cost inside the compiled graph); and the graph breaks ``torch._dynamo.explain`` finds in a steady-state step.
"""

import argparse
import statistics
import time

import torch

import optimlab


def model():
    torch.manual_seed(0)
    m = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(4)])
    for p in m.parameters():
        p.grad = torch.randn_like(p) * 1e-2
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--optimizers", nargs="+", default=["adamw", "muon", "lion", "sgd"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.optimizers:
        torch._dynamo.reset()
        eager = optimlab.create(model(), name)
        comp_opt = optimlab.create(model(), name)
        comp = torch.compile(comp_opt.step)
        t0 = time.perf_counter()
        comp()
        first = time.perf_counter() - t0
        free = torch.compile(optimlab.create(model(), name, nonfinite="ignore").step)
        free()
        te, tc, tf = [], [], []
        for _ in range(23):
            for f, ts in ((eager.step, te), (comp, tc), (free, tf)):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
        e, c, n = (statistics.median(t[3:]) for t in (te, tc, tf))
        probe = optimlab.create(model(), name)
        probe.step()  # state exists: a steady-state step is explained
        breaks = torch._dynamo.explain(probe.step)().graph_break_count
        print(f"{name}: first compiled call {first:.1f} s; eager {1e3 * e:.2f} ms, compiled {1e3 * c:.2f} ms "
              f"(compiled/eager {c / e:.2f}; graph breaks {breaks}); compiled without the check "
              f"(nonfinite='ignore') {1e3 * n:.2f} ms", flush=True)


if __name__ == "__main__":
    main()
