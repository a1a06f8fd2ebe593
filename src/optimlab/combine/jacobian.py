"""Per-loss gradients over all parameters, flattened into one Jacobian, and written back to ``.grad``.

``jacobian(losses, params)`` takes one ``torch.autograd.grad`` per loss (the graph is kept until the last)
and returns ``J`` of shape ``[m, n]`` (m losses, n = total number of parameter elements), in fp64 or the
parameters' dtype. ``per_sample_jacobian`` gives one row per example with ``torch.func`` (vmap of grad).
``write_grad(d, params)`` adds the combined direction to ``.grad`` exactly as ``backward()`` would, so any
optimizer's unchanged ``step()`` follows.

Bad input raises a ``ValueError``/``TypeError`` that names the problem: an empty loss list, a loss that is
not a scalar, a loss that does not require grad, a parameter that a loss does not depend on (unless
``allow_unused=True``, which treats its gradient as zero), non-finite gradients.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["jacobian", "per_sample_jacobian", "write_grad", "as_params", "check_losses"]


def as_params(params: nn.Module | Sequence[Tensor] | Tensor, where: str = "combine") -> tuple[list[Tensor], list[str]]:
    """(trainable parameters, their names) from a module or a sequence of tensors."""
    if isinstance(params, nn.Module):
        named = [(n, p) for n, p in params.named_parameters() if p.requires_grad]
    else:
        if isinstance(params, Tensor):
            params = [params]
        try:
            items = list(params)
        except TypeError:
            raise TypeError(f"{where}: params must be a module or a sequence of tensors, got "
                            f"{type(params).__name__}") from None
        named = []
        for i, p in enumerate(items):
            if not isinstance(p, Tensor):
                raise TypeError(f"{where}: parameter {i} is a {type(p).__name__}, not a tensor")
            if not p.requires_grad:
                raise ValueError(f"{where}: parameter {i} (shape {tuple(p.shape)}) does not require grad")
            named.append((f"param {i} {tuple(p.shape)}", p))
    if not named:
        raise ValueError(f"{where}: no trainable parameters given")
    return [p for _, p in named], [n for n, _ in named]


def check_losses(losses: Sequence[Tensor] | Tensor, where: str = "combine") -> list[Tensor]:
    """The losses as a list of scalar tensors that require grad; ValueError naming the first bad one."""
    if isinstance(losses, Tensor):
        if losses.dim() != 1:
            raise ValueError(f"{where}: a tensor of losses must be 1-D (one loss per entry), got shape "
                             f"{tuple(losses.shape)}")
        losses = list(losses.unbind())
    losses = list(losses)
    if not losses:
        raise ValueError(f"{where}: the list of losses is empty; give at least one scalar loss")
    for i, loss in enumerate(losses):
        if not isinstance(loss, Tensor):
            raise TypeError(f"{where}: loss {i} is a {type(loss).__name__}, not a tensor")
        if loss.numel() != 1 or loss.dim() > 1:
            raise ValueError(f"{where}: loss {i} has shape {tuple(loss.shape)}; each loss must be a scalar "
                             f"(reduce it, e.g. .mean(), or pass a 1-D tensor for one loss per example)")
        if not loss.requires_grad:
            raise ValueError(f"{where}: loss {i} does not require grad (computed under no_grad, or from "
                             f"detached tensors)")
    return [loss.reshape(()) for loss in losses]


def jacobian(losses: Sequence[Tensor] | Tensor, params: nn.Module | Sequence[Tensor], *,
             allow_unused: bool = False, dtype: torch.dtype | None = None, where: str = "combine") -> Tensor:
    """J[i] = flattened ∇_params losses[i], shape [m, n]; dtype default: the parameters' (fp64 if mixed)."""
    losses = check_losses(losses, where)
    plist, names = as_params(params, where)
    if dtype is None:
        dtypes = {p.dtype for p in plist}
        dtype = dtypes.pop() if len(dtypes) == 1 else torch.float64
    n = sum(p.numel() for p in plist)
    J = torch.zeros(len(losses), n, dtype=dtype, device=plist[0].device)
    for i, loss in enumerate(losses):
        grads = torch.autograd.grad(loss, plist, retain_graph=i < len(losses) - 1, allow_unused=True)
        off = 0
        for p, g, name in zip(plist, grads, names):
            if g is None:
                if not allow_unused:
                    raise ValueError(f"{where}: loss {i} does not depend on parameter {name!r}; pass "
                                     f"allow_unused=True to treat its gradient as zero, or leave the "
                                     f"parameter out")
            else:
                J[i, off:off + p.numel()] = g.reshape(-1).to(dtype)
            off += p.numel()
    if not torch.isfinite(J).all():
        bad = [i for i in range(len(losses)) if not torch.isfinite(J[i]).all()]
        raise ValueError(f"{where}: the gradient of loss(es) {bad} is not finite")
    return J


def per_sample_jacobian(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], inputs: Tensor,
                        targets: Tensor, *, where: str = "combine") -> tuple[Tensor, Tensor]:
    """(J [batch, n], per-example losses [batch]) via torch.func (vmap of grad over the batch).

    ``loss_fn(output, target)`` gets one example's output (batch dimension of size 1) and target and must
    return a scalar. Parameters are those of ``model`` that require grad, in ``named_parameters`` order.
    """
    from torch.func import functional_call, grad_and_value, vmap

    plist, names = as_params(model, where)
    if inputs.shape[0] != targets.shape[0] or inputs.shape[0] == 0:
        raise ValueError(f"{where}: inputs and targets need the same non-zero batch size, got "
                         f"{inputs.shape[0]} and {targets.shape[0]}")
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def one(ps: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        out = functional_call(model, (ps, buffers), (x.unsqueeze(0),))
        loss = loss_fn(out, y.unsqueeze(0))
        if loss.numel() != 1:
            raise ValueError(f"{where}: loss_fn must return a scalar per example, got shape {tuple(loss.shape)}")
        return loss.reshape(())

    grads, values = vmap(grad_and_value(one), in_dims=(None, 0, 0))(params, inputs, targets)
    J = torch.cat([grads[n].reshape(inputs.shape[0], -1) for n in params], dim=1)
    return J, values


def write_grad(direction: Tensor, params: nn.Module | Sequence[Tensor], where: str = "combine") -> None:
    """Add the flat ``direction`` into each parameter's ``.grad`` (like ``backward()``: accumulates)."""
    plist, _ = as_params(params, where)
    n = sum(p.numel() for p in plist)
    if direction.shape != (n,):
        raise ValueError(f"{where}: direction has shape {tuple(direction.shape)}, parameters have {n} elements")
    off = 0
    for p in plist:
        g = direction[off:off + p.numel()].view_as(p).to(p.dtype)
        off += p.numel()
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.add_(g)
