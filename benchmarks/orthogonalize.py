"""Orthogonalization backends on a GPT-like matrix set: error vs time, share of the matmul rate, Muon step time.

Matrix set (d = 512): 4 attention matrices 512×512 (one batched stack), the MLP pair 2048×512 and
512×2048, and a per-head stack 8×(64×512) (each slice its own matrix). Inputs are gradient-like:
random orthogonal factors and power-law singular values sigma_i = 1/(1+i) (condition number = rank);
(a) also reports the errors on i.i.d. Gaussian matrices of the same shapes (Marchenko–Pastur spectrum).

(a) error vs time. Every backend runs the whole set (one batched call per shape); rounds are interleaved
    (one call of every backend per round, the machine is shared with other processes) and the median
    over --repeats rounds is reported (QDWH and SVD: 3 rounds of their own), with the error of the output against the exact polar factor
    (float64 SVD): relative Frobenius ||X - UVᵀ||_F / ||UVᵀ||_F and spectral ||X - UVᵀ||_2 (worst matrix).
(b) share of the matmul rate. FLOPs of the quintic iteration (wide orientation m <= n, per step
    4 m² n + 2 m³) over its time, against the time of exactly the same GEMMs (X Xᵀ, A A, B X per step,
    torch.mm / bmm into preallocated outputs, same dtype and shapes) measured interleaved in the same run.
    bf16 on a CPU without bf16 hardware runs as fp32 GEMMs + rounding (see linalg/orthogonalize.py), so
    its floor is the fp32 GEMM time.
(c) Muon step time. The 12 matrices of two transformer blocks (8 × 512², 2 × 2048×512, 2 × 512×2048),
    fixed gradients, Muon defaults (lr 0.02, momentum 0.95, Nesterov, weight decay 0.01), 5 steps of
    Keller Jordan's quintic for torch.optim.Muon. bf16: torch's own Muon; fp32: torch.optim.Muon with its
    NS function patched to cast to float32 instead of bfloat16 (the same op sequence). Ours: the same
    algorithm, and a faster configuration of equal or lower orthogonality error. Interleaved steps,
    medians; the orthogonality error of each configuration is measured on the first step's momentum.
    torch.optim.Muon in bf16 takes about a minute per step on a CPU without bf16 hardware: it is timed
    apart, over 3 steps (1 with --quick).

    python benchmarks/orthogonalize.py [--threads 2] [--repeats 10] [--quick] [--png FILE] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

import optimlab
from optimlab.linalg import aol_newton_schulz, gram_newton_schulz, newton_schulz, orthogonalize, polar_svd, qdwh
from optimlab.linalg._ns import _emulate_lowp

F32, F64, BF16 = torch.float32, torch.float64, torch.bfloat16


# ----------------------------------------------------------------------------- inputs


def gradient_like(b: int, m: int, n: int, g: torch.Generator, device: str) -> torch.Tensor:
    """Random orthogonal factors, singular values 1/(1+i): a decaying spectrum like real gradients'."""
    k = min(m, n)
    U, _ = torch.linalg.qr(torch.randn(b, m, k, generator=g, dtype=F64))
    V, _ = torch.linalg.qr(torch.randn(b, n, k, generator=g, dtype=F64))
    s = 1.0 / torch.arange(1, k + 1, dtype=F64)
    return ((U * s) @ V.mT).float().to(device)


SHAPES = {"attn 4x512x512": (4, 512, 512), "mlp 2048x512": (1, 2048, 512), "mlp 512x2048": (1, 512, 2048),
          "heads 8x64x512": (8, 64, 512)}


