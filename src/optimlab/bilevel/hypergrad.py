"""Hypergradients of a bilevel problem: min_x f(x, y*(x)),  y*(x) = argmin_y g(x, y).

Both levels are given as callables on lists of tensors: ``inner_loss(x, y)`` (g) and ``outer_loss(x, y)``
(f), with ``x`` the outer (hyper)parameters and ``y`` the inner parameters. The estimators return the
hypergradient as a list shaped like ``x`` (``write_hypergrad`` puts it in ``x[i].grad`` so any optimizer
steps on the outer parameters):

- ``unrolled_hypergradient``: T inner gradient steps y ← y − α∇_y g, differentiated through; with
  ``truncate=K`` only the last K steps keep their graph (the state before step T−K is detached):
  truncated back-propagation (Shaban et al., "Truncated Back-propagation for Bilevel Optimization",
  AISTATS 2019, arXiv:1810.10667).
- ``ift_hypergradient``: implicit function theorem at the given y ≈ y*, with the inverse Hessian
  replaced by a Neumann series of K Hessian-vector products: p = α Σ_{j=0}^{K} (I − αH)^j ∇_y f,
  hypergradient = ∇_x f − (∂²g/∂x∂y)ᵀ p (Lorraine, Vicol, Duvenaud, "Optimizing Millions of
  Hyperparameters by Implicit Differentiation", AISTATS 2020, arXiv:1911.02590).
- ``dense_hypergradient``: the exact IFT hypergradient with the dense inner Hessian (small problems; the
  test oracle).

Errors name the problem: empty or non-tensor parameter lists, a loss that is not a scalar, a level that does
not depend on its parameters, a singular inner Hessian for the dense solve.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["Loss", "unrolled_hypergradient", "ift_hypergradient", "dense_hypergradient", "write_hypergrad",
           "inner_gd"]

Loss = Callable[[Sequence[Tensor], Sequence[Tensor]], Tensor]


def _plist(ts: Sequence[Tensor] | Tensor, what: str) -> list[Tensor]:
    if isinstance(ts, Tensor):
        ts = [ts]
    ts = list(ts)
    if not ts:
        raise ValueError(f"bilevel: the {what} parameter list is empty")
    for i, t in enumerate(ts):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise TypeError(f"bilevel: {what} parameter {i} must be a floating-point tensor, got "
                            f"{type(t).__name__}")
    return ts


def _scalar(v: Tensor, what: str) -> Tensor:
    if not isinstance(v, Tensor) or v.numel() != 1:
        raise ValueError(f"bilevel: the {what} loss must return a scalar tensor, got "
                         f"{tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}")
    return v.reshape(())


def _grad(loss: Tensor, wrt: list[Tensor], what: str, *, create_graph: bool = False,
          retain_graph: bool | None = None, allow_unused: bool = False) -> list[Tensor]:
    if not loss.requires_grad:
        if allow_unused:
            return [torch.zeros_like(w) for w in wrt]
        raise ValueError(f"bilevel: the {what} does not depend on its parameters (no graph)")
    gs = torch.autograd.grad(loss, wrt, create_graph=create_graph, retain_graph=retain_graph, allow_unused=True)
    out = []
    for i, (g, w) in enumerate(zip(gs, wrt)):
        if g is None:
            if not allow_unused:
                raise ValueError(f"bilevel: the {what} does not depend on parameter {i} (shape {tuple(w.shape)})")
            g = torch.zeros_like(w)
        out.append(g)
    return out


def _detached(ts: Sequence[Tensor], requires_grad: bool = True) -> list[Tensor]:
    return [t.detach().clone().requires_grad_(requires_grad) for t in ts]


def inner_gd(inner_loss: Loss, x: Sequence[Tensor], y0: Sequence[Tensor], steps: int, lr: float) -> list[Tensor]:
    """``steps`` plain gradient steps on g(x, ·) from y0 (no graph kept). Returns the new y (leaf tensors)."""
    x = _detached(_plist(x, "outer"), False)
    y = _detached(_plist(y0, "inner"))
    for _ in range(steps):
        g = _grad(_scalar(inner_loss(x, y), "inner"), y, "inner loss")
        y = [(yi - lr * gi).detach().requires_grad_(True) for yi, gi in zip(y, g)]
    return y


def unrolled_hypergradient(inner_loss: Loss, outer_loss: Loss, x: Sequence[Tensor], y0: Sequence[Tensor], *,
                           steps: int, lr: float, truncate: int | None = None) -> tuple[list[Tensor], list[Tensor]]:
    """(d f(x, y_T(x)) / dx, y_T) through T = ``steps`` inner GD steps; only the last ``truncate`` steps
    (default: all) are differentiated (the earlier ones are detached)."""
    x, y0 = _plist(x, "outer"), _plist(y0, "inner")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"bilevel: steps must be an int >= 1, got {steps!r}")
    K = steps if truncate is None else truncate
    if not isinstance(K, int) or not 1 <= K <= steps:
        raise ValueError(f"bilevel: truncate must be an int in [1, steps={steps}], got {truncate!r}")
    xs = _detached(x)
    y = inner_gd(inner_loss, xs, y0, steps - K, lr) if K < steps else _detached(y0)
    for _ in range(K):
        g = _grad(_scalar(inner_loss(xs, y), "inner"), y, "inner loss", create_graph=True)
        y = [yi - lr * gi for yi, gi in zip(y, g)]
    f = _scalar(outer_loss(xs, y), "outer")
    hg = _grad(f, xs, "outer loss (through the unrolled inner steps)", allow_unused=True)
    return [h.detach() for h in hg], [yi.detach() for yi in y]


def ift_hypergradient(inner_loss: Loss, outer_loss: Loss, x: Sequence[Tensor], y: Sequence[Tensor], *,
                      terms: int = 20, alpha: float = 0.01) -> list[Tensor]:
    """Implicit-function hypergradient at y (≈ y*) with a ``terms``-term Neumann series (step ``alpha``)
    for H⁻¹∇_y f. Costs ``terms`` Hessian-vector products and one mixed product. The series converges
    when 0 < alpha < 2/λ_max(H)."""
    xs, ys = _detached(_plist(x, "outer")), _detached(_plist(y, "inner"))
    if not isinstance(terms, int) or terms < 0:
        raise ValueError(f"bilevel: terms must be an int >= 0, got {terms!r}")
    f = _scalar(outer_loss(xs, ys), "outer")
    v = _grad(f, ys, "outer loss", retain_graph=True, allow_unused=True)
    fx = _grad(f, xs, "outer loss", allow_unused=True)
    gy = _grad(_scalar(inner_loss(xs, ys), "inner"), ys, "inner loss", create_graph=True)
    p = [vi.clone() for vi in v]
    cur = [vi.clone() for vi in v]
    for _ in range(terms):
        hv = torch.autograd.grad(gy, ys, grad_outputs=cur, retain_graph=True, allow_unused=True)
        cur = [c - alpha * (h if h is not None else torch.zeros_like(c)) for c, h in zip(cur, hv)]
        p = [pi + ci for pi, ci in zip(p, cur)]
    mixed = _grad(sum((gi * (alpha * pi)).sum() for gi, pi in zip(gy, p)), xs, "inner gradient's x-dependence",
                  allow_unused=True)
    return [a - b for a, b in zip(fx, mixed)]


def _flat(ts: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


def dense_hypergradient(inner_loss: Loss, outer_loss: Loss, x: Sequence[Tensor], y: Sequence[Tensor]) -> list[Tensor]:
    """Exact IFT hypergradient ∇_x f − (∂²g/∂x∂y) H_yy⁻¹ ∇_y f with the dense Hessian (small problems)."""
    xs, ys = _detached(_plist(x, "outer")), _detached(_plist(y, "inner"))
    f = _scalar(outer_loss(xs, ys), "outer")
    v = _flat(_grad(f, ys, "outer loss", retain_graph=True, allow_unused=True))
    fx = _flat(_grad(f, xs, "outer loss", allow_unused=True))
    gy = _flat(_grad(_scalar(inner_loss(xs, ys), "inner"), ys, "inner loss", create_graph=True))
    ny = gy.numel()
    eye = torch.eye(ny, dtype=gy.dtype)
    rows_y, rows_x = [], []
    for k in range(ny):  # row k of H_yy and of ∂(∇_y g)_k/∂x
        gk = torch.autograd.grad(gy, ys + xs, grad_outputs=eye[k], retain_graph=True, allow_unused=True)
        gk = [g if g is not None else torch.zeros_like(t) for g, t in zip(gk, ys + xs)]
        rows_y.append(_flat(gk[: len(ys)]))
        rows_x.append(_flat(gk[len(ys):]))
    H, M = torch.stack(rows_y), torch.stack(rows_x)  # H [ny, ny], M [ny, nx]
    try:
        p = torch.linalg.solve(H, v)
    except RuntimeError as e:
        raise ValueError(f"bilevel: the inner Hessian is singular ({e}); the IFT hypergradient is undefined") from e
    hg = fx - M.T @ p
    out, off = [], 0
    for t in xs:
        out.append(hg[off:off + t.numel()].view_as(t))
        off += t.numel()
    return out


def write_hypergrad(x: Sequence[Tensor], hypergrad: Sequence[Tensor]) -> None:
    """Set ``x[i].grad`` to the hypergradient (replacing it), so an optimizer over x can ``step()``."""
    for xi, hi in zip(_plist(x, "outer"), hypergrad):
        if hi.shape != xi.shape:
            raise ValueError(f"bilevel: hypergradient of shape {tuple(hi.shape)} for a parameter of shape "
                             f"{tuple(xi.shape)}")
        xi.grad = hi.detach().to(xi.dtype).clone()
