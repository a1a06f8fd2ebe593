"""Deep linear network regression: y = W_L ... W_1 x fitted to a low-rank linear teacher.

The network computes a linear map, but its loss in the factors is non-convex, and from a small
initialisation gradient descent learns the teacher's singular modes one after another, with loss
plateaus in between (Saxe, McClelland, Ganguli, "Exact solutions to the nonlinear dynamics of
learning in deep linear neural networks", arXiv:1312.6120; saddle-to-saddle dynamics, Jacot et
al., arXiv:2106.15933). Seed claim E12 counts those plateaus and the rank steps while varying the
init scale. Inputs are N(0, I), so the population loss is 1/2 ||P - T||_F^2 (+ noise), P the
end-to-end product and T the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import (Task, TaskInstance, check_float, check_int, generator,
                   log_spaced_singular_values, singular_value_metrics, singular_value_names)
from .blocks import EpochSampler, sampled_batch


@dataclass(frozen=True, kw_only=True)
class DeepLinear(Task):
    """Options: depth (number of weight matrices, 4), width (hidden width, 32), dim_in (16),
    dim_out (16), rank (teacher rank, 4), condition (teacher singular values geometric from 1
    down to 1/condition, 4.0), num_samples (fixed training set size, 512), noise (label noise
    std, 0.0), init_scale (layer entries ~ N(0, init_scale^2 / fan_in), 0.3; smaller values give
    the saddle-to-saddle regime), batch_size (None: full batch).

    Metrics: eval_loss (population loss 1/2 ||P - T||_F^2 + dim_out noise^2 / 2), train_loss,
    rel_error (||P - T||_F / ||T||_F), sv_1..sv_q (singular values of P, q = min(rank + 2,
    dim_in, dim_out, width)), rank (how many exceed sigma_r(T)/2). ``product(model)`` gives P.
    All layers are bias-free ``nn.Linear`` in ``model.layers``, all trained matrices (role hint
    ``head=None``: the last layer is not treated as an output head).
    """

    name = "deep_linear"
    eval_cost = 1.0
    description = "deep linear network regression onto a low-rank linear teacher"
    references = (
        "Saxe, McClelland, Ganguli, 'Exact solutions to the nonlinear dynamics of learning in "
        "deep linear neural networks', arXiv:1312.6120",
        "Jacot, Ged, Simsek, Hongler, Gabriel, 'Saddle-to-Saddle Dynamics in Deep Linear "
        "Networks: Small Initialization Training, Symmetry, and Sparsity', arXiv:2106.15933",
    )

    depth: int = 4
    width: int = 32
    dim_in: int = 16
    dim_out: int = 16
    rank: int = 4
    condition: float = 4.0
    num_samples: int = 512
    noise: float = 0.0
    init_scale: float = 0.3
    batch_size: int | None = None

    def _targets(self) -> dict[str, float]:
        # reached by AdamW at the task's settings within the default budget (seeds 0 and 1, measured)
        return {"eval_loss": 1e-4, "rel_error": 0.01}

    def __post_init__(self) -> None:
        t = self.name
        check_int(t, "depth", self.depth, minimum=1)
        check_int(t, "width", self.width, minimum=1)
        check_int(t, "dim_in", self.dim_in, minimum=1)
        check_int(t, "dim_out", self.dim_out, minimum=1)
        check_int(t, "rank", self.rank, minimum=1, maximum=min(self.dim_in, self.dim_out))
        check_float(t, "condition", self.condition, minimum=1.0)
        check_int(t, "num_samples", self.num_samples, minimum=1)
        check_float(t, "noise", self.noise, minimum=0.0)
        check_float(t, "init_scale", self.init_scale, minimum=0.0, strict_min=True)
        if self.batch_size is not None:
            check_int(t, "batch_size", self.batch_size, minimum=1)

    @property
    def num_svs(self) -> int:
        width = self.width if self.depth > 1 else self.dim_in
        return min(self.rank + 2, self.dim_in, self.dim_out, width)

    def _metrics(self):
        return ("eval_loss", "train_loss", "rel_error") + singular_value_names(self.num_svs)

    def _default_steps(self) -> int:
        return 2000

    def _adamw(self):
        return {"lr": 3e-3, "weight_decay": 0.0}

    def _build(self, seed: int) -> "DeepLinearInstance":
        return DeepLinearInstance(self, seed)


class DeepLinearNet(nn.Module):
    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def product(model: DeepLinearNet) -> Tensor:
    """The end-to-end matrix W_L ... W_1 (dim_out x dim_in)."""
    p = model.layers[0].weight
    for layer in model.layers[1:]:
        p = layer.weight @ p
    return p


class DeepLinearInstance(TaskInstance):
    _tensor_attrs = ("teacher", "teacher_singular_values", "inputs", "labels")

    def __init__(self, task: DeepLinear, seed: int) -> None:
        r = task.rank
        sv = log_spaced_singular_values(r, task.condition)
        g = generator(seed, "teacher")
        u, _ = torch.linalg.qr(torch.randn(task.dim_out, r, dtype=torch.float64, generator=g))
        v, _ = torch.linalg.qr(torch.randn(task.dim_in, r, dtype=torch.float64, generator=g))
        self.teacher = ((u * sv) @ v.T).float()
        self.teacher_singular_values = sv.float()
        g = generator(seed, "data")
        self.inputs = torch.randn(task.num_samples, task.dim_in, generator=g)
        self.labels = self.inputs @ self.teacher.T
        if task.noise > 0:
            self.labels = self.labels + task.noise * torch.randn(self.labels.shape, generator=g)
        sizes = [task.dim_in] + [task.width] * (task.depth - 1) + [task.dim_out]
        model = DeepLinearNet(sizes)
        g = generator(seed, "init")
        with torch.no_grad():
            for layer in model.layers:
                fan_in = layer.weight.shape[1]
                layer.weight.normal_(0.0, task.init_scale / fan_in ** 0.5, generator=g)
        self.full_batch = task.batch_size is None
        self._sampler = EpochSampler(seed, task.num_samples, task.batch_size or task.num_samples)
        super().__init__(task, seed, model, role_hints={"head": None})

    def _make_batch(self, step: int) -> tuple:
        return sampled_batch(self._sampler, self.full_batch, step, self.inputs, self.labels)

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        x, y = batch
        return 0.5 * (model(x) - y).pow(2).sum(dim=1).mean()

    def product(self, model: nn.Module) -> Tensor:
        return product(model)

    def _evaluate(self, model: nn.Module) -> dict:
        p = product(model)
        diff = p - self.teacher
        out = {"eval_loss": 0.5 * diff.pow(2).sum() + 0.5 * self.task.dim_out * self.task.noise ** 2,
               "train_loss": self.loss(model, (self.inputs, self.labels)),
               "rel_error": diff.norm() / self.teacher.norm()}
        out.update(singular_value_metrics(p, self.task.num_svs,
                                          float(self.teacher_singular_values[-1]) / 2))
        return out