def matrix_set(device: str, kind: str = "gradient", seed: int = 0) -> dict[str, torch.Tensor]:
    """The GPT-like set: gradient-like inputs, or i.i.d. Gaussian entries (``kind="gaussian"``)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return {k: torch.randn(*s, generator=g).to(device) for k, s in SHAPES.items()}
    return {k: gradient_like(*s, g, device) for k, s in SHAPES.items()}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def interleaved(fns: dict, repeats: int, warmup: int, device: str) -> dict[str, float]:
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            times[k].append(timed(f, device))
    return {k: statistics.median(v) for k, v in times.items()}


# ----------------------------------------------------------------------------- (a) error vs time


def backends(quick: bool) -> dict:
    out = {
        "NS jordan-5 fp32 (torch.optim.Muon's)": lambda G: newton_schulz(G, 5, dtype=F32),
        "NS jordan-5 bf16": lambda G: newton_schulz(G, 5),
        "NS polar_express-5 fp32": lambda G: newton_schulz(G, 5, "polar_express", dtype=F32),
        "NS dion-5 fp32": lambda G: newton_schulz(G, 5, "dion", dtype=F32),
        "AOL turbo-4 fp32 (Turbo-Muon)": lambda G: aol_newton_schulz(G, 4, dtype=F32),
        "AOL turbo-4 bf16": lambda G: aol_newton_schulz(G, 4),
        "Gram jordan-5 fp32": lambda G: gram_newton_schulz(G, 5, dtype=F32),
        "Gram polar_express-5 fp32": lambda G: gram_newton_schulz(G, 5, "polar_express", dtype=F32),
        "Gram+AOL turbo-4 fp32": lambda G: gram_newton_schulz(G, 4, "turbo", precondition="aol", dtype=F32),
        "Gram+AOL turbo-4 bf16": lambda G: gram_newton_schulz(G, 4, "turbo", precondition="aol"),
        "Gram dion-5 fp32": lambda G: gram_newton_schulz(G, 5, "dion", dtype=F32),
        "QDWH fp32": lambda G: qdwh(G),
        "torch.linalg.svd fp32": lambda G: _svd_polar32(G),
    }
    if quick:
        for k in ("NS polar_express-5 fp32", "Gram polar_express-5 fp32", "NS jordan-5 bf16"):
            out.pop(k)
    return out


def _svd_polar32(G: torch.Tensor) -> torch.Tensor:
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    return U @ Vh


def _errors(f, mats: dict, exact: dict) -> tuple[float, float]:
    rel, spec = 0.0, 0.0
    for k, G in mats.items():
        D = f(G).double() - exact[k]
        rel = max(rel, (D.norm(dim=(-2, -1)) / exact[k].norm(dim=(-2, -1))).max().item())
        spec = max(spec, torch.linalg.matrix_norm(D, ord=2).max().item())
    return rel, spec


def part_a(mats: dict, args) -> list[tuple[str, float, float, float]]:
    gauss = matrix_set(args.device, "gaussian")
    exact = {k: polar_svd(G.double()) for k, G in mats.items()}
    exact_g = {k: polar_svd(G.double()) for k, G in gauss.items()}
    fns = {name: (lambda f=f: [f(G) for G in mats.values()]) for name, f in backends(args.quick).items()}
    # The exact methods cost 5-7x an NS call: 3 rounds of their own after the interleaved ones.
    slow = {k: fns.pop(k) for k in ("QDWH fp32", "torch.linalg.svd fp32")}
    med = interleaved(fns, args.repeats, 1, args.device)
    med.update(interleaved(slow, 3, 0, args.device))
    rows = []
    print(f"\n(a) error vs time, whole set, median of {args.repeats} interleaved rounds; worst matrix's "
          f"error vs exact polar factor on gradient-like and on Gaussian inputs")
    print(f"{'backend':40s} {'ms':>8s} {'/NS-5':>6s} | {'grad relF':>9s} {'grad spec':>9s} | "
          f"{'gauss relF':>10s} {'gauss spec':>10s}")
    base = med[next(iter(med))]
    for name, f in backends(args.quick).items():
        rel, spec = _errors(f, mats, exact)
        rel_g, spec_g = _errors(f, gauss, exact_g)
        rows.append((name, med[name], rel, spec))
        print(f"{name:40s} {med[name] * 1e3:8.1f} {med[name] / base:6.3f} | {rel:9.4f} {spec:9.4f} | "
              f"{rel_g:10.4f} {spec_g:10.4f}")
    if args.png:
        _plot(rows, args.png)
    return rows


def _plot(rows, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8))
    markers = "osD^v<>pPX*h"
    for i, (name, t, rel, _) in enumerate(rows):
        ax.scatter(t * 1e3, rel, marker=markers[i % len(markers)], label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time for the GPT-like set (ms, median)")
    ax.set_ylabel("relative Frobenius error vs exact polar factor")
    ax.set_title("Orthogonalization backends, gradient-like inputs (benchmarks/orthogonalize.py)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"(figure written to {path})")


# ----------------------------------------------------------------------------- (b) matmul-rate share


def ns_flops(mats: dict, steps: int) -> float:
    total = 0.0
    for G in mats.values():
        b, m, n = G.shape
        m, n = min(m, n), max(m, n)
        total += b * steps * (4 * m * m * n + 2 * m**3)
    return total


def gemm_floor(mats: dict, steps: int, dtype: torch.dtype):
    """The NS iteration's GEMMs alone (into preallocated outputs), same shapes and dtype."""
    bufs = []
    for G in mats.values():
        X = (G if G.shape[-2] <= G.shape[-1] else G.mT).to(dtype).contiguous()
        A = X.new_empty(*X.shape[:-1], X.shape[-2])
        bufs.append((X, A, torch.empty_like(A), torch.empty_like(X)))

    def run():
        for X, A, B, C in bufs:
            for _ in range(steps):
                torch.bmm(X, X.mT, out=A)
                torch.bmm(A, A, out=B)
                torch.bmm(B, X, out=C)
    return run


