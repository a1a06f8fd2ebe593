"""One optimizer step: optimlab vs torch.optim, as ratios measured in the same run.

Parameter sets:
  linear12 — 12 weights of nn.Linear(512, 512) (3.1 M parameters, all matrices);
  gpt      — a GPT-like set at d=512: 2 blocks of 4 square (512×512) attention matrices and a 4:1 / 1:4
             MLP pair (2048×512, 512×2048), a 4096×512 token embedding, an untied 4096×512 head, and
             LayerNorm gains / biases (vectors). Muon runs on the 12 block matrices; AdamW elsewhere.

Each (optimizer, set, threads) runs in a fresh subprocess with torch.set_num_threads(n); gradients are
fixed random tensors (no optimizer here writes p.grad); 5 warm-up steps, then the median of --steps
timed steps. Ratios are ours / torch's best for the same work: AdamW vs min(foreach, fused) and Muon vs
torch.optim.Muon (+ torch AdamW foreach for the non-matrix roles on `gpt`) at equal NS steps, dtype
(bf16) and coefficients (Keller Jordan's quintic, 5 steps). torch.optim has no non-finite check, so for
equal work ours runs with nonfinite="ignore"; OPTIMLAB_BENCH_NONFINITE=error measures our default (one
extra reduction pass over the gradients).

    python benchmarks/step_time.py [--threads 1 2] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = ["torch_adamw_foreach", "torch_adamw_fused", "optimlab_adamw", "torch_muon", "optimlab_muon"]


def param_set(kind: str):
    import torch

    g = torch.Generator().manual_seed(0)
    groups = {"matrix": [], "embedding": [], "vector": []}

    def add(role, *shape):
        p = torch.nn.Parameter(torch.randn(*shape, generator=g) * 0.02)
        p.grad = torch.randn(*shape, generator=g)
        groups[role].append(p)

    if kind == "linear12":
        for _ in range(12):
            add("matrix", 512, 512)
    else:
        d, vocab = 512, 4096
        add("embedding", vocab, d)
        for _ in range(2):
            for _ in range(4):
                add("matrix", d, d)
            add("matrix", 4 * d, d)
            add("matrix", d, 4 * d)
            for n in (d, d, d, d, 4 * d, d):
                add("vector", n)
        add("vector", d)
        add("embedding", vocab, d)  # the untied head: AdamW for Muon-type optimizers
    return {k: v for k, v in groups.items() if v}


def build(config: str, groups):
    import torch

    import optimlab

    NONFINITE = os.environ.get("OPTIMLAB_BENCH_NONFINITE", "ignore")
    everything = [p for ps in groups.values() for p in ps]
    if config == "torch_adamw_foreach":
        return [torch.optim.AdamW(everything, lr=1e-3, foreach=True)]
    if config == "torch_adamw_fused":
        return [torch.optim.AdamW(everything, lr=1e-3, fused=True)]
    if config == "optimlab_adamw":
        return [optimlab.create([{"params": ps, "role": r} for r, ps in groups.items()], "adamw", lr=1e-3, nonfinite=NONFINITE)]
    rest = [p for r, ps in groups.items() if r != "matrix" for p in ps]
    if config == "torch_muon":
        opts = [torch.optim.Muon(groups["matrix"], lr=0.02, weight_decay=0.01, momentum=0.95, nesterov=True)]
        return opts + ([torch.optim.AdamW(rest, lr=3e-4, betas=(0.9, 0.95), foreach=True)] if rest else [])
    if config == "optimlab_muon":
        return [optimlab.create([{"params": ps, "role": r} for r, ps in groups.items()], "muon", lr=0.02,
                                nonfinite=NONFINITE,
                                weight_decay=0.01, ns_steps=5, ns_coefficients="jordan", ns_dtype="bfloat16")]
    raise ValueError(config)


def measure(config: str, kind: str, threads: int, steps: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    groups = param_set(kind)
    opts = build(config, groups)
    def one() -> float:
        t0 = time.perf_counter()
        for o in opts:
            o.step()
        return time.perf_counter() - t0

    first = one()
    # A configuration that takes over a second per step (torch.optim.Muon's bf16 matmuls on a CPU
    # without bf16 hardware) is timed over 3 steps after that one warm-up, to keep the run short.
    warmup, n = (0, 3) if first > 1.0 else (4, steps)
    for _ in range(warmup):
        one()
    times = [one() for _ in range(n)]
    return {"median_ms": 1000 * statistics.median(times), "min_ms": 1000 * min(times), "timed_steps": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sets", nargs="+", default=["linear12", "gpt"])
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        config, kind, threads = args.worker
        print(json.dumps(measure(config, kind, int(threads), args.steps)))
        return
    import torch

    bf16_hw = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    print(f"torch {torch.__version__}; median of {args.steps} steps after 5 warm-up (3 after 1 for configs over "
          f"1 s/step); fresh process each; CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"native bf16 matmul: {bf16_hw}")
    for kind in args.sets:
        for threads in args.threads:
            res = {}
            for config in CONFIGS:
                out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--worker", config, kind,
                                      str(threads)], capture_output=True, text=True, check=True,
                                     env={"OMP_NUM_THREADS": str(threads), **_env()})
                res[config] = json.loads(out.stdout.strip().splitlines()[-1])["median_ms"]
            best_adamw = min(res["torch_adamw_foreach"], res["torch_adamw_fused"])
            print(f"\n[{kind}, {threads} thread{'s' if threads > 1 else ''}]")
            for config in CONFIGS:
                print(f"  {config:<22} {res[config]:9.2f} ms")
            print(f"  ratio adamw  optimlab / torch best ({'fused' if res['torch_adamw_fused'] < res['torch_adamw_foreach'] else 'foreach'}) = "
                  f"{res['optimlab_adamw'] / best_adamw:.3f}")
            print(f"  ratio muon   optimlab / torch.optim.Muon = {res['optimlab_muon'] / res['torch_muon']:.3f}")


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}


if __name__ == "__main__":
    main()
