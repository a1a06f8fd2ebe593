"""Kronecker-factored preconditioners: step time and state bytes per parameter vs HeavyBall and pytorch_optimizer.

    python benchmarks/preconditioners.py --d 256 512 --threads 1 2 --rounds 3

Per d: the hidden part of a GPT-like set (2 blocks of 4 d×d attention matrices, a 4d×d / d×4d MLP pair,
13 LayerNorm-size vectors; embeddings and head left out: every method routes them to AdamW or would
precondition a 16d-long side). Every optimizer steps copies of the same parameters on fixed gradients,
interleaved step by step (the order rotated every step) so that load drift on a shared machine hits all
alike; a round = ``k`` = 10 steps of each (one root / basis refresh per round), after 2 warm-up steps
(initial eigendecompositions, lazy state). Matched settings: preconditioner refresh every 10 steps; Shampoo
blocks of 512; SOAP unblocked (max dim 10000); PSGD Kron fitting every step (probability 1, the schedules'
first 500 steps), triangular factors up to 8192. HeavyBall runs eager (``heavyball.utils.compile_mode =
None``: its default compiles every block, minutes of CPU time per shape). Reported: median ms per step,
the per-round ratio of ours to the fastest peer of the same method (median [min, max]), optimizer-state
bytes per parameter. Then the root / basis kernels (``bench_roots``): time, bmm-equivalents and share of the
matmul rate measured in the same run.

On a shared machine the ratios from the interleaved rounds are the robust numbers, absolute times are not.
"""

import argparse
import statistics
import time

import torch

import optimlab
from optimlab.linalg.roots import inv_root_eigh, inv_root_newton, refresh_eigenbasis


def gpt_hidden(d: int):
    g = torch.Generator().manual_seed(0)
    shapes = ([(d, d)] * 4 + [(4 * d, d), (d, 4 * d)]) * 2 + [(d,)] * 13
    ps = []
    for s in shapes:
        p = torch.nn.Parameter(torch.randn(*s, generator=g) * 0.02)
        p.grad = torch.randn(*s, generator=g)
        ps.append(p)
    return ps


def clone(ps):
    out = []
    for p in ps:
        q = torch.nn.Parameter(p.detach().clone())
        q.grad = p.grad.clone()
        out.append(q)
    return out


def ours(ps, name, **hp):
    groups = [{"params": [p for p in ps if p.ndim == 2], "role": "matrix"},
              {"params": [p for p in ps if p.ndim == 1], "role": "vector"}]
    return optimlab.create(groups, name, **hp)


def state_bytes(opt, ps) -> float:
    def walk(x):
        if torch.is_tensor(x):
            return x.numel() * x.element_size() if x.numel() > 1 else 0
        if isinstance(x, dict):
            return sum(walk(v) for v in x.values())
        if isinstance(x, (list, tuple)):
            return sum(walk(v) for v in x)
        if hasattr(x, "__dict__") and not isinstance(x, type):  # peers keep state in helper objects
            return walk(vars(x))
        return 0
    return walk([opt.state[p] for p in ps if p in opt.state]) / sum(p.numel() for p in ps)


def builders():
    import heavyball
    import pytorch_optimizer as po

    heavyball.utils.compile_mode = None  # eager: see the module docstring
    k = 10
    return {
        "shampoo": {
            "optimlab": lambda ps: ours(ps, "shampoo", precondition_frequency=k, block_size=512),
            "pytorch_optimizer": lambda ps: po.ScalableShampoo(ps, lr=1e-3, block_size=512,
                                                               preconditioning_compute_steps=k,
                                                               start_preconditioning_step=1, graft_type=3),
        },
        "soap": {
            "optimlab": lambda ps: ours(ps, "soap", precondition_frequency=k),
            "pytorch_optimizer": lambda ps: po.SOAP(ps, precondition_frequency=k),
            "heavyball": lambda ps: heavyball.SOAP(ps, precondition_frequency=k, max_precond_dim=10000,
                                                   merge_dims=False, use_precond_schedule=False),
        },
        "psgd_kron": {
            "optimlab": lambda ps: ours(ps, "psgd_kron"),
            "pytorch_optimizer": lambda ps: po.Kron(ps, pre_conditioner_update_probability=1.0),
            "heavyball": lambda ps: heavyball.PSGDKron(ps, preconditioner_update_probability=1.0,
                                                       max_size_triangular=8192),
        },
        "asgo": {"optimlab": lambda ps: ours(ps, "asgo", precondition_frequency=k)},
        "adamw (reference)": {"optimlab": lambda ps: ours(ps, "adamw")},
    }