def part_b(mats: dict, args) -> None:
    steps = 5
    flops = ns_flops(mats, steps)
    fns = {"NS jordan-5 fp32": lambda: [newton_schulz(G, steps, dtype=F32) for G in mats.values()],
           "GEMM floor fp32": gemm_floor(mats, steps, F32)}
    emulated = _emulate_lowp(BF16, torch.device(args.device))
    fns["NS jordan-5 bf16"] = lambda: [newton_schulz(G, steps) for G in mats.values()]
    if not emulated:
        fns["GEMM floor bf16"] = gemm_floor(mats, steps, BF16)
    med = interleaved(fns, args.repeats, 1, args.device)
    print(f"\n(b) share of the matmul rate, {flops / 1e9:.1f} GFLOP per set ({steps} steps), "
          f"median of {args.repeats}")
    for name, t in med.items():
        print(f"{name:24s} {t * 1e3:9.1f} ms {flops / t / 1e9:8.1f} GFLOP/s")
    print(f"share fp32: {med['GEMM floor fp32'] / med['NS jordan-5 fp32']:.3f}")
    floor_bf = med.get("GEMM floor bf16", med["GEMM floor fp32"])
    print(f"share bf16 ({'emulated: fp32 GEMM floor' if emulated else 'native bf16 GEMM floor'}): "
          f"{floor_bf / med['NS jordan-5 bf16']:.3f}")


# ----------------------------------------------------------------------------- (c) Muon step time


def _ns_fp32(grad, ns_coefficients, ns_steps, eps):
    """torch.optim.Muon's op sequence with float32 instead of bfloat16 (patched in for the fp32 rows)."""
    a, b, c = ns_coefficients
    X = grad.float()
    if grad.size(0) > grad.size(1):
        X = X.T
    X = X.div(X.norm().clamp(min=eps))
    for _ in range(ns_steps):
        A = X @ X.T
        B = torch.addmm(A, A, A, beta=b, alpha=c)
        X = torch.addmm(X, B, X, beta=a)
    return X.T if grad.size(0) > grad.size(1) else X


@contextlib.contextmanager
def torch_ns_in(dtype: torch.dtype):
    import torch.optim._muon as tm

    orig = tm._zeropower_via_newtonschulz
    if dtype == F32:
        tm._zeropower_via_newtonschulz = _ns_fp32
    try:
        yield
    finally:
        tm._zeropower_via_newtonschulz = orig


def block_params(device: str) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(1)
    shapes = [(512, 512)] * 4 + [(2048, 512), (512, 2048)]
    ps = []
    for s in shapes * 2:
        p = torch.nn.Parameter((torch.randn(*s, generator=g) * 0.02).to(device))
        p.grad = gradient_like(1, *s, g, device)[0]
        ps.append(p)
    return ps


OURS = {
    "ours, same algorithm (NS jordan-5)": dict(),
    "ours, Gram for rectangles (jordan-5)": dict(ortho_backend="gram"),
    "ours, Gram dion-5": dict(ortho_backend="gram", ns_coefficients="dion"),
    "ours, Gram polar_express-5": dict(ortho_backend="gram", ns_coefficients="polar_express"),
    "ours, Gram dion-5, no restart (fp32)": dict(ortho_backend="gram", ns_coefficients="dion", gram_restarts=()),
    "ours, AOL turbo-4 (turbo_muon)": dict(ns_precondition="aol", ns_steps=4, ns_coefficients="turbo"),
    "ours, Gram + AOL turbo-4": dict(ortho_backend="gram", ns_precondition="aol", ns_steps=4,
                                     ns_coefficients="turbo"),
}


