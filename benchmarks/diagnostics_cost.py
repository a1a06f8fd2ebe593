"""Cost of the curvature diagnostics on the test MLP.

    python benchmarks/diagnostics_cost.py [--repeats 50] [--threads 1] [--seeds 10]

Test MLP: tanh 64 → 32 → 32 → 10 (3,466 parameters) on the first 256 scikit-learn digits, loss
½‖f(x) − onehot‖² (the setting of examples/edge_of_stability.py, smaller so the exact Hessian is
cheap). Measured at initialization and after 200 full-batch GD steps at η = 0.4 (edge of stability).

1. HVP time / gradient time, median over ``repeats`` interleaved repetitions:
   gradient = forward + backward; HVP (fresh) = forward + create_graph backward + double backward;
   HVP (cached) = one backward through a cached gradient graph (what Lanczos pays per product).
2. HVPs Lanczos needs for the top eigenvalue to be within 1% of the exact one (dense Hessian,
   eigvalsh), over ``seeds`` random start vectors; what the residual stopping rule spends at the
   default tol=1e-3 and at tol=1e-2, with the worst error it returned. Power iteration for comparison.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from optimlab.diagnostics import HessianOperator, exact_spectrum_of, lanczos, power_iteration


def make_problem(n: int = 256, width: int = 32) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    x = torch.tensor(X[:n], dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    target = nn.functional.one_hot(torch.tensor(y[:n]), 10).float()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 10))
    return model, (x, target)


def mse_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, target = batch
    return 0.5 * ((model(x) - target) ** 2).sum(dim=1).mean()


def time_ratio(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], repeats: int) -> dict[str, float]:
    """Median per-round time ratios (rounds interleave all variants, so machine noise hits each alike)."""
    params = list(model.parameters())
    fresh = HessianOperator(model, mse_loss, batch, cache_graph=False)
    cached = HessianOperator(model, mse_loss, batch, cache_graph=True)
    v = torch.randn(fresh.dim)
    ones = [torch.ones_like(p) for p in params]
    cached.matvec(v)  # build the graph once; later products reuse it
    fresh.matvec(v)  # warm-up of the double-backward kernels

    def grad() -> None:
        torch.autograd.grad(mse_loss(model, batch), params)

    def raw_hvp() -> None:  # bare double backward, without the operator's bookkeeping
        g = torch.autograd.grad(mse_loss(model, batch), params, create_graph=True)
        torch.autograd.grad(g, params, grad_outputs=ones)

    variants = {"grad": grad, "raw": raw_hvp, "fresh": lambda: fresh.matvec(v), "cached": lambda: cached.matvec(v)}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    out = {f"{k}_ms": 1e3 * statistics.median(t) for k, t in times.items()}
    for k in ("raw", "fresh", "cached"):
        out[f"ratio_{k}"] = statistics.median(a / b for a, b in zip(times[k], times["grad"]))
    return out


def hvps_to_one_percent(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], seeds: int) -> dict[str, float]:
    op = HessianOperator(model, mse_loss, batch)
    exact = exact_spectrum_of(op).eigenvalues
    top = float(exact[-1])
    needed, power_hvps = [], []
    stops: dict[float, tuple[list[int], list[float]]] = {1e-3: ([], []), 1e-2: ([], [])}
    for seed in range(seeds):
        run = lanczos(op, tol=1e-12, max_iters=60, seed=seed)
        errors = [abs(h - top) / top for h in run.history]
        needed.append(next(i + 1 for i, e in enumerate(errors) if e <= 0.01))
        for tol, (hvps, errs) in stops.items():
            res = lanczos(op, tol=tol, seed=seed)
            hvps.append(res.num_hvps)
            errs.append(abs(res.value - top) / top)
        power = power_iteration(op, tol=1e-12, max_iters=500, seed=seed)
        power_hvps.append(next((i + 1 for i, h in enumerate(power.history) if abs(h - top) / top <= 0.01), 501))
    out = {"lambda_max": top, "lambda_2": float(exact[-2]), "dim": op.dim,
           "lanczos_median": statistics.median(needed), "lanczos_max": max(needed),
           "power_median": statistics.median(power_hvps), "power_max": max(power_hvps)}
    for tol, (hvps, errs) in stops.items():
        out[f"tol={tol:g}"] = (statistics.median(hvps), max(hvps), max(errs))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, batch = make_problem()
    print(f"test MLP: {sum(p.numel() for p in model.parameters())} parameters, {len(batch[0])} examples, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    worst_ratio, worst_hvps = {"raw": 0.0, "fresh": 0.0, "cached": 0.0}, 0
    for stage in ("init", "after 200 GD steps (eta=0.4)"):
        if stage != "init":
            opt = torch.optim.SGD(model.parameters(), lr=0.4)
            for _ in range(200):
                opt.zero_grad()
                mse_loss(model, batch).backward()
                opt.step()
        t = time_ratio(model, batch, args.repeats)
        h = hvps_to_one_percent(model, batch, args.seeds)
        print(f"\n[{stage}]  lambda_max = {h['lambda_max']:.4f}, lambda_2 = {h['lambda_2']:.4f}")
        print(f"  gradient {t['grad_ms']:.3f} ms | HVP: bare double backward x{t['ratio_raw']:.2f}, "
              f"operator without cache x{t['ratio_fresh']:.2f}, operator with cached graph x{t['ratio_cached']:.2f} "
              f"(median per-round ratios to the gradient)")
        print(f"  HVPs for lambda_max within 1% of exact, over {args.seeds} seeds: Lanczos median {h['lanczos_median']}, "
              f"max {h['lanczos_max']}; power iteration median {h['power_median']}, max {h['power_max']}")
        for tol in (1e-3, 1e-2):
            med, worst, err = h[f"tol={tol:g}"]
            print(f"  lanczos(tol={tol:g}) stopping rule: median {med} HVPs (max {worst}), "
                  f"max relative error {err:.1e}")
        worst_ratio = {k: max(v, t[f"ratio_{k}"]) for k, v in worst_ratio.items()}
        worst_hvps = max(worst_hvps, h["lanczos_max"])
    print(f"\ntargets: HVP <= 3x gradient: cached graph x{worst_ratio['cached']:.2f} "
          f"({'ok' if worst_ratio['cached'] <= 3 else 'MISSED'}), without cache x{worst_ratio['fresh']:.2f} "
          f"({'ok' if worst_ratio['fresh'] <= 3 else 'MISSED'}); sharpness to 1% in <= 30 HVPs: worst {worst_hvps} "
          f"({'ok' if worst_hvps <= 30 else 'MISSED'})")


if __name__ == "__main__":
    main()