def bench_methods(d: int, threads: list[int], rounds: int, only: list[str] | None,
                  peers: list[str] | None = None) -> None:
    base = gpt_hidden(d)
    n = sum(p.numel() for p in base) / 1e6
    for method, impls in builders().items():
        if only and method not in only:
            continue
        runs = {}
        for who, make in impls.items():
            if peers and who != "optimlab" and who not in peers:
                continue
            ps = clone(base)
            try:
                runs[who] = (make(ps), ps, [p.grad for p in ps])  # the gradients, kept: see below
            except Exception as e:  # a peer that cannot take this set is reported, not fatal
                print(f"  {method} {who}: not run ({type(e).__name__}: {e})", flush=True)
        for th in threads:
            torch.set_num_threads(th)
            times = {w: [] for w in runs}
            order = list(runs)
            for r in range(rounds + 1):  # round 0: 2 warm-up steps (initial bases, lazy state), not reported
                acc = dict.fromkeys(runs, 0.0)
                for s in range(10 if r else 2):  # interleaved step by step, order rotated: load drift hits all alike
                    for w in order[s % len(order):] + order[:s % len(order)]:
                        opt, ps, grads = runs[w]
                        for p, gr in zip(ps, grads):  # HeavyBall sets .grad to None after a step
                            p.grad = gr
                        t0 = time.perf_counter()
                        opt.step()
                        acc[w] += time.perf_counter() - t0
                for w in runs:
                    times[w].append(acc[w] / 10)  # rounds ≥ 1 hold 10 steps: one refresh each
            t = {w: v[1:] for w, v in times.items()}
            others = [w for w in t if w != "optimlab"]
            line = [f"d={d} ({n:.2f}M) {th} thr {method}:"]
            for w in t:
                line.append(f"{w} {1e3 * statistics.median(t[w]):.1f} ms/step, "
                            f"{state_bytes(runs[w][0], runs[w][1]):.2f} B/param")
            if others:
                best = [min(t[w][i] for w in others) for i in range(rounds)]
                ratio = [a / b for a, b in zip(t["optimlab"], best)]
                line.append(f"ratio to fastest peer {statistics.median(ratio):.2f} [{min(ratio):.2f}, {max(ratio):.2f}]")
            print("  ".join(line) + f"  ({load()})", flush=True)
        del runs


def bench_roots(d: int, threads: list[int], reps: int = 5) -> None:
    """The root / basis kernels on a stack of 4 SPD d×d matrices (κ ≈ 1e3 + ε), each against a 4×d×d bmm.

    Reported per kernel: median time, its cost in bmm-equivalents, and its *share of the matmul rate*: the
    time a block of bmm calls with the kernel's nominal flops takes, measured right after the kernel in the
    same repetition, over the kernel's time (1.0 = the kernel runs at the GEMM rate; back to back, so a
    load change on a shared machine hits both). Nominal flops per matrix: eigh with vectors 9d³ (Golub &
    Van Loan: tridiagonal reduction, its accumulation and the implicit QR sweeps) + 2d³ for V·diag·Vᵀ; the
    coupled Newton iteration (p = 4) 5 matmuls = 10d³ per step (X T, T², T³, T⁴, T⁴ M), 10 steps (tol 0: a
    fixed count); SOAP's refresh 2d³ (L Q) + 8/3 d³ (Householder QR with Q formed).
    """
    g = torch.Generator().manual_seed(0)
    X = torch.randn(4, d, 2 * d, generator=g)
    A = X @ X.mT / (2 * d)
    Q0 = torch.linalg.qr(torch.randn(4, d, d, generator=g))[0]
    bmm_flops = 2 * d**3
    flops = {"eigh": 11 * d**3, "newton": 10 * 10 * d**3, "qr refresh": (2 + 8 / 3) * d**3}
    kernels = {"eigh": lambda: inv_root_eigh(A, 4, 1e-6),
               "newton": lambda: inv_root_newton(A, 4, 1e-6, max_iter=10, tol=0.0),
               "qr refresh": lambda: refresh_eigenbasis(A, Q0)}
    for th in threads:
        torch.set_num_threads(th)
        t_k = {k: [] for k in kernels}
        share = {k: [] for k in kernels}
        t_mm = []
        for f in (*kernels.values(), lambda: torch.bmm(A, A)):  # warm-up (thread pool, allocator)
            f()
        for _ in range(reps):
            for k, f in kernels.items():
                t0 = time.perf_counter()
                f()
                t_k[k].append(time.perf_counter() - t0)
                n = max(1, round(flops[k] / bmm_flops))
                t0 = time.perf_counter()
                for _ in range(n):
                    torch.bmm(A, A)
                dt = (time.perf_counter() - t0) / n
                t_mm.append(dt)
                share[k].append(flops[k] / bmm_flops * dt / t_k[k][-1])
        mm = statistics.median(t_mm)
        parts = [f"roots d={d} {th} thr: bmm {1e3 * mm:.2f} ms ({4 * bmm_flops / mm / 1e9:.1f} GFLOP/s)"]
        for k in kernels:
            tk = statistics.median(t_k[k])
            parts.append(f"{k} {1e3 * tk:.1f} ms = {tk / mm:.1f} bmm, share of the matmul rate "
                         f"{statistics.median(share[k]):.2f} [{min(share[k]):.2f}, {max(share[k]):.2f}]")
        print("; ".join(parts) + f"  ({load()})", flush=True)


def load() -> str:
    try:
        return "load average %.1f" % float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return "load average unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="methods to run (default: all)")
    ap.add_argument("--peers", nargs="*", help="peers to run (default: all)")
    ap.add_argument("--skip-roots", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {load()}", flush=True)
    for d in args.d:
        bench_methods(d, args.threads, args.rounds, args.only, args.peers)
        if not args.skip_roots:
            bench_roots(d, args.threads)
        print(load(), flush=True)


if __name__ == "__main__":
    main()
