"""Lifted rank-1 matrix sensing: an instance with a known spurious point, and its tensor lift of order l.

Ma, Molybog, Lavaei, Sojoudi, "Over-parametrization via Lifting for Low-rank Matrix Sensing: Conversion of
Spurious Solutions to Strict Saddle Points" (ICML 2023, arXiv:2302.07828): lifting the Burer–Monteiro problem
into tensor space keeps spurious solutions stationary but turns them into strict saddles (under technical
conditions, with enough lifting).

Matrix sensing, rank 1: f(x) = ½‖𝒜(x xᵀ) − b‖², b = 𝒜(z zᵀ), 𝒜(M)_i = ⟨A_i, M⟩ with symmetric A_i (m×n×n).
Lift of order l: the variable is a general tensor w ∈ R^{n^l} (not constrained to be symmetric or of rank one)
and f_l(w) = ½‖𝒜^{⊗l}(w wᵀ) − b^{⊗l}‖², where 𝒜^{⊗l} measures the n^l × n^l matrix w wᵀ with the m^l sensing
matrices A_{i1} ⊗ ⋯ ⊗ A_{il} (so 𝒜^{⊗l}((x xᵀ)^{⊗l}) = 𝒜(x xᵀ)^{⊗l}): the rank-one Burer–Monteiro factorization
of the lifted matrix problem, as in the authors' public experiment code (loss ½‖⟨𝐀^{⊗l}, w ⊗ w⟩ − b^{⊗l}‖²).
order 1 is the original problem. Every x lifts to x^{⊗l}; a stationary x̂ lifts to a stationary point
(∇f_l(x̂^{⊗l}) pairs 𝒜*(a)x̂ and 𝒜*(b)x̂, a = 𝒜(x̂x̂ᵀ), which are equal at a stationary x̂); the truth lifts to
Z = z^{⊗l}, the only global minimiser up to sign when 𝒜 is injective on symmetric matrices (both instances).

Instances (``instance``):

- ``"zhang"``: n = 2, m = 3, A_1 = [[1, 0], [0, ½]], A_2 = (√3/2)[[0, 1], [1, 0]], A_3 = [[0, 0], [0, √3/2]], so
  ‖𝒜(M)‖² = M₁₁² + M₁₁M₂₂ + M₂₂² + 3M₁₂² ∈ [½, 3/2]·‖M‖²_F (RIP constant δ = 1/2 on all symmetric M); z = e₁,
  x̂ = (0, 1/√2): ∇f(x̂) = 0, ∇²f(x̂) = diag(0, 2) ⪰ 0, f(x̂) = 3/8 > 0: a spurious second-order critical point
  (f grows like a⁴ along e₁). Zhang, Josz, Sojoudi, Lavaei, "How Much Restricted Isometry is Needed In
  Nonconvex Matrix Recovery?" (NeurIPS 2018, arXiv:1805.10251) show δ = 1/2 admits spurious points; this
  operator is written down here and its properties are checked in the tests.
- ``"pmc"``: perturbed matrix completion (Yalçın, Zhang, Lavaei, Sojoudi, AISTATS 2022), with the weights of
  the lifting authors' experiment code: 𝒜(M)_{ij} = W_ij·M_ij (m = n²), W_ii = 1, W_ij = 1 when i or j is odd
  (0-based), W_ij = ``eps`` otherwise; z = (1, 0, 1, 0, …). x̂ = the stationary point near z with the sign of
  its last even coordinate flipped (20 Newton steps from that sign pattern); a strict spurious local minimum
  for eps < 1 (the sign pattern is seen only through the ε-weighted entries).

Start (``start``): ``"spurious"``: w₀ = x̂^{⊗l} + perturbation·‖x̂^{⊗l}‖·u with u a seeded unit Gaussian
direction; ``"random"``: w₀ ~ N(0, init_scale²/n^l) entrywise. Everything is float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import Task, TaskInstance, check_choice, check_float, check_int, generator

__all__ = ["LiftedMatrixSensing", "lift", "lifted_measure", "zhang_operator", "pmc_operator"]

INSTANCES = ("zhang", "pmc")
STARTS = ("random", "spurious")
MAX_ENTRIES = 1 << 20  # n^(2l): the lifted matrix w wᵀ is formed explicitly


def lift(x: Tensor, order: int) -> Tensor:
    """x^{⊗order} as a flat vector of length n^order (Kronecker powers, row-major)."""
    out = x
    for _ in range(order - 1):
        out = torch.kron(out, x)
    return out


def lifted_measure(a: Tensor, w: Tensor, order: int) -> Tensor:
    """𝒜^{⊗l}(w wᵀ) (flat, m^l) for sensing matrices ``a`` (m×n×n) and w of length n^l: the outer product
    w wᵀ as a tensor with index pairs (j_t, k_t), each pair contracted with ``a`` in turn."""
    m, n = a.shape[0], a.shape[1]
    t = torch.outer(w, w).reshape((n,) * (2 * order))
    t = t.permute([i for s in range(order) for i in (s, order + s)])  # (j1, k1, j2, k2, ...)
    flat_a = a.reshape(m, n * n)
    for _ in range(order):
        t = (flat_a @ t.reshape(n * n, -1)).T.contiguous()  # contract the leading pair; its index goes last
    return t.reshape(-1)


def zhang_operator() -> tuple[Tensor, Tensor, Tensor]:
    """(A (3×2×2), z, x̂) of the δ = 1/2 instance (see the module docstring)."""
    s = math.sqrt(3.0) / 2.0
    a = torch.tensor([[[1.0, 0.0], [0.0, 0.5]], [[0.0, s], [s, 0.0]], [[0.0, 0.0], [0.0, s]]],
                     dtype=torch.float64)
    return a, torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, math.sqrt(0.5)],
                                                                          dtype=torch.float64)


def pmc_weights(n: int, eps: float) -> Tensor:
    w = torch.full((n, n), eps, dtype=torch.float64)
    w[1::2, :] = 1.0
    w[:, 1::2] = 1.0
    w.fill_diagonal_(1.0)
    return w


def pmc_operator(n: int, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(A (n²×n×n), z, x̂) of perturbed matrix completion: A_{(i,j)} = W_ij (e_i e_jᵀ + e_j e_iᵀ)/2, so
    𝒜(M)_{(i,j)} = W_ij M_ij for symmetric M."""
    wts = pmc_weights(n, eps)
    a = torch.zeros(n * n, n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            a[i * n + j, i, j] += wts[i, j] / 2
            a[i * n + j, j, i] += wts[i, j] / 2
    z = torch.zeros(n, dtype=torch.float64)
    z[0::2] = 1.0
    x = z.clone()
    x[2 * ((n - 1) // 2)] = -1.0
    b = lifted_measure(a, z, 1)
    for _ in range(20):  # Newton on the n-dimensional original problem
        xx = x.clone().requires_grad_(True)
        g = torch.autograd.grad(0.5 * (lifted_measure(a, xx, 1) - b).pow(2).sum(), xx, create_graph=True)[0]
        h = torch.stack([torch.autograd.grad(g[i], xx, retain_graph=True)[0] for i in range(n)])
        x = (x - torch.linalg.solve(h, g.detach())).detach()
    return a, z, x


@dataclass(frozen=True, kw_only=True)
class LiftedMatrixSensing(Task):
    """Options: instance ("zhang" | "pmc"), n (pmc size ≥ 3, 4; zhang is n = 2), eps (pmc weight of the
    ε-entries, 0.5), order (lifting order l, 2; 1 = the original problem), start ("random" | "spurious"),
    init_scale (random start: ‖w₀‖ ≈ init_scale, 0.5), perturbation (spurious start: relative size of the
    seeded perturbation, 1e-3). n^(2l) must be ≤ 2^20.

    Metrics: eval_loss (f_l(w), the lifted loss: the whole objective, noise-free), dist (min ‖w ∓ Z‖ / ‖Z‖,
    Z = z^{⊗l}; primary), spurious_dist (min ‖w ∓ x̂^{⊗l}‖ / ‖x̂^{⊗l}‖). Instance attributes: ``operator``
    (m×n×n), ``truth`` (z), ``spurious`` (x̂), ``lifted_truth``, ``lifted_spurious``; ``objective(w)``.
    """

    name = "lifted_matrix_sensing"
    eval_cost = 1.0
    description = "rank-1 matrix sensing with a known spurious point, lifted to a tensor of order l"
    references = (
        "Ma, Molybog, Lavaei, Sojoudi, 'Over-parametrization via Lifting for Low-rank Matrix Sensing: Conversion "
        "of Spurious Solutions to Strict Saddle Points', ICML 2023, arXiv:2302.07828",
        "Zhang, Josz, Sojoudi, Lavaei, 'How Much Restricted Isometry is Needed In Nonconvex Matrix Recovery?', "
        "NeurIPS 2018, arXiv:1805.10251",
        "Yalçın, Zhang, Lavaei, Sojoudi, 'Factorization Approach for Low-complexity Matrix Completion Problems: "
        "Exponential Number of Spurious Solutions and Failure of Gradient Methods', AISTATS 2022",
    )

    instance: str = "zhang"
    n: int = 4
    eps: float = 0.5
    order: int = 2
    start: str = "random"
    init_scale: float = 0.5
    perturbation: float = 1e-3

    def __post_init__(self) -> None:
        t = self.name
        check_choice(t, "instance", self.instance, INSTANCES)
        check_int(t, "n", self.n, minimum=3)
        check_float(t, "eps", self.eps, minimum=0.0, maximum=1.0, strict_min=True)
        check_int(t, "order", self.order, minimum=1)
        if self.dim ** (2 * self.order) > MAX_ENTRIES:
            raise ValueError(f"{t}: order must keep n^(2·order) ≤ 2^20 (n = {self.dim}), got {self.order!r}")
        check_choice(t, "start", self.start, STARTS)
        check_float(t, "init_scale", self.init_scale, minimum=0.0, strict_min=True)
        check_float(t, "perturbation", self.perturbation, minimum=0.0)

    @property
    def dim(self) -> int:
        return 2 if self.instance == "zhang" else self.n

    def _metrics(self):
        return ("eval_loss", "dist", "spurious_dist")

    def _primary_metric(self) -> str:
        return "dist"

    def _default_steps(self) -> int:
        return 1000

    def _default_batch_size(self):
        return None

    def _adamw(self):
        return {"lr": 0.02, "weight_decay": 0.0}

    def _targets(self) -> dict[str, float]:
        return {"dist": 0.01}

    def _build(self, seed: int) -> "LiftedSensingInstance":
        return LiftedSensingInstance(self, seed)


class LiftedVariable(nn.Module):
    """The lifted variable w (flat, n^l entries) as one parameter; ``forward()`` returns it."""

    def __init__(self, w0: Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w0.clone())

    def forward(self) -> Tensor:
        return self.w


class LiftedSensingInstance(TaskInstance):
    _tensor_attrs = ("operator", "truth", "spurious", "lifted_truth", "lifted_spurious", "lifted_b")
    full_batch = True

    def __init__(self, task: LiftedMatrixSensing, seed: int) -> None:
        a, z, x = zhang_operator() if task.instance == "zhang" else pmc_operator(task.n, task.eps)
        order = task.order
        self.operator, self.truth, self.spurious = a, z, x
        self.lifted_truth, self.lifted_spurious = lift(z, order), lift(x, order)
        self.lifted_b = lift(lifted_measure(a, z, 1), order)
        size = self.lifted_truth.numel()
        u = torch.randn(size, dtype=torch.float64, generator=generator(seed, "init"))
        if task.start == "spurious":
            w0 = self.lifted_spurious + task.perturbation * self.lifted_spurious.norm() * u / u.norm()
        else:
            w0 = task.init_scale * u / math.sqrt(size)
        super().__init__(task, seed, LiftedVariable(w0), role_hints={"head": None, "roles": {"w": "vector"}})

    def objective(self, w: Tensor) -> Tensor:
        """f_l(w) = ½‖𝒜^{⊗l}(w wᵀ) − b^{⊗l}‖²."""
        return 0.5 * (lifted_measure(self.operator, w, self.task.order) - self.lifted_b).pow(2).sum()

    def _make_batch(self, step: int) -> tuple:
        return ()

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        return self.objective(model())

    @staticmethod
    def _rel(w: Tensor, ref: Tensor) -> float:
        return float(torch.minimum((w - ref).norm(), (w + ref).norm()) / ref.norm())

    def _evaluate(self, model: nn.Module) -> dict:
        w = model().detach()
        return {"eval_loss": self.objective(w), "dist": self._rel(w, self.lifted_truth),
                "spurious_dist": self._rel(w, self.lifted_spurious)}
