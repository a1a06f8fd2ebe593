"""Per-sample output Jacobians (torch.func) and the exact Gauss–Newton / Levenberg–Marquardt direction of EGN.

For a mean loss ``L = (1/b) Σᵢ ℓ(fᵢ(θ), yᵢ)`` with outputs ``fᵢ ∈ Rᶜ``: ``J`` (bc × d) stacks the per-sample
output Jacobians, ``r`` (bc) the per-sample output gradients ∂ℓ/∂fᵢ and ``Q`` (bc × bc, block diagonal) the
output Hessians ∂²ℓ/∂fᵢ². Then ``∇L = (1/b)Jᵀr`` and the generalised Gauss–Newton matrix is ``G = (1/b)JᵀQJ``.
The damped GN (Levenberg–Marquardt) direction, by the Duncan–Guttman (push-through) identity

    −(G + λI)⁻¹∇L = −(JᵀQJ + bλI)⁻¹Jᵀr = −Jᵀ(QJJᵀ + bλI)⁻¹r,

needs one (bc) × (bc) solve instead of a d × d one: Korbit, Adeoye, Bemporad, Zanon, "Exact Gauss-Newton
Optimization for Training Deep Neural Networks", arXiv:2405.14402 (EGN). All in float64.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["per_sample_jacobian", "output_derivatives", "egn_direction", "dense_gn_direction", "egn_step"]

LOSSES = ("mse", "cross_entropy")


def per_sample_jacobian(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(outputs, J)``: the model's outputs (b × c) and the Jacobian of every output entry with respect to all
    trainable parameters, flattened in ``model.parameters()`` order, as a (b·c) × d matrix (torch.func:
    vmap of jacrev over the batch)."""
    from torch.func import functional_call, jacrev, vmap

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}

    def f(ps: dict[str, Tensor], xi: Tensor) -> Tensor:
        return functional_call(model, ps, (xi.unsqueeze(0),)).squeeze(0)

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    with torch.no_grad():
        out = functional_call(model, params, (x,))
    b, c = out.shape
    J = torch.cat([jac[n].reshape(b * c, -1) for n in names], dim=1)
    return out, J


def output_derivatives(loss: str, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """``(r, Q)`` for the per-sample loss ℓ: ``"mse"`` ℓ = ½‖f − y‖² (r = f − y, Q = I) or ``"cross_entropy"``
    (r = softmax(f) − onehot(y), Qᵢ = diag(p) − ppᵀ); r flattened to b·c, Q block diagonal (b·c) × (b·c)."""
    f = outputs.to(torch.float64)
    b, c = f.shape
    if loss == "mse":
        return (f - targets.to(torch.float64).reshape(b, c)).reshape(-1), torch.eye(b * c, dtype=torch.float64)
    if loss == "cross_entropy":
        p = torch.softmax(f, dim=1)
        r = p - torch.nn.functional.one_hot(targets, c).to(torch.float64)
        blocks = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
        return r.reshape(-1), torch.block_diag(*blocks)
    raise ValueError(f"output_derivatives: loss must be one of {LOSSES}, got {loss!r}")


def egn_direction(J: Tensor, Q: Tensor, r: Tensor, damp: float, batch: int) -> Tensor:
    """``−Jᵀ(QJJᵀ + bλI)⁻¹r`` (float64): the LM direction of the mean loss, via a (bc) × (bc) solve."""
    J64 = J.to(torch.float64)
    n = J64.shape[0]
    A = Q.to(torch.float64) @ (J64 @ J64.T) + batch * damp * torch.eye(n, dtype=torch.float64)
    return -(J64.T @ torch.linalg.solve(A, r.to(torch.float64)))


def dense_gn_direction(J: Tensor, Q: Tensor, r: Tensor, damp: float, batch: int) -> Tensor:
    """The oracle: ``−((1/b)JᵀQJ + λI)⁻¹(1/b)Jᵀr`` by a dense d × d solve (float64)."""
    J64 = J.to(torch.float64)
    d = J64.shape[1]
    G = J64.T @ Q.to(torch.float64) @ J64 / batch + damp * torch.eye(d, dtype=torch.float64)
    return -torch.linalg.solve(G, J64.T @ r.to(torch.float64) / batch)


def egn_step(model: nn.Module, loss: str, x: Tensor, y: Tensor, loss_fn: Callable[[], Tensor], *, damp: float,
             lr_max: float = 1.0, shrink: float = 0.5, c1: float = 1e-4, max_backtracks: int = 20) -> dict:
    """One EGN iteration on the batch (x, y): direction :func:`egn_direction`, then an Armijo backtracking line
    search from ``lr_max`` on ``loss_fn()`` (the batch loss at the current parameters); the parameters are
    moved in place. Returns the accepted step, the loss before/after and whether Armijo held (the LM damping
    update is the caller's, e.g. λ ← λ/2 on success, 2λ on failure, as in the paper's adaptive scheme)."""
    out, J = per_sample_jacobian(model, x)
    r, Q = output_derivatives(loss, out, y)
    b = x.shape[0]
    d = egn_direction(J, Q, r, damp, b)
    g = J.to(torch.float64).T @ r / b
    params = [p for p in model.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    with torch.no_grad():
        f0 = float(loss_fn())
        slope = float(g @ d)
        step = lr_max
        for _ in range(max_backtracks):
            i = 0
            for p, s in zip(params, start):
                p.copy_(s + step * d[i:i + p.numel()].view_as(p).to(p.dtype))
                i += p.numel()
            f1 = float(loss_fn())
            if f1 <= f0 + c1 * step * slope:
                return {"step": step, "loss_before": f0, "loss_after": f1, "armijo": True}
            step *= shrink
        for p, s in zip(params, start):
            p.copy_(s)
    return {"step": 0.0, "loss_before": f0, "loss_after": f0, "armijo": False}
