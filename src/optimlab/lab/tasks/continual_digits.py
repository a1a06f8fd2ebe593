"""Continual learning as a lab task: the runner's evaluation scores every task's test set.

The batch at step t comes from task t // steps_per_task; ``evaluate`` returns one accuracy per task, so
``optimlab.lab.runner.run("continual_digits", ..., eval_every=1)`` is continual evaluation (every past and
future task after every step; De Lange et al., arXiv:2205.13452) with no change to the runner.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .base import Task, TaskInstance, check_choice, check_int, generator, init_module_
from .blocks import MLP

N_TASKS = 5


@dataclass(frozen=True, kw_only=True)
class ContinualDigits(Task):
    """Options: variant ("split": 5 tasks × 2 classes, one 10-way head | "rotated": all classes at
    0/45/90/135/180°), steps_per_task (200), batch_size (32: new examples; with replay, half new and half
    replayed), replay (examples kept per earlier task, 0 = none; default 40), width (100). Metrics: eval_loss
    (all tasks' test sets), average_accuracy, acc_task1..acc_task5."""

    name = "continual_digits"
    eval_cost = 3.0
    description = "5-task continual learning on 8x8 digits (split or rotated), every task evaluated"
    references = ("De Lange, van de Ven, Tuytelaars, 'Continual evaluation for lifelong learning: Identifying "
                  "the stability gap', arXiv:2205.13452",)

    variant: str = "split"
    steps_per_task: int = 200
    batch_size: int = 32
    replay: int = 40
    width: int = 100

    def __post_init__(self) -> None:
        check_choice(self.name, "variant", self.variant, ("split", "rotated"))
        check_int(self.name, "steps_per_task", self.steps_per_task, minimum=1)
        check_int(self.name, "batch_size", self.batch_size, minimum=2)
        check_int(self.name, "replay", self.replay, minimum=0)
        check_int(self.name, "width", self.width, minimum=1)

    def _metrics(self):
        return ("eval_loss", "average_accuracy") + tuple(f"acc_task{k + 1}" for k in range(N_TASKS))

    def _primary_metric(self) -> str:
        return "average_accuracy"

    def _maximize(self) -> bool:
        return True

    def _targets(self) -> dict[str, float]:
        # AdamW at the defaults (split, replay 40): final average accuracy 0.907 / 0.921, seeds 0 / 1 (measured)
        return {"average_accuracy": 0.85}

    def _default_steps(self) -> int:
        return N_TASKS * self.steps_per_task

    def _adamw(self):
        return {"lr": 1e-3, "weight_decay": 0.0}

    def _build(self, seed: int) -> "ContinualInstance":
        from ..continual import rotated_digits, split_digits

        tasks = split_digits(seed) if self.variant == "split" else rotated_digits(seed)
        model = MLP(64, [self.width], 10, "relu")
        init_module_(model, generator(seed, "init"))
        return ContinualInstance(self, seed, model, tasks)


class ContinualInstance(TaskInstance):
    def __init__(self, task: ContinualDigits, seed: int, model: nn.Module, tasks: list) -> None:
        self.x_train = [t.x_train for t in tasks]
        self.y_train = [t.y_train for t in tasks]
        self.x_test = torch.cat([t.x_test for t in tasks])
        self.y_test = torch.cat([t.y_test for t in tasks])
        self.segment = torch.cat([torch.full((len(t.y_test),), k) for k, t in enumerate(tasks)])
        # the replay memory: the first `replay` examples of each task in a seeded order
        self.memory = [torch.randperm(len(y), generator=generator(seed, "memory", k))[:task.replay]
                       for k, y in enumerate(self.y_train)]
        super().__init__(task, seed, model, role_hints={"head": "head"})

    def to(self, device):  # data stays on CPU for indexing; batches move in batch()
        self.device = torch.device(device)
        self.model.to(self.device)
        self.x_test, self.y_test, self.segment = (t.to(self.device) for t in (self.x_test, self.y_test, self.segment))
        self._full_batch_cache = None
        return self

    def _make_batch(self, step: int) -> tuple:
        task = self.task
        k = min(step // task.steps_per_task, N_TASKS - 1)
        g = self.batch_generator(step)
        n_new = task.batch_size // 2 if (task.replay and k > 0) else task.batch_size
        idx = torch.randint(0, len(self.y_train[k]), (n_new,), generator=g)
        xs, ys = [self.x_train[k][idx]], [self.y_train[k][idx]]
        if n_new < task.batch_size:
            pool_x = torch.cat([self.x_train[j][self.memory[j]] for j in range(k)])
            pool_y = torch.cat([self.y_train[j][self.memory[j]] for j in range(k)])
            r = torch.randint(0, len(pool_y), (task.batch_size - n_new,), generator=g)
            xs.append(pool_x[r])
            ys.append(pool_y[r])
        return torch.cat(xs), torch.cat(ys)

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)

    def _evaluate(self, model: nn.Module) -> dict:
        logits = model(self.x_test)
        hit = (logits.argmax(1) == self.y_test).float()
        per = torch.bincount(self.segment, weights=hit, minlength=N_TASKS) / torch.bincount(self.segment, minlength=N_TASKS)
        out = {"eval_loss": F.cross_entropy(logits, self.y_test), "average_accuracy": per.mean()}
        out.update({f"acc_task{k + 1}": per[k] for k in range(N_TASKS)})
        return out
