"""Continual learning on the 8×8 digits: task sequences, a replay buffer, per-step evaluation of every task.

- ``split_digits(seed)``: 5 tasks of 2 classes each ((0,1), (2,3), …), one shared 10-way head
  (class-incremental).
- ``rotated_digits(seed, angles)``: 5 tasks with all 10 classes, the images rotated by each angle
  (domain-incremental; larger angle differences = more dissimilar tasks).
- ``ReplayBuffer``: reservoir sampling over every example seen so far (Vitter's algorithm R), seeded.
- ``run_continual``: trains one model through the tasks with any optimlab optimizer, optionally mixing a
  replay batch into every step and/or projecting gradients off earlier tasks' OGD directions
  (``optimlab.combine.OrthogonalProjection``), and evaluates *every* task's test set every ``eval_every``
  steps (continual evaluation: De Lange, van de Ven, Tuytelaars, "Continual evaluation for lifelong learning:
  Identifying the stability gap", ICLR 2023, arXiv:2205.13452).
- ``stability_gap``: per task switch, the drop of a task's accuracy within a window after the switch and how
  much of it is recovered by the end of the phase; ``min_accuracy`` (min-ACC: the worst accuracy of a task
  after it was learned) and ``average_accuracy`` (final mean over tasks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["ContinualTask", "split_digits", "rotated_digits", "ReplayBuffer", "run_continual", "stability_gap",
           "min_accuracy", "average_accuracy"]


@dataclass
class ContinualTask:
    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def _digits_split(seed: int, test_fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from .tasks.classification import _digits

    x, y = _digits()
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr] / 16.0, y[tr], x[te] / 16.0, y[te]


def _t(x: np.ndarray, y: np.ndarray) -> tuple[Tensor, Tensor]:
    return torch.tensor(x.reshape(len(x), -1), dtype=torch.float32), torch.tensor(y, dtype=torch.int64)


def split_digits(seed: int, n_tasks: int = 5) -> list[ContinualTask]:
    if not isinstance(n_tasks, int) or not 1 <= n_tasks <= 5:
        raise ValueError(f"split_digits: n_tasks must be an int in [1, 5], got {n_tasks!r}")
    xtr, ytr, xte, yte = _digits_split(seed)
    tasks = []
    for k in range(n_tasks):
        cls = (2 * k, 2 * k + 1)
        mtr, mte = np.isin(ytr, cls), np.isin(yte, cls)
        tasks.append(ContinualTask(f"classes {cls[0]},{cls[1]}", *_t(xtr[mtr], ytr[mtr]), *_t(xte[mte], yte[mte])))
    return tasks


def _rotate(x: np.ndarray, angle: float) -> np.ndarray:
    """Rotate 8×8 images by ``angle`` degrees (bilinear, zero fill), batched with grid_sample."""
    imgs = torch.tensor(x.reshape(-1, 1, 8, 8), dtype=torch.float32)
    a = math.radians(angle)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=torch.float32)
    grid = F.affine_grid(theta.expand(len(imgs), 2, 3), list(imgs.shape), align_corners=False)
    return F.grid_sample(imgs, grid, mode="bilinear", padding_mode="zeros", align_corners=False).reshape(len(x), -1).numpy()


def rotated_digits(seed: int, angles: Sequence[float] = (0.0, 45.0, 90.0, 135.0, 180.0)) -> list[ContinualTask]:
    if len(angles) == 0:
        raise ValueError("rotated_digits: angles is empty")
    xtr, ytr, xte, yte = _digits_split(seed)
    return [ContinualTask(f"rotated {a:g}°", *_t(_rotate(xtr, a), ytr), *_t(_rotate(xte, a), yte)) for a in angles]


class ReplayBuffer:
    """Reservoir sample of the stream (every example seen has the same chance to be in the buffer)."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"ReplayBuffer: capacity must be an int >= 1, got {capacity!r}")
        self.capacity, self.seen = capacity, 0
        self.x: Tensor | None = None
        self.y: Tensor | None = None
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return 0 if self.x is None else min(self.seen, self.capacity)

    def add(self, x: Tensor, y: Tensor) -> None:
        if self.x is None:
            self.x = torch.zeros(self.capacity, *x.shape[1:], dtype=x.dtype)
            self.y = torch.zeros(self.capacity, dtype=y.dtype)
        for xi, yi in zip(x, y):
            if self.seen < self.capacity:
                slot = self.seen
            else:
                slot = int(torch.randint(0, self.seen + 1, (1,), generator=self.gen))
            if slot < self.capacity:
                self.x[slot], self.y[slot] = xi, yi
            self.seen += 1

    def sample(self, n: int) -> tuple[Tensor, Tensor]:
        if len(self) == 0:
            raise ValueError("ReplayBuffer: sample from an empty buffer")
        idx = torch.randint(0, len(self), (n,), generator=self.gen)
        return self.x[idx], self.y[idx]  # type: ignore[index]


