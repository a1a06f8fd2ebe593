"""A small generated Markov decision process with a tabular softmax policy: the policy-gradient setting.

A random MDP (``n_states`` states, ``n_actions`` actions; transitions P(·|s, a) ~ Dirichlet(1), rewards
r(s, a) ~ U(0, 1), initial distribution ρ ~ Dirichlet(1), all from the build seed) and the policy
π_θ(a|s) = softmax(θ[s])_a. The objective is the ``horizon``-step discounted return
J(θ) = E[Σ_{t<H} γ^t r(s_t, a_t)], computed exactly (forward recursion of the state distribution, so the
exact gradient and Hessian follow by autograd) and estimated from batched rollouts.

The training loss of a batch is ``J* − Ĵ`` with Ĵ the DiCE surrogate (Foerster et al., "DiCE: The Infinitely
Differentiable Monte Carlo Estimator", arXiv:1802.05098) of the rollouts:
``Ĵ = mean_b Σ_t γ^t r_t · exp(c_t − stop(c_t))``, ``c_t = Σ_{k≤t} log π_θ(a_k|s_k)``. Its value is the
sampled return, its gradient the GPOMDP policy-gradient estimate and its Hessian the unbiased policy-Hessian
estimate (Σ_t γ^t r_t [∇²c_t + ∇c_t ∇c_tᵀ]) of the Hessian-aided methods (HAPG, Shen et al. 2019; N-HARPG,
Fatkhullin et al., arXiv:2302.01734). ``J*`` is the optimal H-step value (dynamic programming over
non-stationary policies), so the loss is a regret ≥ 0 in expectation.

The batch of a step is the uniforms that drive the rollouts (inverse-CDF sampling): a closure called again at
another θ (a re-evaluation, a Hessian-vector product at θ̂) samples trajectories from π at *that* θ with the
same random numbers (common random numbers; each trajectory is still a sample of π at the point).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import Task, TaskInstance, check_float, check_int, generator

__all__ = ["PolicyMDP", "PolicyMDPInstance", "TabularPolicy"]


@dataclass(frozen=True, kw_only=True)
class PolicyMDP(Task):
    """Options:

    n_states: states (6). n_actions: actions per state (3). horizon: steps per trajectory H (16).
    discount: γ (0.9). batch_size: trajectories per step (16). init_scale: std of the initial logits (0.5).

    Metrics: eval_loss (J* − J(π_θ), exact), return (J(π_θ), exact), grad_norm (‖∇J(θ)‖, exact).
    The instance exposes ``objective(logits)`` (exact J, differentiable) and ``exact_gradient(model)``.
    """

    name = "policy_mdp"
    eval_cost = 0.3
    description = "random tabular MDP, softmax policy, DiCE policy-gradient surrogate over batched rollouts"
    references = ("Fatkhullin, Barakat, Kireeva, He, arXiv:2302.01734 (policy-gradient setting)",
                  "Foerster et al., DiCE, arXiv:1802.05098 (the surrogate)")

    n_states: int = 6
    n_actions: int = 3
    horizon: int = 16
    discount: float = 0.9
    batch_size: int = 16
    init_scale: float = 0.5

    def _targets(self) -> dict[str, float]:
        # regret reached by AdamW at the task's settings within the default budget (seeds 0 / 1: 0.36 / 0.12)
        return {"eval_loss": 0.5}

    def __post_init__(self) -> None:
        check_int(self.name, "n_states", self.n_states, minimum=1, maximum=10_000)
        check_int(self.name, "n_actions", self.n_actions, minimum=2, maximum=1_000)
        check_int(self.name, "horizon", self.horizon, minimum=1, maximum=10_000)
        check_float(self.name, "discount", self.discount, minimum=0.0, maximum=1.0)
        check_int(self.name, "batch_size", self.batch_size, minimum=1)
        check_float(self.name, "init_scale", self.init_scale, minimum=0.0)

    def _metrics(self):
        return ("eval_loss", "return", "grad_norm")

    def _default_steps(self) -> int:
        return 300

    def _adamw(self):
        return {"lr": 0.1, "weight_decay": 0.0}

    def _build(self, seed: int) -> "PolicyMDPInstance":
        return PolicyMDPInstance(self, seed)


class TabularPolicy(nn.Module):
    """π_θ(a|s) = softmax(logits[s])."""

    def __init__(self, logits: Tensor):
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self) -> Tensor:
        return torch.log_softmax(self.logits, dim=-1)


def _dirichlet1(shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
    """Dirichlet(1, ..., 1) along the last axis: normalized Exp(1) draws (from ``gen`` only)."""
    e = -torch.log1p(-torch.rand(shape, generator=gen, dtype=torch.float64))
    return e / e.sum(-1, keepdim=True)


class PolicyMDPInstance(TaskInstance):
    _tensor_attrs = ("transitions", "rewards", "initial")

    def __init__(self, task: PolicyMDP, seed: int) -> None:
        S, A = task.n_states, task.n_actions
        g = generator(seed, "mdp")
        self.transitions = _dirichlet1((S, A, S), g).float()
        self.rewards = torch.rand(S, A, generator=g, dtype=torch.float64).float()
        self.initial = _dirichlet1((S,), g).float()
        logits = task.init_scale * torch.randn(S, A, generator=generator(seed, "init"))
        super().__init__(task, seed, TabularPolicy(logits), role_hints={"head": None, "roles": {"logits": "matrix"}})
        self.optimal_value = self._optimal_value()

    def _optimal_value(self) -> float:
        """J* = ρᵀV_0 with V_t(s) = max_a [r(s,a) + γ Σ_s' P(s'|s,a) V_{t+1}(s')], V_H = 0 (float64)."""
        P, r = self.transitions.double(), self.rewards.double()
        V = torch.zeros(P.shape[0], dtype=torch.float64)
        for _ in range(self.task.horizon):
            V = (r + self.task.discount * P @ V).max(dim=1).values
        return float(self.initial.double() @ V)

    def objective(self, logits: Tensor) -> Tensor:
        """The exact H-step discounted return J of π = softmax(logits) (differentiable in ``logits``)."""
        pi = torch.softmax(logits, dim=-1)
        P, r = self.transitions.to(logits.dtype), self.rewards.to(logits.dtype)
        mu = self.initial.to(logits.dtype)
        total = logits.new_zeros(())
        for t in range(self.task.horizon):
            joint = mu.unsqueeze(1) * pi  # (S, A): P(s_t = s, a_t = a)
            total = total + self.task.discount ** t * (joint * r).sum()
            mu = torch.einsum("sa,sap->p", joint, P)
        return total

    def exact_gradient(self, model: nn.Module | None = None) -> Tensor:
        """∇_θ(J* − J) = −∇J at the model's logits (a tensor of the logits' shape)."""
        logits = (self.model if model is None else model).logits.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(-self.objective(logits), logits)
        return g

    def _make_batch(self, step: int) -> tuple:
        gen = self.batch_generator(step)
        B, H = self.task.batch_size, self.task.horizon
        return (torch.rand(B, generator=gen), torch.rand(B, H, generator=gen), torch.rand(B, H, generator=gen))

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        u0, ua, us = batch
        logp_all = model()  # (S, A)
        P, r = self.transitions, self.rewards
        state = torch.searchsorted(torch.cumsum(self.initial, 0).contiguous(), u0.unsqueeze(1)).squeeze(1)
        state = state.clamp_max(P.shape[0] - 1)
        cum = logp_all.new_zeros(u0.shape[0])
        surrogate = logp_all.new_zeros(())
        for t in range(self.task.horizon):
            logp = logp_all[state]  # (B, A)
            cdf = torch.cumsum(logp.detach().exp(), dim=1)
            action = (cdf < ua[:, t:t + 1]).sum(1).clamp_max(logp.shape[1] - 1)
            cum = cum + logp.gather(1, action.unsqueeze(1)).squeeze(1)
            magic = torch.exp(cum - cum.detach())  # 1 in value, carries every derivative of log p(τ_{≤t})
            surrogate = surrogate + self.task.discount ** t * (r[state, action] * magic).mean()
            nxt = torch.cumsum(P[state, action], dim=1)
            state = (nxt < us[:, t:t + 1]).sum(1).clamp_max(P.shape[0] - 1)
        return self.optimal_value - surrogate

    def _evaluate(self, model: nn.Module) -> dict:
        j = self.objective(model.logits)
        return {"eval_loss": self.optimal_value - j, "return": j,
                "grad_norm": self.exact_gradient(model).norm()}
