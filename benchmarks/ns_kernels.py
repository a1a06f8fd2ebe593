"""Time optimlab's Newton–Schulz kernel against torch.optim.Muon's.

Workload: a stack of ``--batch`` (default 12) matrices of ``--size`` x ``--size`` (512),
``--steps`` (5) iterations of Keller Jordan's quintic, in bfloat16 and float32:

* ``torch``        - ``torch.optim._muon._zeropower_via_newtonschulz`` called once per matrix.
  That function always computes in bfloat16, so for the float32 rows the baseline is the
  same op sequence (mm, addmm, addmm per step) run in float32 ("torch-ops fp32").
* ``ours/matrix``  - ``optimlab.linalg.newton_schulz`` called once per matrix.
* ``ours/stacked`` - one call on the (batch, m, n) stack (bmm / baddbmm).
* ``ours native``  - (with ``--native-lowp``) our kernel forced onto native low-precision
  GEMMs, i.e. the same arithmetic as torch's kernels (relevant on CPUs without bf16 hardware,
  where the default path runs bf16 GEMMs as float32 GEMMs + rounding; see the module doc).

All variants are timed interleaved (one round = one call of each), ``--warmup`` rounds are
discarded, and the median (and min) over ``--repeats`` rounds is reported with the achieved
GFLOP/s, counting per matrix and step ``2 m^2 n + 2 m^3 + 2 m^2 n`` flops (wide orientation,
m <= n), and the machine's plain matmul rate ``A @ B`` for the same dtype and shapes.

Usage: python benchmarks/ns_kernels.py [--threads 2] [--steps 5] [--repeats 20]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch.optim._muon import _zeropower_via_newtonschulz

from optimlab.linalg import newton_schulz, ns_coefficients
from optimlab.linalg.orthogonalize import _emulate_lowp, _newton_schulz_impl

JORDAN = (3.4445, -4.7750, 2.0315)
EPS = 1e-7


def torch_ops(G: torch.Tensor, steps: int, dtype: torch.dtype) -> torch.Tensor:
    """torch's NS op sequence in ``dtype`` (torch's function itself is hard-wired to bf16)."""
    a, b, c = JORDAN
    X = G.to(dtype, copy=True)
    if G.size(0) > G.size(1):
        X = X.T
    X.div_(X.norm().clamp(min=EPS))
    for _ in range(steps):
        A = X @ X.T
        B = torch.addmm(A, A, A, beta=b, alpha=c)
        X = torch.addmm(X, B, X, beta=a)
    return X.T if G.size(0) > G.size(1) else X


def timed_rounds(fns: dict, warmup: int, repeats: int) -> dict[str, list[float]]:
    for _ in range(warmup):
        for prep, fn in fns.values():
            fn(prep())
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, (prep, fn) in fns.items():
            arg = prep()  # untimed (fresh inputs where the callee would mutate them)
            t0 = time.perf_counter()
            fn(arg)
            out[k].append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--steps", type=int, default=5, help="Newton–Schulz steps (default 5)")
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--size", type=int, default=512, help="matrices are size x size")
    ap.add_argument("--cols", type=int, default=None, help="n (default: --size); m = --size")
    ap.add_argument("--repeats", type=int, default=20, help="timed rounds (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dtypes", default="bf16,fp32")
    ap.add_argument("--native-lowp", action="store_true", help="also time our native-bf16 path")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    m, n = args.size, args.cols or args.size
    small, big = min(m, n), max(m, n)
    flops_ns = args.batch * args.steps * (4 * small * small * big + 2 * small**3)
    flops_mm = args.batch * 2 * m * n * n  # A (m x n) @ B (n x n)
    coeffs = ns_coefficients("jordan", args.steps)
    names = {"bf16": torch.bfloat16, "fp32": torch.float32}

    print(
        f"torch {torch.__version__} | {platform.processor() or platform.machine()} | "
        f"capability {torch.backends.cpu.get_cpu_capability()} | threads {torch.get_num_threads()} | "
        f"{args.batch} x ({m}, {n}), steps {args.steps}, median of {args.repeats} (min in brackets)"
    )
    for name in args.dtypes.split(","):
        dt = names[name]
        S = torch.randn(args.batch, m, n).to(dt)
        mats = list(S.unbind(0))
        fns = {}
        if dt == torch.float32:
            fns["torch-ops fp32"] = (lambda: mats, lambda ms: [torch_ops(g, args.steps, dt) for g in ms])
        else:
            # torch's function divides a bf16 input in place (it aliases it): give it fresh copies
            fns["torch"] = (
                lambda: [g.clone() for g in mats],
                lambda ms: [_zeropower_via_newtonschulz(g, JORDAN, args.steps, EPS) for g in ms],
            )
        fns["ours/matrix"] = (lambda: mats, lambda ms: [newton_schulz(g, args.steps, dtype=dt) for g in ms])
        fns["ours/stacked"] = (lambda: S, lambda s: newton_schulz(s, args.steps, dtype=dt))
        if args.native_lowp and dt != torch.float32:
            fns["ours native/matrix"] = (
                lambda: mats,
                lambda ms: [_newton_schulz_impl(g, coeffs, None, dt, EPS, emulate=False) for g in ms],
            )
        # plain matmul rate in this dtype (and fp32 for reference when we emulate low precision)
        B = torch.randn(args.batch, n, n).to(dt)
        fns["matmul A@B /matrix"] = (lambda: None, lambda _: [a @ b for a, b in zip(mats, B.unbind(0))])
        fns["matmul A@B stacked"] = (lambda: None, lambda _: S @ B)
        emulated = _emulate_lowp(dt, S.device)
        if emulated:
            S32, B32 = S.float(), B.float()
            fns["matmul fp32 stacked"] = (lambda: None, lambda _: S32 @ B32)

        res = timed_rounds(fns, args.warmup, args.repeats)
        med = {k: statistics.median(v) for k, v in res.items()}
        mm_rate = flops_mm / min(med["matmul A@B /matrix"], med["matmul A@B stacked"]) / 1e9
        base = med.get("torch", med.get("torch-ops fp32"))
        print(f"\n[{name}] path: {'fp32 GEMMs + bf16 rounding (emulated)' if emulated else 'native ' + name}")
        print(f"{'variant':22s} {'median ms':>10s} {'(min)':>9s} {'ours/torch':>10s} {'GFLOP/s':>8s} {'of mm':>7s}")
        for k, v in res.items():
            t = med[k]
            if k.startswith("matmul"):
                gf = flops_mm / t / 1e9
                print(f"{k:22s} {t * 1e3:10.1f} {min(v) * 1e3:9.1f} {'':>10s} {gf:8.1f}")
                continue
            gf = flops_ns / t / 1e9
            ratio = "" if k.startswith("torch") else f"{t / base:10.3f}"
            print(f"{k:22s} {t * 1e3:10.1f} {min(v) * 1e3:9.1f} {ratio:>10s} {gf:8.1f} {gf / mm_rate:7.2f}")
        if emulated:
            r32 = flops_mm / med["matmul fp32 stacked"] / 1e9
            best = min(med["ours/matrix"], med["ours/stacked"])
            print(f"(fp32 matmul rate {r32:.1f} GFLOP/s; best ours = {flops_ns / best / 1e9 / r32:.2f} of it)")


if __name__ == "__main__":
    main()
