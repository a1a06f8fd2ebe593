"""Sharpness: top Hessian eigenvalues, and the preconditioned sharpness of adaptive optimizers.

- ``top_eigenvalues``: λ_1 ≥ … ≥ λ_k of the loss Hessian (or Gauss–Newton matrix) by Lanczos or
  power iteration. λ_1 is the *sharpness* that gradient descent keeps at 2/η at the edge of stability
  (Cohen et al., arXiv:2103.00065).
- ``preconditioned_sharpness``: λ_max(P⁻¹H), computed as λ_max(P^{-1/2} H P^{-1/2}) (same spectrum,
  symmetric), with P the optimizer's own diagonal preconditioner read from its state:
  Adam/AdamW P = diag(√v̂ + ε), v̂ = v/(1 − β2^t) (``max_exp_avg_sq`` under amsgrad);
  RMSprop P = diag(√v + ε) (√(v − ḡ²) + ε when centered). Adam's threshold is
  (2 + 2β1)/((1 − β1)η) = 38/η at β1 = 0.9 (Cohen et al., "Adaptive Gradient Methods at the Edge
  of Stability", arXiv:2207.14484). The momentum bias correction 1/(1 − β1^t) is not folded into P
  (it tends to 1 after ~50 steps); weight decay is ignored.
- ``stability_threshold(optimizer)``: the threshold that applies to an optimizer, read from its
  class and hyperparameters (see ``stability``).

State lookup works with torch optimizers (``state[p]["exp_avg_sq"]``) and with optimlab's chain
optimizers, whose keys are namespaced ``"<transform>.<key>"`` (``state[p]["adam.exp_avg_sq"]``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .data import DataInfo, LossFn
from .lanczos import EigenResult, lanczos, power_iteration
from .operators import HessianOperator, PreconditionedOperator, make_operator
from .stability import adam_threshold, gd_threshold, momentum_threshold

SECOND_MOMENT_KEYS = ("exp_avg_sq", "square_avg")


def top_eigenvalues(model: nn.Module, loss_fn: LossFn, data: Any, k: int = 1, *, method: str = "lanczos",
                    tol: float = 1e-3, max_iters: int | None = None, seed: int | None = 0,
                    v0: torch.Tensor | None = None, operator: str = "hessian",
                    **operator_kwargs: Any) -> EigenResult:
    """Top-``k`` eigenvalues and unit eigenvectors of the loss Hessian of ``model`` on ``data``.

    method: "lanczos" (default; full reorthogonalization, stops when the residual is ≤ tol·|λ|)
    or "power" (deflated power iteration; largest magnitude; stops on relative change ≤ tol).
    operator: "hessian" or "ggn" (Gauss–Newton; needs ``supervised_loss``). Operator options:
    ``params``, ``bn``, ``dropout``, ``max_batches``, ``cache_graph`` (see ``HessianOperator``).
    Returns an ``EigenResult`` (eigenvalues in loss/parameter², num_hvps, seconds, data used).
    """
    if method not in ("lanczos", "power"):
        raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}")
    op = make_operator(model, loss_fn, data, operator, **operator_kwargs)
    if method == "power":
        return power_iteration(op, k, tol=tol, max_iters=max_iters or 100, v0=v0, seed=seed, data=op.data_info)
    return lanczos(op, k, tol=tol, max_iters=max_iters, v0=v0, seed=seed, data=op.data_info)


def _lookup(state: dict, name: str, prefer: str = "") -> tuple[str, Any] | None:
    """The entry of ``state`` whose key is ``name`` or ends with ``"." + name`` (``prefer`` + name first)."""
    if prefer and prefer + name in state:
        return prefer + name, state[prefer + name]
    matches = [key for key in state if isinstance(key, str) and (key == name or key.endswith("." + name))]
    if len(matches) > 1:
        raise ValueError(f"ambiguous optimizer state: several keys match {name!r}: {matches}")
    return (matches[0], state[matches[0]]) if matches else None


def find_second_moment(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> tuple[str, torch.Tensor]:
    """The second-moment tensor of ``param`` in ``optimizer.state``, and its key.

    Accepts a key equal to ``exp_avg_sq`` or ``square_avg``, or ending in ``.exp_avg_sq`` /
    ``.square_avg`` (optimlab's namespaced transform state). Raises ValueError naming the optimizer
    class and the keys it found when there is none.
    """
    state = optimizer.state.get(param, {})
    for name in SECOND_MOMENT_KEYS:
        hit = _lookup(state, name)
        if hit is not None and isinstance(hit[1], torch.Tensor):
            return hit[0], hit[1]
    raise ValueError(f"{type(optimizer).__name__}: no second-moment state ('exp_avg_sq', 'square_avg' or "
                     f"'<transform>.exp_avg_sq' / '<transform>.square_avg') for a parameter of shape "
                     f"{tuple(param.shape)}; keys found: {sorted(map(str, state))}"
                     + ("" if state else " (has the optimizer taken a step?)"))


def _group_of(optimizer: torch.optim.Optimizer) -> dict[int, dict]:
    return {id(p): g for g in optimizer.param_groups for p in g["params"]}


def _hyper(optimizer: torch.optim.Optimizer, group: dict, key: str) -> Any:
    if key not in group:
        raise ValueError(f"{type(optimizer).__name__}: param group has no {key!r} (keys: {sorted(group)})")
    return group[key]


def optimizer_preconditioner(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> tuple[torch.Tensor, str]:
    """Flat diagonal P of the optimizer's update P⁻¹·(…), for ``params``, and a description."""
    groups = _group_of(optimizer)
    parts, kinds = [], set()
    for p in params:
        if id(p) not in groups:
            raise ValueError(f"{type(optimizer).__name__} does not hold a parameter of shape {tuple(p.shape)}")
        group, state = groups[id(p)], optimizer.state.get(p, {})
        key, v = find_second_moment(optimizer, p)
        prefix = key[: -len(key.split(".")[-1])]
        eps = float(_hyper(optimizer, group, "eps"))
        if key.endswith("exp_avg_sq"):
            # AMSGrad's running max exists only when AMSGrad is on (torch and optimlab alike).
            hit = _lookup(state, "max_exp_avg_sq", prefix)
            v = hit[1] if hit is not None else v
            beta2 = float(_hyper(optimizer, group, "betas")[1])
            step_hit = _lookup(state, "step", prefix)
            if step_hit is None:
                raise ValueError(f"{type(optimizer).__name__}: no 'step' in the state (keys: {sorted(map(str, state))})")
            step = float(step_hit[1])
            correction = 1.0 - beta2 ** step if step > 0 else 1.0
            P = (v.detach().double() / correction).sqrt() + eps
            kinds.add("adam: sqrt(v/(1-beta2^t)) + eps")
        else:
            v = v.detach().double()
            if group.get("centered"):
                hit = _lookup(state, "grad_avg", prefix)
                if hit is not None:
                    v = v - hit[1].detach().double() ** 2
            P = v.clamp_min(0).sqrt() + eps
            kinds.add("rmsprop: sqrt(v) + eps")
        parts.append(P.reshape(-1))
    return torch.cat(parts), "; ".join(sorted(kinds))


@dataclass
class StabilityThreshold:
    """The threshold that applies to an optimizer: ``value`` (loss/parameter²) for ``quantity``."""

    value: float
    quantity: str  # "sharpness" (λ_max(H)) or "preconditioned sharpness" (λ_max(P⁻¹H))
    formula: str


def _single(optimizer: torch.optim.Optimizer, key: str, default: Any = None) -> Any:
    values = {repr(g.get(key, default)) for g in optimizer.param_groups}
    if len(values) > 1:
        raise ValueError(f"{type(optimizer).__name__}: param groups disagree on {key!r} ({sorted(values)}); "
                         "one threshold needs one value")
    return optimizer.param_groups[0].get(key, default)


def stability_threshold(optimizer: torch.optim.Optimizer) -> StabilityThreshold:
    """Linear-stability threshold for ``optimizer`` with its current hyperparameters.

    torch SGD: 2/η, (2+2β)/((1−τ)η) with momentum, (2+2β)/((1+2β)η) with Nesterov (on λ_max(H)).
    Adam/AdamW, or any optimizer whose groups have ``betas`` and whose state has an
    ``exp_avg_sq``-type key: (2+2β1)/((1−β1)η) on λ_max(P⁻¹H). RMSprop: 2/η, or (2+2β)/η with
    momentum β, on λ_max(P⁻¹H). Anything else raises ValueError (pass a threshold yourself).
    """
    name = type(optimizer).__name__
    lr = float(_single(optimizer, "lr"))
    if isinstance(optimizer, torch.optim.SGD) or getattr(optimizer, "name", None) == "sgd":  # optimlab's sgd
        beta = float(_single(optimizer, "momentum", 0.0))
        if beta == 0:
            return StabilityThreshold(gd_threshold(lr), "sharpness", "2/lr")
        nesterov = bool(_single(optimizer, "nesterov", False))
        tau = float(_single(optimizer, "dampening", 0.0))
        formula = "(2+2*momentum)/((1+2*momentum)*lr)" if nesterov else "(2+2*momentum)/((1-dampening)*lr)"
        return StabilityThreshold(momentum_threshold(lr, beta, nesterov=nesterov, dampening=tau), "sharpness", formula)
    has_state = any(_lookup(s, "exp_avg_sq") is not None for s in optimizer.state.values())
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)) or ("betas" in optimizer.param_groups[0] and has_state):
        beta1 = float(_single(optimizer, "betas")[0])
        return StabilityThreshold(adam_threshold(lr, beta1), "preconditioned sharpness", "(2+2*beta1)/((1-beta1)*lr)")
    if isinstance(optimizer, torch.optim.RMSprop):
        beta = float(_single(optimizer, "momentum", 0.0))
        if beta == 0:
            return StabilityThreshold(gd_threshold(lr), "preconditioned sharpness", "2/lr")
        return StabilityThreshold(momentum_threshold(lr, beta), "preconditioned sharpness", "(2+2*momentum)/lr")
    raise ValueError(f"cannot infer a stability threshold for {name} (known: SGD, Adam, AdamW, RMSprop and "
                     "Adam-type optimizers with 'betas' and an exp_avg_sq state); pass one explicitly")