def _orth_error(fn, inputs: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Worst ||fn(M) - polar(M)||_2 on the first step's momenta (the first Nesterov momentum is a
    multiple of the gradient, so M = g; every method here is scale invariant)."""
    return max(torch.linalg.matrix_norm(fn(M).double() - P, ord=2).max().item() for M, P in inputs)


def _ours(hp: dict, dtype: torch.dtype):
    return lambda M: orthogonalize(M.unsqueeze(0), hp.get("ortho_backend", "newton_schulz"),
                                   steps=hp.get("ns_steps", 5), schedule=hp.get("ns_coefficients", "jordan"),
                                   dtype=dtype, precondition=hp.get("ns_precondition", "frobenius"),
                                   restarts=hp.get("gram_restarts", (2,)))[0]


def _torch_ns(dtype: torch.dtype, emulate: bool):
    """torch.optim.Muon's own NS output (fp32: the patched op sequence). ``emulate``: our emulated-bf16
    kernel stands in for torch's bf16 one (same arithmetic up to summation order; it takes ~5 s per
    512 x 512 matrix on a CPU without bf16 hardware)."""
    import torch.optim._muon as tm

    jordan = (3.4445, -4.7750, 2.0315)
    if dtype == F32:
        return lambda M: _ns_fp32(M, jordan, 5, 1e-7)
    if emulate:
        return lambda M: newton_schulz(M, 5)
    return lambda M: tm._zeropower_via_newtonschulz(M.clone(), jordan, 5, 1e-7)


def part_c(args) -> None:
    inputs = [(p.grad, polar_svd(p.grad.double())) for p in block_params(args.device)]
    for name in args.dtypes.split(","):
        dtype = {"fp32": F32, "bf16": BF16}[name]
        torch_params = block_params(args.device)
        topt = torch.optim.Muon(torch_params, lr=0.02, weight_decay=0.01, momentum=0.95, nesterov=True)
        fns = {}

        def torch_step(o=topt, d=dtype):
            with torch_ns_in(d):
                o.step()
        probe = timed(torch_step, args.device)
        slow = probe > 2.0  # bf16 GEMMs without bf16 hardware: about a minute per step
        reps = (1 if args.quick else 3) if slow else args.repeats
        fns["torch.optim.Muon"] = torch_step
        for label, hp in OURS.items():
            ps = block_params(args.device)
            o = optimlab.create(ps, "muon", lr=0.02, weight_decay=0.01, ns_dtype=name, nonfinite="ignore", **hp)
            fns[label] = o.step
        if slow:  # time torch's (very slow) step apart from the interleaved rounds of ours
            t_torch = statistics.median([probe] + [timed(torch_step, args.device) for _ in range(reps - 1)])
            fns.pop("torch.optim.Muon")
            med = interleaved(fns, args.repeats, 2, args.device)
            med = {"torch.optim.Muon": t_torch, **med}
        else:
            med = interleaved(fns, args.repeats, 2, args.device)
        base = med["torch.optim.Muon"]
        # torch's own bf16 NS takes ~5 s per 512² matrix here; its output is estimated with our emulated
        # kernel unless --exact-torch-error (measured once: 0.3250 real vs 0.3249 estimated, see BENCHMARKS.md).
        proxy = dtype == BF16 and slow and not args.exact_torch_error
        e_torch = _orth_error(_torch_ns(dtype, emulate=proxy), inputs)
        print(f"\n(c) Muon step, {name}, 12 matrices of 2 blocks; medians of {args.repeats} interleaved steps"
              + (f" (torch.optim.Muon: {reps} steps, timed apart: {base:.1f} s each)" if slow else ""))
        print(f"{'configuration':40s} {'ms/step':>10s} {'/ torch':>8s} {'spectral err':>13s}")
        for label, t in med.items():
            err = e_torch if label == "torch.optim.Muon" else _orth_error(_ours(OURS[label], dtype), inputs)
            print(f"{label:40s} {t * 1e3:10.1f} {t / base:8.3f} {err:13.4f}")
        if proxy:
            print("(torch's bf16 error estimated with our emulated-bf16 kernel; --exact-torch-error runs torch's)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    ap.add_argument("--repeats", type=int, default=10, help="timed rounds per measurement (median)")
    ap.add_argument("--quick", action="store_true", help="3 repeats, fewer backends, torch bf16 Muon once")
    ap.add_argument("--png", default=None, help="write the error-vs-time figure of (a) here")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--parts", default="abc", help="which of a, b, c to run")
    ap.add_argument("--dtypes", default="fp32,bf16", help="(c) step dtypes, of fp32 and bf16")
    ap.add_argument("--exact-torch-error", action="store_true",
                    help="(c) compute torch.optim.Muon's bf16 error with its own (slow on CPU) kernel")
    args = ap.parse_args()
    if args.quick:
        args.repeats = min(args.repeats, 3)
    torch.set_num_threads(args.threads)
    mats = matrix_set(args.device)
    dev = torch.cuda.get_device_name() if args.device == "cuda" else (
        f"CPU {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, bf16 GEMMs "
        + ("emulated (fp32 + rounding)" if _emulate_lowp(BF16, torch.device("cpu")) else "native"))
    print(f"torch {torch.__version__} | {dev} | set: " + ", ".join(mats))
    if "a" in args.parts:
        part_a(mats, args)
    if "b" in args.parts:
        part_b(mats, args)
    if "c" in args.parts:
        part_c(args)


if __name__ == "__main__":
    main()
