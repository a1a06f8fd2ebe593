"""``make demo``: adamw, lion and muon on an MLP for scikit-learn's digits, three seeds, one table.

Each optimizer runs at its documented defaults except the learning rate of the main role, set to a
common choice for each (AdamW 1e-3; Lion 3e-4, the Lion paper's advice of a 3–10× smaller lr than AdamW;
Muon 0.02 on hidden matrices with AdamW 3e-4 elsewhere). Fixed budget: the same steps and batches.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import optimlab

CONFIGS = {"adamw": dict(lr=1e-3), "lion": dict(lr=3e-4), "muon": dict(lr=0.02)}


def load_digits(seed: int):
    from sklearn.datasets import load_digits as _load

    x, y = _load(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32) / 16.0
    y = torch.tensor(y)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = len(y) // 5
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def run(name: str, seed: int, steps: int, batch: int) -> dict[str, float]:
    xtr, ytr, xte, yte = load_digits(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = optimlab.create(model, name, **CONFIGS.get(name, {}))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min(1.0, (steps - t) / (0.3 * steps)))
    g = torch.Generator().manual_seed(seed + 1)
    step_time = 0.0
    for _ in range(steps):
        idx = torch.randint(0, len(ytr), (batch,), generator=g)
        loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        t0 = time.perf_counter()
        opt.step()
        step_time += time.perf_counter() - t0
        sched.step()
    with torch.no_grad():
        train_loss = nn.functional.cross_entropy(model(xtr), ytr).item()
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    return {"train_loss": train_loss, "test_acc": acc, "ms_per_step": 1000 * step_time / steps}


def fmt(values: list[float], spec: str) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):{spec}} ± {sd:{spec}}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--optimizers", default="adamw,lion,muon")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 by default: small models gain nothing from more, and timings stay stable)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.optimizers.split(",")
    print(f"digits MLP 64-256-256-10, {args.steps} steps × batch {args.batch}, seeds 0..{args.seeds - 1}, "
          f"linear decay over the last 30%, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    header = f"{'optimizer':<10} {'final train loss':>20} {'test accuracy':>18} {'ms/step (opt.step)':>20}"
    print(header)
    print("-" * len(header))
    for name in names:
        rows = [run(name, s, args.steps, args.batch) for s in range(args.seeds)]
        print(f"{name:<10} {fmt([r['train_loss'] for r in rows], '.2e'):>20} "
              f"{fmt([100 * r['test_acc'] for r in rows], '.2f') + '%':>18} "
              f"{fmt([r['ms_per_step'] for r in rows], '.3f'):>20}")
    print("\nmean ± std over seeds. Optimizer settings: "
          + "; ".join(f"{n} {CONFIGS[n]}" for n in names if n in CONFIGS))


if __name__ == "__main__":
    main()
