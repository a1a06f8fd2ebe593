"""AdamW step, two optimizers timed in alternation in one process (robust to a noisy shared machine).

    python benchmarks/adamw_interleaved.py SET THREADS            # torch fused AdamW vs optimlab adamw
    python benchmarks/adamw_interleaved.py SET THREADS --check    # optimlab adamw: nonfinite ignore vs error

SET is `linear12` or `gpt` (see step_time.py). Median of 50 steps after 10 warm-up each.
"""

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
import step_time as st  # noqa: E402

import optimlab  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("set", choices=["linear12", "gpt"])
    ap.add_argument("threads", type=int)
    ap.add_argument("--check", action="store_true", help="measure the cost of nonfinite='error'")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g1, g2 = st.param_set(args.set), st.param_set(args.set)
    if args.check:
        labels = ("nonfinite=ignore", "nonfinite=error")
        a = st.build("optimlab_adamw", g1)[0]
        b = optimlab.create([{"params": ps, "role": r} for r, ps in g2.items()], "adamw", lr=1e-3)
    else:
        labels = ("torch AdamW fused", "optimlab adamw")
        a, b = st.build("torch_adamw_fused", g1)[0], st.build("optimlab_adamw", g2)[0]
    ta, tb = [], []
    for _ in range(60):
        for opt, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            opt.step()
            times.append(time.perf_counter() - t0)
    ma, mb = statistics.median(ta[10:]), statistics.median(tb[10:])
    print(f"{args.set}, {args.threads} thread(s): {labels[0]} {1e3 * ma:.2f} ms, {labels[1]} {1e3 * mb:.2f} ms, "
          f"ratio {mb / ma:.3f}")


if __name__ == "__main__":
    main()