class _Evaluator:
    """Every evaluation set in one forward pass; accuracy per set (continual evaluation is every step)."""

    def __init__(self, sets: Sequence[tuple[Tensor, Tensor]]) -> None:
        self.x = torch.cat([x for x, _ in sets])
        self.y = torch.cat([y for _, y in sets])
        self.seg = torch.cat([torch.full((len(y),), i, dtype=torch.int64) for i, (_, y) in enumerate(sets)])
        self.counts = torch.bincount(self.seg, minlength=len(sets)).float()

    def __call__(self, model: nn.Module) -> list[float]:
        with torch.no_grad():
            hit = (model(self.x).argmax(1) == self.y).float()
        return (torch.bincount(self.seg, weights=hit, minlength=len(self.counts)) / self.counts).tolist()


def run_continual(tasks: Sequence[ContinualTask], *, optimizer: str = "sgd", lr: float = 0.1, steps_per_task: int = 200,
                  batch: int = 16, replay: int = 0, replay_batch: int = 16, ogd_per_task: int = 0, gpm_threshold: float | None = None,
                  eval_every: int = 1, eval_size: int | None = None, hidden: int = 100, seed: int = 0,
                  **hparams: Any) -> dict[str, Any]:
    """Train through ``tasks`` in order; evaluate every task's test set every ``eval_every`` steps.

    Returns {"steps": [...], "acc": {task name: [...]}, "switches": [step where each task starts],
    "names": [...]}. ``replay``: buffer capacity (0 = no replay). ``ogd_per_task``: OGD directions stored
    from each finished task's training examples (0 = no projection). ``eval_size``: at most this many test
    examples per task (default: all). ``gpm_threshold``: GPM energy threshold (None = no GPM); each
    finished task's 125 training examples grow the per-layer bases.
    """
    import optimlab

    from ..combine import GPMProjection, OrthogonalProjection, ogd_directions

    if not tasks:
        raise ValueError("run_continual: no tasks")
    for name, v in (("steps_per_task", steps_per_task), ("batch", batch), ("eval_every", eval_every)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"run_continual: {name} must be an int >= 1, got {v!r}")
    torch.manual_seed(seed)
    d_in = tasks[0].x_train.shape[1]
    model = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    opt = optimlab.create(model.parameters(), optimizer, lr=lr, **hparams)
    buf = ReplayBuffer(replay, seed) if replay else None
    proj = OrthogonalProjection() if ogd_per_task else None
    gpm = GPMProjection(model, gpm_threshold) if gpm_threshold is not None else None
    gen = torch.Generator().manual_seed(seed)
    names = [t.name for t in tasks]
    evaluate = _Evaluator([(t.x_test[:eval_size], t.y_test[:eval_size]) for t in tasks])
    acc: dict[str, list[float]] = {n: [] for n in names}
    steps, switches, t = [], [], 0
    for task in tasks:
        switches.append(t)
        for _ in range(steps_per_task):
            idx = torch.randint(0, len(task.x_train), (batch,), generator=gen)
            x, y = task.x_train[idx], task.y_train[idx]
            xb, yb = x, y
            if buf is not None and len(buf):
                rx, ry = buf.sample(replay_batch)
                xb, yb = torch.cat([x, rx]), torch.cat([y, ry])
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            if proj is not None:
                proj.project_grad_(model)
            if gpm is not None:
                gpm.project_grad_()
            opt.step()
            if buf is not None:
                buf.add(x, y)
            t += 1
            if t % eval_every == 0:
                steps.append(t)
                for name, a in zip(names, evaluate(model)):
                    acc[name].append(a)
        if proj is not None:
            idx = torch.randperm(len(task.x_train), generator=gen)[:ogd_per_task]
            proj.add(ogd_directions(model, task.x_train[idx], task.y_train[idx]))
        if gpm is not None:
            idx = torch.randperm(len(task.x_train), generator=gen)[:125]  # GPM's 125 examples per task
            gpm.update(model, task.x_train[idx])
    return {"steps": steps, "acc": acc, "switches": switches, "names": names}


def stability_gap(result: dict[str, Any], task: int = 0, window: int = 50) -> list[dict[str, float]]:
    """For each later task switch: accuracy of ``task`` just before it, its minimum within ``window`` steps
    after it, the dip (before − minimum) and the recovery (end of that phase − minimum)."""
    steps, curve = np.asarray(result["steps"]), np.asarray(result["acc"][result["names"][task]])
    sw = result["switches"]
    ends = sw[1:] + [int(steps[-1])]
    out = []
    for k in range(task + 1, len(sw)):
        s, end = sw[k], ends[k]
        before = curve[steps <= s]
        after = curve[(steps > s) & (steps <= s + window)]
        phase = curve[(steps > s) & (steps <= end)]
        if len(before) == 0 or len(after) == 0:
            continue
        a0, low = float(before[-1]), float(after.min())
        out.append({"switch": float(s), "before": a0, "min": low, "dip": a0 - low, "recovery": float(phase[-1]) - low})
    return out


def min_accuracy(result: dict[str, Any], task: int) -> float:
    """min-ACC: the lowest accuracy of ``task`` at any evaluation after its own training phase ended."""
    steps, curve = np.asarray(result["steps"]), np.asarray(result["acc"][result["names"][task]])
    sw = result["switches"] + [int(steps[-1]) + 1]
    after = curve[steps >= sw[task + 1]]
    return float(after.min()) if len(after) else float("nan")


def average_accuracy(result: dict[str, Any]) -> float:
    return float(np.mean([result["acc"][n][-1] for n in result["names"]]))
