"""Zeroth-order gradient estimates, MeZO-style: seeded directions, in-place perturbation, exact restore.

The two-point estimate with ``q`` Gaussian directions (the ZO-GD/GDM/Adam paper, arXiv:2604.14669; MeZO,
Malladi et al., arXiv:2305.17333, for the memory-saving form)::

    ĝ = (1/q) Σ_j  (f(x + μ z_j) − f(x − μ z_j)) / (2μ) · z_j,      z_j ~ N(0, I)

Memory is that of inference: no ``.grad``, no graph, no stored direction. Each direction ``z_j`` is
regenerated when needed from a seed (``seed``, the step count, ``j``, the parameter's index, the chunk),
one chunk of :data:`CHUNK` elements at a time, so the temporaries are a few chunks whatever the model.
The parameters are perturbed in place and **restored bit-identically**: ``fl(fl(x + d) − d)`` differs
from ``x`` where rounding lost information (a few % of the entries at μ = 1e-3), so while perturbing we
record, per chunk, the positions where the arithmetic restore would miss (a bit mask: 1 bit per entry) and
by how many units in the last place (int8; the original values of the few where that does not fit), and apply them
after the restore: about 0.2 bytes per fp32 parameter at μ = 1e-3 (tests/optimizers/test_zeroth_order_memory.py).

:func:`direction` is the same stream as a full tensor, for references and tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from ..core.hparams import HParam
from ..core.transform import Bucket, Transform

__all__ = ["CHUNK", "direction", "trainable", "ZOEstimate", "ZODescend", "ZO_HPARAMS"]

CHUNK = 1 << 14  # elements per regenerated piece of a direction (64 KiB of fp32)
_M64 = (1 << 64) - 1

ZO_HPARAMS = {
    "mu": HParam("float", 1e-3, "smoothing radius μ of the two-point estimate (parameter units)", low=0.0,
                 low_open=True),
    "q": HParam("int", 1, "random directions per step (2q function evaluations)", low=1, high=4096),
    "seed": HParam("int", 0, "seed of the directions (with the step count: resumable, nothing stored)", low=0,
                   high=2**31 - 1),
}


def _mix(*keys: int) -> int:
    """splitmix64 over the keys: a 63-bit generator seed per (seed, step, direction, parameter, chunk)."""
    h = 0x9E3779B97F4A7C15
    for k in keys:
        h = (h ^ (k & _M64)) * 0xBF58476D1CE4E5B9 & _M64
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & _M64
        h ^= h >> 29
    return h >> 1


def _chunk_z(p: Tensor, key: int, n: int) -> Tensor:
    g = torch.Generator(device=p.device)
    g.manual_seed(key)
    work = p.dtype if p.dtype in (torch.float32, torch.float64) else torch.float32
    return torch.randn(n, generator=g, device=p.device, dtype=work).to(p.dtype)


def _chunks(p: Tensor) -> Iterator[tuple[int, Tensor]]:
    v = p.detach().view(-1)
    for c in range(0, max(1, math.ceil(v.numel() / CHUNK))):
        yield c, v[c * CHUNK:(c + 1) * CHUNK]


def direction(p: Tensor, seed: int, step: int, j: int, i: int) -> Tensor:
    """Direction ``z_j`` of step ``step`` for parameter ``i`` (its position in the optimizer's param groups, in
    order), as a full tensor shaped like ``p``."""
    return torch.cat([_chunk_z(p, _mix(seed, step, j, i, c), v.numel()) for c, v in _chunks(p)]).view_as(p)


def trainable(ctx: Any) -> list[Tensor]:
    """The parameters a value-only recipe perturbs and steps: those of the optimizer that require grad,
    in param-group order (their position indexes the directions)."""
    return [p for p in ctx.params if p.requires_grad]


def _check_contiguous(name: str, params: Sequence[Tensor]) -> None:
    for p in params:
        if not p.is_contiguous():
            raise ValueError(f"{name}: zeroth-order methods perturb parameters in place through a flat view; "
                             f"a parameter of shape {tuple(p.shape)} is not contiguous")


_INT_VIEW = {torch.float32: torch.int32, torch.float64: torch.int64, torch.bfloat16: torch.int16,
             torch.float16: torch.int16}
_SHIFTS: dict[torch.device, Tensor] = {}


def _pack(mask: Tensor) -> Tensor:
    """A bool vector as bits (uint8, 8 per byte)."""
    n = mask.numel()
    m = torch.nn.functional.pad(mask.to(torch.uint8), (0, -n % 8)).view(-1, 8)
    return (m << _shifts(mask.device)).sum(1).to(torch.uint8)


def _unpack(packed: Tensor, n: int) -> Tensor:
    return ((packed.unsqueeze(1) >> _shifts(packed.device)) & 1).view(-1)[:n].bool()


def _shifts(device: torch.device) -> Tensor:
    if device not in _SHIFTS:
        _SHIFTS[device] = torch.arange(8, dtype=torch.uint8, device=device)
    return _SHIFTS[device]


def _record(v: Tensor, back: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
    """What it takes to turn ``back`` (the arithmetic restore) into ``v`` exactly: the positions that differ
    as a bit mask; per position the difference in units in the last place (int8: almost always ±1), with
    −128 marking the few that do not fit (tiny entries, sign changes), whose original values are kept."""
    miss = back != v
    if not bool(miss.any()):
        return None
    ib = _INT_VIEW[v.dtype]
    orig, rest = v[miss], back[miss]
    k = orig.view(ib).to(torch.int64) - rest.view(ib).to(torch.int64)
    big = (k.abs() > 127) | (torch.signbit(orig) != torch.signbit(rest)) | orig.isnan()
    return _pack(miss), k.masked_fill(big, -128).to(torch.int8), orig[big]


def _apply_record(v: Tensor, rec: tuple[Tensor, Tensor, Tensor]) -> None:
    packed, k, big_values = rec
    miss = _unpack(packed, v.numel())
    ib = _INT_VIEW[v.dtype]
    cur = v[miss]
    big = k == -128
    fixed = (cur.view(ib).to(torch.int64) + k).to(ib).view(v.dtype)
    fixed[big] = big_values
    v[miss] = fixed


class _Perturbation:
    """Moves all parameters between ``x`` and ``x ± μ z_j`` in place, restoring ``x`` exactly."""

    def __init__(self, params: Sequence[Tensor], mu: float, keys: list[list[int]]):
        self.params, self.mu, self.keys = params, mu, keys  # keys[i][c]: the seed of chunk c of param i
        self.fix: dict[tuple[int, int], tuple[Tensor, Tensor, Tensor]] = {}
        self.sign = 0  # where the parameters are: 0 (x), +1 or −1

    def _d(self, p: Tensor, i: int, c: int, n: int) -> Tensor:
        return _chunk_z(p, self.keys[i][c], n).mul_(self.mu)

    def fixup_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for rec in self.fix.values() for t in rec)

    def move(self, sign: int) -> None:
        """From ``x`` to ``x + sign·μz`` (sign ±1) or back to ``x`` (sign 0), chunk by chunk."""
        for i, p in enumerate(self.params):
            for c, v in _chunks(p):
                d = self._d(p, i, c, v.numel())
                if self.sign:  # back to x: the arithmetic restore, then the recorded fix-ups
                    v.sub_(d, alpha=self.sign)
                    rec = self.fix.pop((i, c), None)
                    if rec is not None:
                        _apply_record(v, rec)
                if sign:
                    y = v + d if sign > 0 else v - d
                    back = torch.sub(y, d, out=d) if sign > 0 else torch.add(y, d, out=d)  # d is not needed again
                    rec = _record(v, back)
                    if rec is not None:
                        self.fix[(i, c)] = rec
                    v.copy_(y)
        self.sign = sign


def refuse_nonfinite(ctx: Any, loss: Any, values: Sequence[float], where: str) -> bool:
    """True when the loss values are usable; under ``nonfinite='skip'`` False (the step is skipped); under
    ``'error'`` a FloatingPointError naming the first non-finite parameter, if any. Parameters are at x."""
    opt = ctx.opt
    if all(math.isfinite(v) for v in values) or opt.nonfinite == "ignore":
        return True
    ctx.loss = loss
    if opt.nonfinite == "skip":
        opt.skipped_steps += 1
        ctx.skip = True
        return False
    from ..core import finite
    k = finite.first_nonfinite(ctx.params)
    param = f"; parameter {ctx._label(k)} has NaN or Inf" if k is not None else ""
    shown = ", ".join(str(v) for v in values)
    raise FloatingPointError(f"{ctx.name}: the loss at {where} is {shown}{param}; nothing was updated "
                             f"(nonfinite='error'; 'skip' skips such steps, 'ignore' checks nothing)")


def _estimate(ctx: Any, group: dict, step: int) -> dict[str, Any]:
    """The q projected derivatives (f(x+μz_j) − f(x−μz_j))/(2μ), and the step's loss (their mid-points' mean).

    Sets ``ctx.loss``; on a non-finite value restores the parameters and follows ``nonfinite=``."""
    params = trainable(ctx)
    _check_contiguous(ctx.name, params)
    mu, q, seed = group["mu"], group["q"], group["seed"]
    coeffs, mids = [], []
    for j in range(q):
        keys = [[_mix(seed, step, j, i, c) for c, _ in _chunks(p)] for i, p in enumerate(params)]
        pert = _Perturbation(params, mu, keys)
        try:
            pert.move(+1)
            f_plus = ctx.value()
            pert.move(-1)
            f_minus = ctx.value()
        finally:
            pert.move(0)
        fp, fm = float(f_plus), float(f_minus)
        if not refuse_nonfinite(ctx, f_plus, (fp, fm), "x ± μz"):
            return {"coeffs": [0.0] * q, "index": {}}
        coeffs.append((fp - fm) / (2 * mu) / q)
        mids.append((f_plus + f_minus) / 2 if isinstance(f_plus, Tensor) else torch.tensor((fp + fm) / 2))
    ctx.loss = torch.stack([torch.as_tensor(m) for m in mids]).mean()
    return {"coeffs": coeffs, "index": {id(p): i for i, p in enumerate(params)}, "step": step, "seed": seed}


class ZOEstimate(Transform):
    """The update becomes the two-point estimate ``ĝ = (1/q) Σ_j c_j z_j`` (materialised per bucket, for the
    momentum or Adam transforms that follow). Needs ``{"value"}``: the whole model is perturbed at once, in
    the pre-pass, with μ, q and seed read from the first bucket's group."""

    name = "zo"
    rule = "ĝ = (1/q) Σ_j [f(x+μz_j) − f(x−μz_j)]/(2μ) · z_j,  z_j ~ N(0, I) regenerated from a seed"
    hparams = ZO_HPARAMS

    def prepare(self, b: Bucket) -> None:
        b.ctx.shared("zo", lambda: _estimate(b.ctx, b.group, b.steps[0]))

    def _est(self, b: Bucket) -> dict[str, Any]:
        return b.ctx.shared("zo", lambda: _estimate(b.ctx, b.group, b.steps[0]))

    def update(self, b: Bucket) -> None:
        est = self._est(b)
        out = []
        for p in b.params:
            i = est["index"][id(p)]
            u = torch.zeros_like(p)
            uv = u.view(-1)
            for j, cj in enumerate(est["coeffs"]):  # chunk by chunk: no direction-sized temporary
                for c, v in _chunks(p):
                    uv[c * CHUNK:c * CHUNK + v.numel()].add_(
                        _chunk_z(p, _mix(est["seed"], est["step"], j, i, c), v.numel()), alpha=cj)
            out.append(u)
        b.set_updates(out, owned=True)


class ZODescend(ZOEstimate):
    """ZO-SGD's terminal step ``x ← x − lr·ĝ`` applied chunk by chunk in place (no full-size temporary)."""

    def update(self, b: Bucket) -> None:
        self._est(b)

    def apply(self, b: Bucket) -> None:
        est, lr = self._est(b), b.group["lr"]
        if lr == 0:
            return
        for p in b.params:
            i = est["index"][id(p)]
            for c, v in _chunks(p):
                for j, cj in enumerate(est["coeffs"]):
                    if cj != 0:
                        v.add_(_chunk_z(p, _mix(est["seed"], est["step"], j, i, c), v.numel()), alpha=-lr * cj)
