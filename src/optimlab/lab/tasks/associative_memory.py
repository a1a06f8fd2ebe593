"""Linear associative memory with random Gaussian embeddings and Zipf-distributed queries.

N input tokens x have fixed random embeddings e_x in R^d, M output tokens y have u_y in R^d
(i.i.d. N(0, I/d), so ||e|| ~ 1 and N can far exceed d). A fixed random map f* sends each input
to its output. The model is one matrix W (d x d) scoring output y for input x by u_y^T W e_x,
trained with cross-entropy on queries x ~ p(x) proportional to x^(-zipf_exponent).
An association is *stored* when argmax_y u_y^T W e_x = f*(x).

This is the factual-recall model of Cabannes, Dohmatob, Bietti, "Scaling Laws for Associative
Memories" (arXiv:2310.02984), in the Gaussian-embedding, cross-entropy, power-law-frequency form
of Kim, Nichani, Wu, Bietti, Lee, "Sharp Capacity Scaling of Spectral Optimizers in Learning
Associative Memory" (seed J1: one Muon step stores more associations than one SGD step; Muon's
critical batch size is larger). W starts at zero, as in their one-step analyses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Task, TaskInstance, check_float, check_int, generator


@dataclass(frozen=True, kw_only=True)
class AssociativeMemory(Task):
    """Options: num_items (N inputs / associations, 1024), num_outputs (M, None: = num_items),
    d (embedding dimension, 64), zipf_exponent (alpha in p(x) ~ x^-alpha, 1.0; 0 is uniform),
    batch_size (queries per step, 256), init_scale (W_0 ~ N(0, init_scale^2 / d), 0.0).

    Metrics: eval_loss (expected cross-entropy under p, exact), stored (number of associations
    retrieved correctly by argmax), stored_fraction (stored / N), weighted_accuracy (sum of p(x)
    over stored x). Instance attributes: frequencies (p), targets (f*), and ``retrieved(model)``
    (a bool per item).
    """

    name = "associative_memory"
    eval_cost = 5.0
    description = "linear associative memory, Gaussian embeddings, Zipf query frequencies"
    references = (
        "Cabannes, Dohmatob, Bietti, 'Scaling Laws for Associative Memories', arXiv:2310.02984",
        "Kim, Nichani, Wu, Bietti, Lee, 'Sharp Capacity Scaling of Spectral Optimizers in "
        "Learning Associative Memory'",
    )

    num_items: int = 1024
    num_outputs: int | None = None
    d: int = 64
    zipf_exponent: float = 1.0
    batch_size: int = 256
    init_scale: float = 0.0

    def _targets(self) -> dict[str, float]:
        # reached by AdamW at the task's settings within the default budget (seeds 0 and 1, measured)
        return {"eval_loss": 2.5, "weighted_accuracy": 0.65}

    def __post_init__(self) -> None:
        n = self.name
        check_int(n, "num_items", self.num_items, minimum=1)
        if self.num_outputs is not None:
            check_int(n, "num_outputs", self.num_outputs, minimum=2)
        elif self.num_items < 2:
            raise ValueError(f"{n}: num_items must be >= 2 when num_outputs is None, "
                             f"got {self.num_items!r}")
        check_int(n, "d", self.d, minimum=1)
        check_float(n, "zipf_exponent", self.zipf_exponent, minimum=0.0)
        check_int(n, "batch_size", self.batch_size, minimum=1)
        check_float(n, "init_scale", self.init_scale, minimum=0.0)

    @property
    def outputs(self) -> int:
        return self.num_items if self.num_outputs is None else self.num_outputs

    def _metrics(self):
        return ("eval_loss", "stored", "stored_fraction", "weighted_accuracy")

    def _default_steps(self) -> int:
        return 1000

    def _adamw(self):
        return {"lr": 0.01, "weight_decay": 0.0}

    def _build(self, seed: int) -> "AssociativeMemoryInstance":
        return AssociativeMemoryInstance(self, seed)


class MemoryModel(nn.Module):
    """Logits u_y^T W e_x for every output y; ``memory.weight`` is W. Embeddings are buffers."""

    def __init__(self, input_emb: Tensor, output_emb: Tensor, w0: Tensor) -> None:
        super().__init__()
        self.register_buffer("input_emb", input_emb)
        self.register_buffer("output_emb", output_emb)
        d = input_emb.shape[1]
        self.memory = nn.Linear(d, d, bias=False)
        with torch.no_grad():
            self.memory.weight.copy_(w0)

    def forward(self, x: Tensor) -> Tensor:
        return self.memory(self.input_emb[x]) @ self.output_emb.T


class AssociativeMemoryInstance(TaskInstance):
    _tensor_attrs = ("frequencies", "targets")

    def __init__(self, task: AssociativeMemory, seed: int) -> None:
        n, m, d = task.num_items, task.outputs, task.d
        ranks = torch.arange(1, n + 1, dtype=torch.float64)
        p = ranks ** (-task.zipf_exponent)
        self.frequencies = (p / p.sum()).float()
        self.targets = torch.randint(m, (n,), generator=generator(seed, "targets"))
        e = torch.randn(n, d, generator=generator(seed, "inputs")) / d ** 0.5
        u = torch.randn(m, d, generator=generator(seed, "outputs")) / d ** 0.5
        w0 = task.init_scale / d ** 0.5 * torch.randn(d, d, generator=generator(seed, "init"))
        # W is the trained matrix, not an output head (the output embeddings are fixed)
        super().__init__(task, seed, MemoryModel(e, u, w0), role_hints={"head": None})

    def _make_batch(self, step: int) -> tuple:
        x = torch.multinomial(self.frequencies.cpu(), self.task.batch_size, replacement=True,
                              generator=self.batch_generator(step))
        return x, self.targets.cpu()[x]

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)

    def retrieved(self, model: nn.Module) -> Tensor:
        """Whether argmax retrieval returns f*(x), for every item x (bool, length N). Ties count
        as failures, so the all-zero memory stores nothing."""
        with torch.no_grad():
            return _strict_argmax_hits(model(torch.arange(self.task.num_items,
                                                          device=self.device)), self.targets)

    def _evaluate(self, model: nn.Module) -> dict:
        logits = model(torch.arange(self.task.num_items, device=self.device))
        per_item = F.cross_entropy(logits, self.targets, reduction="none")
        ok = _strict_argmax_hits(logits, self.targets).float()
        stored = ok.sum()
        return {"eval_loss": (self.frequencies * per_item).sum(), "stored": stored,
                "stored_fraction": stored / self.task.num_items,
                "weighted_accuracy": (self.frequencies * ok).sum()}


def _strict_argmax_hits(logits: Tensor, targets: Tensor) -> Tensor:
    """True where the target's logit is strictly larger than every other logit."""
    target_logit = logits.gather(1, targets[:, None])[:, 0]
    others = logits.scatter(1, targets[:, None], float("-inf")).amax(dim=1)
    return target_logit > others
