"""Optimizer-state bytes and peak process memory on char_lm; projector refresh time, DCT vs SVD.

Memory part: each (optimizer, width) runs in a fresh subprocess (1 thread). It builds the char_lm task
(``d`` = each width, 2 layers, 4 heads, context 64, batch 4 so that activations stay small next to the
state), runs one forward/backward (gradients allocated), then resets the kernel's peak-RSS counter
(``/proc/self/clear_refs`` ← 5) and records VmRSS, runs ``--steps`` training steps, and reads VmHWM from
``/proc/self/status``: ``peak_delta`` = VmHWM − VmRSS before the steps (state, temporaries, activations).
``ru_maxrss`` (the process's whole peak) is reported too, and how much of the resident growth over those steps
is anonymous memory (``RssAnon``) and how much file-backed (``RssFile``: code pages of library kernels used for
the first time). Then the peak is reset again and the same number of steps runs once more: ``steady Δ`` =
VmHWM − VmRSS around them, the cost of a step once its state exists and its code paths are warm (a
zeroth-order step's first-use costs are one-time: see BENCHMARKS.md). Every worker runs with glibc's
``MALLOC_MMAP_THRESHOLD_=65536`` so that freed large blocks go back to the OS and the high-water mark counts
live memory, not allocator caching. Two baselines run the same loop without an
optimizer: ``(fwd+bwd)`` and ``(forward)`` (``torch.no_grad``, no gradients), the reference for
zeroth-order methods, whose steps evaluate the loss only. State bytes are the tensors the optimizer holds
(``optimlab.core.state_bytes``), per parameter of the whole model and of the matrix role alone.

Refresh part: one refresh of the basis of an n × n gradient at rank r = n/4: exact SVD (GaLore), one
warm-started power-iteration step (``proj_iters=1``) and DCT column scoring + top-r (SVD-free), interleaved,
median of ``--repeats`` after a warm-up, 1 thread, in one subprocess.

    python benchmarks/memory.py [--widths 256 512] [--steps 3] [--ns 512 1024] [--repeats 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

OPTIMIZERS = ["adamw", "muon", "galore_adamw", "galore_rev", "dct_adamw", "osd_adamw", "snsm", "zo_sgd", "zo_adam"]
# rows that are a registered optimizer with other hyperparameters: GaLore with the basis on the large side
# (its reference projector's proj_type='reverse_std'; the paper's Table 1 side is the default 'std')
VARIANTS = {"galore_rev": ("galore_adamw", {"proj_type": "reverse_std"})}
BASELINES = ["(fwd+bwd)", "(forward)"]


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_memory(name: str, width: int, steps: int) -> dict:
    import gc

    import torch

    import optimlab
    from optimlab.core.state_bytes import held_state_bytes
    from optimlab.lab.tasks import get_task

    torch.set_num_threads(1)
    task = get_task("char_lm", d=width, n_layers=2, n_heads=4, context=64, batch_size=4, corpus_chars=20_000)
    inst = task.build(0)
    model = inst.model
    n_params = sum(p.numel() for p in model.parameters())
    opt = None
    registered = optimlab.available()
    optimlab.create([torch.zeros(2, 2, requires_grad=True)], "adamw")  # every row imports the same modules
    base, extra = VARIANTS.get(name, (name, {}))
    if not name.startswith("("):
        opt = optimlab.create(model, base, **inst.role_hints, **extra)
    needs = optimlab.describe(base).needs if base in registered else frozenset()
    zeroth = "value" in needs  # function values only (zo_*, polystep): no backward, no gradients
    if name != "(forward)" and not zeroth:
        inst.loss(model, inst.batch(0)).backward()  # gradients exist before the measured steps
    else:
        with torch.no_grad():
            inst.loss(model, inst.batch(0))  # the same warm-up, without gradients
    gc.collect()
    rss0, anon0, file0 = _status_kb("VmRSS"), _status_kb("RssAnon"), _status_kb("RssFile")
    resettable = _reset_peak()

    def run_steps(first: int) -> None:
        for step in range(first, first + steps):
            batch = inst.batch(step)
            if name == "(forward)" or zeroth:
                def closure(batch=batch):
                    with torch.no_grad():
                        return inst.loss(model, batch)
                if opt is None:
                    closure()
                else:
                    opt.step(closure)
            else:
                def closure(batch=batch):
                    opt.zero_grad(set_to_none=False)
                    loss = inst.loss(model, batch)
                    loss.backward()
                    return loss
                if opt is None:
                    model.zero_grad(set_to_none=False)
                    inst.loss(model, batch).backward()
                elif needs & {"loss", "reevaluate", "hvp"}:
                    opt.step(closure)
                else:
                    closure()
                    opt.step()
    run_steps(1)
    hwm = _status_kb("VmHWM")
    anon1, file1 = _status_kb("RssAnon"), _status_kb("RssFile")
    # steady state: the same number of steps again, the peak reset in between (state allocated, code paths
    # paged in, lazy initialisations done): what one more step costs over what is already resident
    gc.collect()
    rss1 = _status_kb("VmRSS")
    _reset_peak()
    run_steps(steps + 1)
    hwm2 = _status_kb("VmHWM")
    out = {"name": name, "width": width, "n_params": n_params, "rss_before_mb": rss0 / 1024,
           "peak_delta_mb": (hwm - rss0) / 1024 if resettable else None,
           "anon_growth_mb": (anon1 - anon0) / 1024, "file_growth_mb": (file1 - file0) / 1024,
           "steady_peak_delta_mb": (hwm2 - rss1) / 1024 if resettable else None,
           "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if opt is not None:
        held = held_state_bytes(opt)
        out["state_mb"] = held.total / 2**20
        out["state_bytes_per_param"] = held.per_param
        out["matrix_state_bytes_per_param"] = held.role_per_param("matrix") if "matrix" in held.by_role else None
    return out


def measure_refresh(ns: list[int], repeats: int) -> list[dict]:
    import torch

    from optimlab.linalg.projectors import dct_select, power_basis, svd_basis

    torch.set_num_threads(1)
    rows = []
    for n in ns:
        g = torch.Generator().manual_seed(n)
        G = torch.randn(1, n, n, generator=g) / n**0.5
        r = n // 4
        Q0 = svd_basis(G + 0.1 * torch.randn(1, n, n, generator=g) / n**0.5, r, False)
        kernels = {"svd": lambda: svd_basis(G, r, False), "power1": lambda: power_basis(G, Q0, 1),
                   "dct": lambda: torch.zeros(1, n).scatter_(-1, dct_select(G, r), 1.0)}
        times: dict[str, list[float]] = {k: [] for k in kernels}
        for k in kernels:
            kernels[k]()  # warm-up (the DCT matrix is built and cached here)
        for _ in range(repeats):
            for k, fn in kernels.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
        med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        rows.append({"n": n, "r": r, **{f"{k}_ms": v for k, v in med.items()},
                     "svd_over_dct": med["svd"] / med["dct"], "power1_over_dct": med["power1"] / med["dct"]})
    return rows


def _env() -> dict:
    # a fixed mmap threshold: glibc's dynamic one keeps freed blocks up to 32 MB in the heap after the
    # first free, so the high-water mark would count allocator caching, differently for each optimizer
    return {**{k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}, "OMP_NUM_THREADS": "1",
            "MALLOC_MMAP_THRESHOLD_": "65536"}


def _worker(args: list[str], opts: argparse.Namespace) -> dict:
    extra = ["--steps", str(opts.steps), "--repeats", str(opts.repeats), "--ns", *map(str, opts.ns)]
    out = subprocess.run([sys.executable, __file__, "--worker", *args, *extra], capture_output=True, text=True,
                         env=_env())
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--ns", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--optimizers", nargs="+", default=OPTIMIZERS)
    ap.add_argument("--json", help="write every row here")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "memory":
            print(json.dumps(measure_memory(rest[0], int(rest[1]), args.steps)))
        else:
            print(json.dumps(measure_refresh(args.ns, args.repeats)))
        return
    import torch

    import optimlab

    registered = set(optimlab.available())
    names = [n for n in args.optimizers if VARIANTS.get(n, (n,))[0] in registered]
    skipped = [n for n in args.optimizers if n not in names]
    print(f"torch {torch.__version__}, 1 thread, fresh process per row; char_lm (2 layers, context 64, batch 4), "
          f"{args.steps} steps; not registered here (skipped): {', '.join(skipped) or 'none'}")
    rows = []
    for width in args.widths:
        print(f"\n[char_lm d={width}]")
        print(f"  {'optimizer':<14} {'params':>9} {'state MB':>9} {'B/param':>8} {'matrix B/p':>10} "
              f"{'vs adamw':>9} {'peak Δ MB':>10} {'anon+':>6} {'file+':>6} {'steady Δ':>9} {'maxrss MB':>10}")
        res = {}
        for name in BASELINES + names:  # interleaving is per width: every config in the same minute
            r = _worker(["memory", name, str(width)], args) | {"name": name, "width": width}
            res[name] = r
            rows.append(r)
        base = res.get("adamw", {}).get("state_bytes_per_param")
        base_m = res.get("adamw", {}).get("matrix_state_bytes_per_param")
        for name in BASELINES + names:
            r = res[name]
            if "error" in r:
                print(f"  {name:<14} error: {r['error']}")
                continue
            sb, mb = r.get("state_bytes_per_param"), r.get("matrix_state_bytes_per_param")
            ratio = f"{mb / base_m:.3f}" if mb is not None and base_m else "-"
            r["matrix_state_vs_adamw"] = mb / base_m if mb is not None and base_m else None
            r["state_vs_adamw"] = sb / base if sb is not None and base else None
            print(f"  {name:<14} {r['n_params']:>9} {r.get('state_mb', 0):>9.2f} "
                  f"{sb if sb is not None else 0:>8.3f} {mb if mb is not None else 0:>10.3f} {ratio:>9} "
                  f"{r['peak_delta_mb'] if r['peak_delta_mb'] is not None else float('nan'):>10.1f} "
                  f"{r['anon_growth_mb']:>6.1f} {r['file_growth_mb']:>6.1f} "
                  f"{r['steady_peak_delta_mb'] if r['steady_peak_delta_mb'] is not None else float('nan'):>9.1f} "
                  f"{r['ru_maxrss_mb']:>10.1f}")
    refresh = _worker(["refresh"], args)
    if isinstance(refresh, dict) and "error" in refresh:
        print(f"\nrefresh: error {refresh['error']}")
        refresh = []
    print("\n[projector refresh, n × n gradient, r = n/4, 1 thread, median ms]")
    for r in refresh:
        print(f"  n={r['n']:<5} svd {r['svd_ms']:8.2f}  power(1 step) {r['power1_ms']:8.2f}  dct {r['dct_ms']:8.2f}  "
              f"svd/dct {r['svd_over_dct']:6.2f}  power/dct {r['power1_over_dct']:5.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"memory": rows, "refresh": refresh, "skipped": skipped}, f, indent=1)


if __name__ == "__main__":
    main()
