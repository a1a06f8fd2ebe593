"""Owner assignment: which rank computes each whole-matrix transform of a step.

The unit of work is one parameter: a whole matrix, or a whole stack of slices for a 3-D parameter
(``ortho_3d="slices"``: per-head / per-expert stacks are never split across ranks). Each unit has a cost
in FLOPs (:func:`matrix_flops`); :func:`assign_owners` balances the total cost over the ranks by the
greedy longest-processing-time rule (Graham 1969: within 4/3 of the best makespan), deterministically, so
every rank computes the same assignment without communicating. Units of one same-shape bucket that land
on the same rank are still computed as one batched stack there.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

__all__ = ["matrix_flops", "assign_owners", "loads"]


def _dims(shape: Sequence[int], ortho_3d: str = "flatten") -> tuple[int, int, int]:
    """(batch, rows, cols) of the matrices a parameter of ``shape`` is orthogonalized as."""
    if ortho_3d == "slices" and len(shape) == 3:
        return shape[0], shape[1], shape[2]
    return 1, shape[0], math.prod(shape[1:])


def matrix_flops(shape: Sequence[int], kind: str = "newton_schulz", *, steps: int = 5, rank: int | None = None,
                 ortho_3d: str = "flatten", blocks: int = 1) -> float:
    """FLOPs of one whole-matrix transform of a parameter of ``shape`` (multiply-adds counted as 2).

    * ``"newton_schulz"`` (Muon family): per step, for the wide orientation ``m <= n``, ``A = X Xᵀ``
      (2m²n), ``B = bA + cA²`` (2m³), ``B X`` (2m²n): ``steps·(4m²n + 2m³)``;
    * ``"power_iteration"`` (Dion, rank ``r``): ``B Q`` and ``Bᵀ P`` (2mnr each), QR of ``m × r``
      (≈ 4mr²), ``P Rᵀ`` twice (2mnr each): ``8mnr + 4mr²``;
    * ``"svd"`` (exact spectral maps, QDWH): ``~ 22·m²n`` (Golub & Van Loan's R-SVD count, m <= n).
    """
    b, rows, cols = _dims(shape, ortho_3d)
    rows //= max(1, blocks)
    b *= max(1, blocks)
    m, n = min(rows, cols), max(rows, cols)
    if kind == "newton_schulz":
        return b * steps * (4.0 * m * m * n + 2.0 * m ** 3)
    if kind == "power_iteration":
        r = m if rank is None else rank
        return b * (8.0 * m * n * r + 4.0 * m * r * r)
    if kind == "svd":
        return b * 22.0 * m * m * n
    raise ValueError(f"matrix_flops: unknown kind {kind!r}")


def assign_owners(costs: Sequence[float], world: int) -> list[int]:
    """The owner rank of each unit: largest cost first, each to the least-loaded rank (ties: lowest rank;
    equal costs: lowest index first). Deterministic, so every rank computes the same answer."""
    if world < 1:
        raise ValueError(f"assign_owners: world must be >= 1, got {world}")
    for c in costs:
        if not (isinstance(c, (int, float)) and math.isfinite(c) and c >= 0):
            raise ValueError(f"assign_owners: costs must be finite numbers >= 0, got {c!r}")
    owners = [0] * len(costs)
    heap = [(0.0, r) for r in range(world)]
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, r = heapq.heappop(heap)
        owners[i] = r
        heapq.heappush(heap, (load + costs[i], r))
    return owners


def loads(costs: Sequence[float], owners: Sequence[int], world: int) -> list[float]:
    """Total cost per rank under an assignment."""
    out = [0.0] * world
    for c, o in zip(costs, owners):
        out[o] += c
    return out