@dataclass
class PreconditionedSharpness:
    """λ_max(P⁻¹H) with P frozen from the optimizer's state, and the threshold it is compared to.

    value, eigenvalues: λ(P⁻¹H), in units of 1/η (η·λ is dimensionless), like ``threshold``
    (None when it cannot be inferred). ratio = value / threshold.
    """

    value: float
    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor | None
    threshold: float | None
    ratio: float | None
    preconditioner: str
    num_hvps: int
    seconds: float
    converged: bool
    data: DataInfo | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "eigenvalues": self.eigenvalues.tolist(), "threshold": self.threshold,
                "ratio": self.ratio, "preconditioner": self.preconditioner, "num_hvps": self.num_hvps,
                "seconds": self.seconds, "converged": self.converged,
                "num_batches": getattr(self.data, "num_batches", None),
                "num_examples": getattr(self.data, "num_examples", None)}


def preconditioned_sharpness(optimizer: torch.optim.Optimizer, model: nn.Module, loss_fn: LossFn, data: Any, *,
                             k: int = 1, tol: float = 1e-3, max_iters: int | None = None, seed: int | None = 0,
                             v0: torch.Tensor | None = None, params: list[torch.Tensor] | None = None,
                             **operator_kwargs: Any) -> PreconditionedSharpness:
    """λ_max(P⁻¹H) for Adam/AdamW/RMSprop-type optimizers (torch's or optimlab's), by Lanczos.

    P is read from ``optimizer``'s state now (call after at least one step). ``params`` defaults to
    the model's trainable parameters; each needs a second-moment state. The eigenvectors returned
    are those of P^{-1/2}HP^{-1/2}. Threshold: ``stability_threshold(optimizer)`` when it applies.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    start_time = time.perf_counter()
    base = HessianOperator(model, loss_fn, data, params=params, **operator_kwargs)
    P, kind = optimizer_preconditioner(optimizer, base.params)
    op = PreconditionedOperator(base, P.to(base.dtype))
    result = lanczos(op, k, tol=tol, max_iters=max_iters, v0=v0, seed=seed, data=base.data_info)
    try:
        threshold = stability_threshold(optimizer)
        value = threshold.value if threshold.quantity == "preconditioned sharpness" else None
    except ValueError:
        value = None
    return PreconditionedSharpness(result.value, result.eigenvalues, result.eigenvectors, value,
                                   result.value / value if value else None, kind, result.num_hvps,
                                   time.perf_counter() - start_time, result.converged, base.data_info)
