"""The two toy problems of Wen et al., "Understanding Warmup-Stable-Decay Learning Rates: A River Valley
Loss Landscape Perspective" (arXiv:2410.05192): a river-valley landscape and a bigram Markov-chain LM.

river_valley: parameters x ∈ R^d (the slow "river" coordinates) and y ∈ R^d (the stiff "mountain"
    coordinates), L(x, y) = (1/d) Σ_j [softplus(−x_j) + (a/2)(y_j − bend·sin x_j)²]. The river softplus(−x)
    keeps falling as x grows; the valley walls have curvature a ≫ the river's. Stochastic gradients: each
    step's batch is a Gaussian vector ξ, and the training loss adds (noise/√d)·⟨ξ, (x, y)⟩, so the gradient
    is exact plus N(0, noise²/d) per coordinate. At a fixed learning rate the iterate bounces on the valley
    walls (mountain loss ≈ η·noise²/4 per coordinate for GD); a decay removes that part of the loss quickly,
    while progress along the river is set by the lr integrated over time (the paper's picture of WSD).
bigram_lm: a Markov chain on a vocabulary of V tokens whose transition rows are Dirichlet(concentration·1)
    from the seed; batches are (token, next token) pairs with the token drawn from the chain's stationary
    distribution π; the model is a V × V logit table (``model="table"``, init N(0, 0.01²)) or a factored
    embedding-then-linear model of width ``width``. The exact expected cross-entropy is computable, and so
    is the excess over the chain's entropy rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Task, TaskInstance, check_choice, check_float, check_int, derive_seed, generator, init_module_

REFERENCE = ("Wen, Li, Chen, Huang, Liang, Ma, 'Understanding Warmup-Stable-Decay Learning Rates: A River "
             "Valley Loss Landscape Perspective', arXiv:2410.05192",)


@dataclass(frozen=True, kw_only=True)
class RiverValley(Task):
    """Options: dim (d, 10), stiffness (a, 100.0), bend (valley floor y = bend·sin x, 0.5), noise (gradient
    noise scale, 1.0; 0 gives full-batch GD).

    Metrics: eval_loss (the exact L), river_loss ((1/d) Σ softplus(−x_j)), mountain_loss (the valley part).
    """

    name = "river_valley"
    eval_cost = 0.2
    description = "river-valley toy landscape: slow softplus river, stiff quadratic valley walls, noisy gradients"
    references = REFERENCE

    dim: int = 10
    stiffness: float = 100.0
    bend: float = 0.5
    noise: float = 1.0

    def __post_init__(self) -> None:
        t = self.name
        check_int(t, "dim", self.dim, minimum=1)
        check_float(t, "stiffness", self.stiffness, minimum=0.0, strict_min=True)
        check_float(t, "bend", self.bend)
        check_float(t, "noise", self.noise, minimum=0.0)

    def _metrics(self):
        return ("eval_loss", "river_loss", "mountain_loss")

    def _default_steps(self) -> int:
        return 2000

    def _default_batch_size(self) -> int | None:
        return None if self.noise == 0 else 1

    def _adamw(self):
        return {"lr": 0.01, "weight_decay": 0.0}

    def _targets(self) -> dict[str, float]:
        # AdamW at the defaults ends at 0.273 / 0.338 on seeds 0 / 1 (measured; the start is 50)
        return {"eval_loss": 0.4}

    def _build(self, seed: int) -> "RiverValleyInstance":
        return RiverValleyInstance(self, seed)


class RiverValleyModel(nn.Module):
    """``river`` (x) and ``mountain`` (y) vectors."""

    def __init__(self, x0: Tensor, y0: Tensor) -> None:
        super().__init__()
        self.river = nn.Parameter(x0.clone())
        self.mountain = nn.Parameter(y0.clone())


class RiverValleyInstance(TaskInstance):
    def __init__(self, task: RiverValley, seed: int) -> None:
        g = generator(seed, "init")
        d = task.dim
        self.full_batch = task.noise == 0
        super().__init__(task, seed, RiverValleyModel(torch.zeros(d), torch.randn(d, generator=g)),
                         role_hints={"head": None})

    def parts(self, model: nn.Module) -> tuple[Tensor, Tensor]:
        x, y = model.river, model.mountain
        river = F.softplus(-x).mean()
        mountain = 0.5 * self.task.stiffness * (y - self.task.bend * torch.sin(x)).pow(2).mean()
        return river, mountain

    def _make_batch(self, step: int) -> tuple:
        if self.full_batch:
            return (torch.zeros(2 * self.task.dim),)
        return (torch.randn(2 * self.task.dim, generator=generator(self.seed, "batch", step)),)

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        (xi,) = batch
        river, mountain = self.parts(model)
        theta = torch.cat([model.river, model.mountain])
        return river + mountain + self.task.noise / self.task.dim ** 0.5 * (xi.to(theta) @ theta)

    def _evaluate(self, model: nn.Module) -> dict:
        river, mountain = self.parts(model)
        return {"eval_loss": river + mountain, "river_loss": river, "mountain_loss": mountain}


MODELS = ("table", "factored")


@dataclass(frozen=True, kw_only=True)
class BigramLM(Task):
    """Options: vocab (V, 50), concentration (Dirichlet parameter of each transition row, 0.1), model
    ("table" | "factored"), width (embedding width of the factored model, 16), batch_size (pairs per step, 32).

    Metrics: eval_loss (exact expected cross-entropy under π and the chain), excess_loss (eval_loss minus the
    entropy rate; primary, 0 at the true logits), accuracy (expected top-1 accuracy). ``transitions`` (V × V),
    ``stationary`` (π) and ``entropy_rate`` are instance attributes.
    """

    name = "bigram_lm"
    eval_cost = 0.5
    description = "bigram Markov-chain language model with Dirichlet transitions (exact excess loss)"
    references = REFERENCE

    vocab: int = 50
    concentration: float = 0.1
    model: str = "table"
    width: int = 16
    batch_size: int = 32

    def __post_init__(self) -> None:
        t = self.name
        check_int(t, "vocab", self.vocab, minimum=2)
        check_float(t, "concentration", self.concentration, minimum=0.0, strict_min=True)
        check_choice(t, "model", self.model, MODELS)
        check_int(t, "width", self.width, minimum=1)
        check_int(t, "batch_size", self.batch_size, minimum=1)

    def _metrics(self):
        return ("eval_loss", "excess_loss", "accuracy")

    def _primary_metric(self) -> str:
        return "excess_loss"

    def _default_steps(self) -> int:
        return 2000

    def _adamw(self):
        return {"lr": 0.03, "weight_decay": 0.0}

    def _targets(self) -> dict[str, float]:
        # AdamW at the defaults (lr 0.03) ends at excess 0.036 / 0.035 on seeds 0 / 1 (measured; the start is 1.75)
        return {"excess_loss": 0.05}

    def _build(self, seed: int) -> "BigramInstance":
        return BigramInstance(self, seed)


class BigramModel(nn.Module):
    """Logits of the next token: ``table[x]`` or ``head(emb(x))``."""

    def __init__(self, vocab: int, kind: str, width: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "table":
            self.table = nn.Parameter(torch.zeros(vocab, vocab))
        else:
            self.emb = nn.Embedding(vocab, width)
            self.head = nn.Linear(width, vocab)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.table[tokens] if self.kind == "table" else self.head(self.emb(tokens))


class BigramInstance(TaskInstance):
    _tensor_attrs = ("transitions", "stationary")

    def __init__(self, task: BigramLM, seed: int) -> None:
        v = task.vocab
        rng = np.random.default_rng(derive_seed(seed, "chain"))
        p = rng.dirichlet(np.full(v, task.concentration), size=v) + 1e-12
        p /= p.sum(axis=1, keepdims=True)
        pi = np.full(v, 1.0 / v)
        for _ in range(10_000):  # power iteration on πᵀP = πᵀ (rows are positive: the chain is ergodic)
            new = pi @ p
            if np.abs(new - pi).sum() < 1e-14:
                break
            pi = new
        self.transitions = torch.tensor(p, dtype=torch.float64)
        self.stationary = torch.tensor(pi / pi.sum(), dtype=torch.float64)
        self.entropy_rate = float(-(self.stationary[:, None] * self.transitions * self.transitions.log()).sum())
        model = BigramModel(v, task.model, task.width)
        if task.model == "factored":
            init_module_(model, generator(seed, "init"), std=0.02)
        else:
            with torch.no_grad():
                model.table.normal_(0.0, 0.01, generator=generator(seed, "init"))
        role = {"head": None, "roles": {"table": "matrix"}} if task.model == "table" else {
            "head": "head", "embedding": "emb"}
        super().__init__(task, seed, model, role_hints=role)

    def _make_batch(self, step: int) -> tuple:
        g = generator(self.seed, "batch", step)
        x = torch.multinomial(self.stationary.cpu().float(), self.task.batch_size, replacement=True, generator=g)
        y = torch.multinomial(self.transitions.cpu()[x].float(), 1, generator=g)[:, 0]
        return x, y

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)

    def _evaluate(self, model: nn.Module) -> dict:
        tokens = torch.arange(self.task.vocab, device=self.stationary.device)
        logq = torch.log_softmax(model(tokens).double(), dim=1)
        joint = self.stationary[:, None] * self.transitions
        ce = -(joint * logq).sum()
        acc = (self.stationary * self.transitions.gather(1, logq.argmax(1, keepdim=True))[:, 0]).sum()
        return {"eval_loss": ce, "excess_loss": ce - self.entropy_rate, "accuracy": acc}
