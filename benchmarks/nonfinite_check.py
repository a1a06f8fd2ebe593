"""Cost of the default non-finite check on a GPT-like AdamW step, interleaved with torch's fused AdamW.

    python benchmarks/nonfinite_check.py --d 256 512 1024 --threads 1 2 --rounds 12
    python benchmarks/nonfinite_check.py --device cuda --d 256 512 1024 --threads 1 --steps-per-round 10

Per d: a GPT-like set of 2 blocks (4 d×d attention matrices, a 4d×d / d×4d MLP pair, LayerNorm vectors),
a 16d×d token embedding and an untied 16d×d head (d = 1024: 58.7 M parameters). Three optimizers on
copies of the same parameters and fixed gradients, stepped in alternation (robust to a noisy shared
machine): torch AdamW(fused=True), optimlab adamw nonfinite="ignore", optimlab adamw (default "error").
Reports medians after 2 warm-up rounds and the ratios to torch per round (median [min, max]).
"""

import argparse
import statistics
import time

import torch

import optimlab


def gpt_set(d: int, device="cpu"):
    g = torch.Generator().manual_seed(0)
    shapes = [(16 * d, d)] + [(d, d)] * 4 * 2 + [(4 * d, d), (d, 4 * d)] * 2 + [(d,)] * 13 + [(16 * d, d)]
    ps = []
    for s in shapes:
        p = torch.nn.Parameter((torch.randn(*s, generator=g) * 0.02).to(device))
        p.grad = torch.randn(*s, generator=g).to(device)
        ps.append(p)
    return ps


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def clone(ps):
    out = []
    for p in ps:
        q = torch.nn.Parameter(p.detach().clone())
        q.grad = p.grad.clone()
        out.append(q)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps-per-round", type=int, default=1,
                    help="steps timed back to back, one device sync at the end (a training loop runs ahead "
                         "of the device like this; 1 = sync around every step)")
    args = ap.parse_args()
    for d in args.d:
        base = gpt_set(d, args.device)
        n = sum(p.numel() for p in base) / 1e6
        opts = {"torch fused": torch.optim.AdamW(clone(base), lr=1e-3, fused=True)}
        for mode in ("ignore", "error"):
            ps = clone(base)
            groups = [{"params": [p for p in ps if p.ndim == 2], "role": "matrix"},
                      {"params": [p for p in ps if p.ndim == 1], "role": "vector"}]
            opts[f"optimlab {mode}"] = optimlab.create(groups, "adamw", lr=1e-3, nonfinite=mode)
        del base
        for threads in args.threads:
            torch.set_num_threads(threads)
            times = {k: [] for k in opts}
            for _ in range(args.rounds + 2):
                for k, o in opts.items():
                    sync(args.device)
                    t0 = time.perf_counter()
                    for _ in range(args.steps_per_round):
                        o.step()
                    sync(args.device)
                    times[k].append((time.perf_counter() - t0) / args.steps_per_round)
            t = {k: v[2:] for k, v in times.items()}
            ref = t["torch fused"]
            line = [f"d={d} ({n:.1f}M), {threads} thr: torch {1e3 * statistics.median(ref):.1f} ms"]
            for k in ("optimlab ignore", "optimlab error"):
                r = [a / b for a, b in zip(t[k], ref)]
                line.append(f"{k} {1e3 * statistics.median(t[k]):.1f} ms ratio {statistics.median(r):.3f} "
                            f"[{min(r):.2f}, {max(r):.2f}]")
            print("; ".join(line), flush=True)
        del opts


if __name__ == "__main__":
    main()
