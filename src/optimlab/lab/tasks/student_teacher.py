"""Student–teacher regression with two-layer tanh networks, and the rule-flipped ("curl") update.

Ninou, Kadmon, Cayco-Gajic, "Curl Descent: Non-Gradient Learning Dynamics with Sign-Diverse Plasticity"
(arXiv:2510.02765). A student f(x) = aᵀ tanh(W x / √d) (width ``width``) learns a teacher of the same form
(width ``teacher_width``) from Gaussian inputs. In curl descent a fixed fraction ρ of the student's hidden
neurons have rule-flipped plasticity: their incoming weights move along +∇ instead of −∇, every other
weight along −∇. The update field is then no gradient of any function (it has a curl term whose size
grows with ρ). ``curl_masks`` gives the per-parameter sign masks; multiplying the gradients by them before
an SGD step (``apply_masks``) turns the step into the curl-descent step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import Task, TaskInstance, check_float, check_int, generator

__all__ = ["StudentTeacher", "TanhNet", "curl_masks", "apply_masks"]


class TanhNet(nn.Module):
    """x ↦ aᵀ tanh(W x / √d) (no biases)."""

    def __init__(self, d: int, width: int) -> None:
        super().__init__()
        self.d = d
        self.hidden = nn.Linear(d, width, bias=False)
        self.head = nn.Linear(width, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(torch.tanh(self.hidden(x) / math.sqrt(self.d))).squeeze(-1)


def curl_masks(model: TanhNet, rho: float, seed: int) -> dict[str, Tensor]:
    """Sign masks {parameter name: ±1 tensor}: round(ρ·width) hidden neurons, drawn with ``seed``, get −1
    on their incoming weights (rule-flipped plasticity); every other entry is +1."""
    check_float("curl_masks", "rho", rho, minimum=0.0, maximum=1.0)
    width = model.hidden.weight.shape[0]
    flipped = torch.randperm(width, generator=generator(seed, "curl"))[: int(round(rho * width))]
    hidden = torch.ones_like(model.hidden.weight)
    hidden[flipped] = -1.0
    return {"hidden.weight": hidden, "head.weight": torch.ones_like(model.head.weight)}


def apply_masks(model: nn.Module, masks: dict[str, Tensor]) -> None:
    """Multiply each parameter's ``.grad`` by its mask, in place (call between backward and step)."""
    for name, p in model.named_parameters():
        if p.grad is not None and name in masks:
            p.grad.mul_(masks[name])


@dataclass(frozen=True, kw_only=True)
class StudentTeacher(Task):
    """Options: d (input dimension, 20), width (student, 20), teacher_width (4), n_train (1000),
    n_test (2000), init_scale (student hidden weights N(0, init_scale²), readout N(0, init_scale²/width);
    1.0), noise (label noise std, 0.0).

    Teacher: hidden rows N(0, I_d), readout entries 1/√teacher_width (fixed from the seed). Full batch.
    Loss ½·mean (f(x) − y)². Metrics: train_loss, eval_loss (test loss on noise-free labels).
    """

    name = "student_teacher"
    eval_cost = 2.0
    description = "2-layer tanh student learns a 2-layer tanh teacher (curl-descent setting)"
    references = ("Ninou, Kadmon, Cayco-Gajic, 'Curl Descent: Non-Gradient Learning Dynamics with "
                  "Sign-Diverse Plasticity', arXiv:2510.02765",
                  "Saad, Solla, 'On-line learning in soft committee machines', PRE 1995")

    d: int = 20
    width: int = 20
    teacher_width: int = 4
    n_train: int = 1000
    n_test: int = 2000
    init_scale: float = 1.0
    noise: float = 0.0

    def _targets(self) -> dict[str, float]:
        # reached by AdamW at the task's settings within the default budget (seeds 0 and 1 end below 1e-4)
        return {"eval_loss": 1e-3}

    def __post_init__(self) -> None:
        n = self.name
        check_int(n, "d", self.d, minimum=1)
        check_int(n, "width", self.width, minimum=1)
        check_int(n, "teacher_width", self.teacher_width, minimum=1)
        check_int(n, "n_train", self.n_train, minimum=1)
        check_int(n, "n_test", self.n_test, minimum=1)
        check_float(n, "init_scale", self.init_scale, minimum=0.0, strict_min=True)
        check_float(n, "noise", self.noise, minimum=0.0)

    def _metrics(self):
        return ("train_loss", "eval_loss")

    def _default_steps(self) -> int:
        return 5000

    def _default_batch_size(self):
        return None

    def _adamw(self):
        return {"lr": 1e-2, "weight_decay": 0.0}

    def _build(self, seed: int) -> "StudentTeacherInstance":
        return StudentTeacherInstance(self, seed)


class StudentTeacherInstance(TaskInstance):
    _tensor_attrs = ("x", "y", "x_test", "y_test")
    full_batch = True

    def __init__(self, task: StudentTeacher, seed: int) -> None:
        teacher = TanhNet(task.d, task.teacher_width)
        with torch.no_grad():
            teacher.hidden.weight.normal_(0.0, 1.0, generator=generator(seed, "teacher"))
            teacher.head.weight.fill_(1.0 / math.sqrt(task.teacher_width))
        gdata = generator(seed, "data")
        self.x = torch.randn(task.n_train, task.d, generator=gdata)
        self.x_test = torch.randn(task.n_test, task.d, generator=gdata)
        with torch.no_grad():
            self.y = teacher(self.x) + task.noise * torch.randn(task.n_train, generator=gdata)
            self.y_test = teacher(self.x_test)
        self.teacher = teacher
        model = TanhNet(task.d, task.width)
        ginit = generator(seed, "init")
        with torch.no_grad():
            model.hidden.weight.normal_(0.0, task.init_scale, generator=ginit)
            model.head.weight.normal_(0.0, task.init_scale / math.sqrt(task.width), generator=ginit)
        super().__init__(task, seed, model, role_hints={"head": "head"})

    def _make_batch(self, step: int) -> tuple:
        return self.x, self.y

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        x, y = batch
        return 0.5 * (model(x) - y).pow(2).mean()

    def _evaluate(self, model: nn.Module) -> dict:
        return {"train_loss": self.loss(model, (self.x, self.y)),
                "eval_loss": self.loss(model, (self.x_test, self.y_test))}
