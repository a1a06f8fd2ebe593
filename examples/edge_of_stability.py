"""Edge of stability, measured with optimlab.diagnostics.

Full-batch gradient descent on a small tanh MLP with MSE loss sharpens progressively until the
sharpness λ_1(H) reaches 2/η, then hovers there (Cohen et al., arXiv:2103.00065); full-batch Adam's
preconditioned sharpness λ_1(P⁻¹H) settles at (2+2β1)/((1−β1)η) = 38/η for β1 = 0.9 (Cohen et al.,
arXiv:2207.14484).

Task: the first ``n`` images of scikit-learn's bundled 8×8 digits (no download), features
standardized, loss ½‖f(x) − onehot(y)‖² averaged over examples; model 64 → w → w → 10 with tanh.
Sharpness is measured every ``every`` steps by ``EoSMonitor`` on the full training set.

    python examples/edge_of_stability.py [OUT_DIR] [--fast] [--threads N]

writes gd_sharpness.png, adam_preconditioned_sharpness.png, losses.png and summary.json into
OUT_DIR (default ./eos-out) and prints the final ratios (sharpness·η/2 for GD,
preconditioned sharpness·η/38 for Adam). ``--fast`` is the small version the tests run.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Any

import torch
from torch import nn

from optimlab.diagnostics import EoSMonitor, adam_threshold, gd_threshold

FULL = {"n": 500, "width": 64, "gd_lrs": [0.2, 0.3, 0.45], "gd_steps": 2000, "adam_lr": 0.002,
        "adam_steps": 2000, "every": 50}
FAST = {"n": 128, "width": 32, "gd_lrs": [0.4], "gd_steps": 600, "adam_lr": 0.01, "adam_steps": 600,
        "every": 20}


def make_data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    x = torch.tensor(X[:n], dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    return x, nn.functional.one_hot(torch.tensor(y[:n]), 10).float()


def make_model(width: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, 10))


def mse_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, target = batch
    return 0.5 * ((model(x) - target) ** 2).sum(dim=1).mean()


def train(optimizer_name: str, lr: float, steps: int, every: int, data: tuple[torch.Tensor, torch.Tensor],
          width: int) -> dict[str, Any]:
    """Full-batch training with an EoSMonitor; returns the measurement history and its cost."""
    model = make_model(width)
    if optimizer_name == "gd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    # Adam's preconditioner only exists after a step, so measure on steps ≥ 1 (offset by one).
    monitor = EoSMonitor(every=every, k=1, tol=1e-3)
    start = time.perf_counter()
    for step in range(steps + 1):
        if step > 0 or optimizer_name == "gd":
            monitor.step(step, model, mse_loss, data, optimizer)
        optimizer.zero_grad()
        mse_loss(model, data).backward()
        optimizer.step()
    history = monitor.as_dicts()
    tail = [r["ratio"] for r in history[-max(3, len(history) // 4):]]
    return {"optimizer": optimizer_name, "lr": lr, "history": history, "final_ratio": history[-1]["ratio"],
            "tail_mean_ratio": sum(tail) / len(tail), "first_ratio": history[0]["ratio"],
            "max_ratio": max(r["ratio"] for r in history), "seconds": time.perf_counter() - start,
            "diagnostic_seconds": monitor.total_seconds, "hvps": monitor.total_hvps}


def plot(runs: list[dict[str, Any]], out: pathlib.Path) -> list[pathlib.Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    gd = [r for r in runs if r["optimizer"] == "gd"]
    adam = [r for r in runs if r["optimizer"] == "adam"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in gd:
        steps = [h["step"] for h in r["history"]]
        line, = ax.plot(steps, [h["sharpness"] for h in r["history"]], label=f"GD η={r['lr']}")
        ax.axhline(gd_threshold(r["lr"]), color=line.get_color(), ls="--", lw=1)
    ax.set(xlabel="step", ylabel="sharpness λ₁(H)", title="Full-batch GD: sharpness vs 2/η (dashed)")
    ax.legend()
    paths.append(out / "gd_sharpness.png")
    fig.tight_layout(); fig.savefig(paths[-1], dpi=120); plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in adam:
        steps = [h["step"] for h in r["history"]]
        line, = ax.plot(steps, [h["preconditioned_sharpness"] for h in r["history"]], label=f"Adam η={r['lr']}")
        ax.axhline(adam_threshold(r["lr"], 0.9), color=line.get_color(), ls="--", lw=1)
    ax.set(xlabel="step", ylabel="λ₁(P⁻¹H)", title="Full-batch Adam: preconditioned sharpness vs 38/η (dashed)")
    ax.legend()
    paths.append(out / "adam_preconditioned_sharpness.png")
    fig.tight_layout(); fig.savefig(paths[-1], dpi=120); plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in runs:
        ax.semilogy([h["step"] for h in r["history"]], [h["loss"] for h in r["history"]],
                    label=f"{r['optimizer']} η={r['lr']}")
    ax.set(xlabel="step", ylabel="training loss", title="Training loss")
    ax.legend()
    paths.append(out / "losses.png")
    fig.tight_layout(); fig.savefig(paths[-1], dpi=120); plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="eos-out", help="output folder for PNGs and summary.json")
    parser.add_argument("--fast", action="store_true", help="small, quick version (used by the tests)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny models: 1 is fastest)")
    args = parser.parse_args(argv)
    config = FAST if args.fast else FULL
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        data = make_data(config["n"])
        runs = [train("gd", lr, config["gd_steps"], config["every"], data, config["width"])
                for lr in config["gd_lrs"]]
        runs.append(train("adam", config["adam_lr"], config["adam_steps"], config["every"], data, config["width"]))
    finally:
        torch.set_num_threads(threads)
    paths = plot(runs, out)
    summary = {"config": config, "runs": runs, "plots": [str(p) for p in paths]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    for r in runs:
        what = "sharpness·η/2" if r["optimizer"] == "gd" else "preconditioned sharpness·η/38"
        print(f"{r['optimizer']:>4} η={r['lr']:<6} {what}: first {r['first_ratio']:.3f}, max {r['max_ratio']:.3f}, "
              f"final {r['final_ratio']:.3f}, mean of last quarter {r['tail_mean_ratio']:.3f}  "
              f"({r['seconds']:.1f} s, of which diagnostics {r['diagnostic_seconds']:.1f} s / {r['hvps']} HVPs)")
    print("plots:", ", ".join(str(p) for p in paths))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
