"""Coefficient schedules for the quintic Newton–Schulz iteration.

One iteration applies the odd quintic ``p(x) = a x + b x^3 + c x^5`` to every singular
value of ``X`` (``X <- a X + b (X X^T) X + c (X X^T)^2 X``).  A *schedule* is the list of
``(a, b, c)`` used at iterations ``1..steps``.

Named schedules (see :data:`SCHEDULES`):

``"jordan"``
    Keller Jordan's fixed quintic ``(3.4445, -4.7750, 2.0315)`` at every step, as used by
    ``torch.optim.Muon`` and described in K. Jordan, "Muon: An optimizer for hidden layers
    in neural networks" (2024), https://kellerjordan.github.io/posts/muon/ .
    It does not converge to 1: iterating ``p`` on ``(0, 1]`` ends in the attractor
    ``[0.6818, 1.1344]`` (``p`` has a local minimum 0.6818 at x = 1.0501 and
    ``p(0.6818) = 1.1344``), and while small singular values are still climbing a value can
    sit anywhere up to ``max_{[0,1]} p = 1.2024`` (at x = 0.5545).  The post's "roughly
    Uniform(0.5, 1.5)" is a loose description of that band.

``"polar_express"``
    The per-step minimax-optimal quintics of N. Amsel, D. Persson, C. Musco, R. M. Gower,
    "The Polar Express: Optimal Matrix Sign Methods and Their Application to the Muon
    Algorithm", arXiv:2505.16932 (Algorithm 1; offline stage in Appendix G).  Design:
    lower bound ``ell = 1e-3`` on the normalised singular values, upper bound ``u = 1``,
    "cushion" ``0.02407327424182761`` (Sec. 4.4: never design for ``ell_t < 0.024 u_t``, so
    that ``p_t(x)/x`` stays bounded below), re-centred so that ``p_t`` oscillates around 1,
    ``ell_{t+1} = p_t(ell_t)``, ``u_{t+1} = 2 - ell_{t+1}``.  The paper then applies a safety
    factor 1.01 to every polynomial except the last listed one
    (``p(x) -> p(x / 1.01)``, i.e. ``(a / 1.01, b / 1.01**3, c / 1.01**5)``) and normalises
    by ``1.01 * ||G||_F + 1e-7`` (Algorithm 1's code; the prose of Sec. 4.4 says
    ``||G||_F + 1e-2``) instead of ``||G||_F``.  The 8th listed
    polynomial ``(15/8, -10/8, 3/8)`` is the degree-5 Newton–Schulz/Padé quintic, the limit
    of the minimax quintic as ``ell_t -> u_t``; Algorithm 1 repeats it for every step past
    the list ("subsequent coeffs equal this numerically"), and so do we.  The tests re-derive
    the raw list from this design with an independent implementation of the paper's
    equioscillation algorithm.

``"you"``
    Jiacheng You's six hand-optimised quintics (multiples of 1/1024), published at
    https://twitter.com/YouJiacheng/status/1893704552689303901 and in the Modula docs
    (https://docs.modula.systems/algorithms/newton-schulz/); also the "You" method of the
    Polar Express paper.  It is designed for exactly 6 steps; with fewer steps only the first
    ``steps`` are used (the result is then far from converged), with more the last one is
    repeated (its fixed point is ~0.9968).

``"dion"``
    Five per-step quintics published by Jiacheng You
    (https://x.com/YouJiacheng/status/1905861218138804534; the Gram Newton–Schulz repository
    github.com/Dao-AILab/gram-newton-schulz lists them as ``YOU_COEFFICIENTS`` with that link), used
    by Microsoft's Dion Newton–Schulz kernels, the modded-nanogpt speedrun records and Megatron
    ("quintic").  Named "dion" here (optax's contrib Muon uses the same name) because "you" is
    already the older 6-step list.  Designed for exactly 5 steps; the last entry repeats after
    that (``p(1) = 0.9853``, so the iteration does not converge to 1 either).

``"turbo"``
    Turbo-Muon's 4-step list (Boissin et al., arXiv:2512.04632): "dion" without its first
    entry.  The authors' code (github.com/thib-s/flash-newton-schulz, ``NS_ours``: ``ns_consts[-iter:]``)
    and their modded-nanogpt record README ("simply drop the first iteration of the usual newton
    schulz coefficients") use exactly this after AOL preconditioning (see ``aol.py``); the AOL
    rescaling replaces the first, large-slope step.  Meant for AOL input; with Frobenius
    normalisation it is a weaker 4-step "dion".

User schedules: a sequence of ``(a, b, c)`` triples (or one bare triple).  Step ``i`` uses
entry ``min(i, len - 1)``: the list is consumed in order and its *last* entry is repeated,
never cycled - the same rule as the named schedules.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

__all__ = ["SCHEDULES", "ns_coefficients", "JORDAN", "POLAR_EXPRESS", "YOU", "DION", "TURBO", "norm_safety"]

Coeffs = tuple[float, float, float]

JORDAN: Coeffs = (3.4445, -4.7750, 2.0315)

# arXiv:2505.16932, Algorithm 1 ``coeffs_list`` (d = 5, ell = 1e-3, u = 1), before the safety factor.
_POLAR_EXPRESS_RAW: tuple[Coeffs, ...] = (
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
)
_PE_SAFETY = 1.01
# Safety factor on all but the last polynomial, exactly as in Algorithm 1 of the paper.
POLAR_EXPRESS: tuple[Coeffs, ...] = tuple(
    (a / _PE_SAFETY, b / _PE_SAFETY**3, c / _PE_SAFETY**5) for a, b, c in _POLAR_EXPRESS_RAW[:-1]
) + (_POLAR_EXPRESS_RAW[-1],)

# Jiacheng You's 6-step schedule (see module docstring for the sources).
YOU: tuple[Coeffs, ...] = tuple(
    (a / 1024, b / 1024, c / 1024)
    for a, b, c in (
        (3955, -8306, 5008),
        (3735, -6681, 3463),
        (3799, -6499, 3211),
        (4019, -6385, 2906),
        (2677, -3029, 1162),
        (2172, -1833, 682),
    )
)

# Jiacheng You's 5-step list (the "dion" schedule; sources in the module docstring).
DION: tuple[Coeffs, ...] = (
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)
# Turbo-Muon (arXiv:2512.04632): the first "dion" step is replaced by AOL preconditioning.
TURBO: tuple[Coeffs, ...] = DION[1:]

_TABLES: dict[str, tuple[Coeffs, ...]] = {
    "jordan": (JORDAN,),
    "polar_express": POLAR_EXPRESS,
    "you": YOU,
    "dion": DION,
    "turbo": TURBO,
}
SCHEDULES: tuple[str, ...] = tuple(_TABLES)

# Multiplier on ||G||_F in the initial normalisation (1.0 = torch.optim.Muon's X / max(||X||_F, eps)).
_NORM_SAFETY: dict[str, float] = {"polar_express": _PE_SAFETY}


def norm_safety(schedule: object) -> float | None:
    """Safety multiplier for the Frobenius normalisation of a schedule, or None.

    ``None`` means torch.optim.Muon's convention ``X / max(||X||_F, eps)``; a number ``s``
    means the Polar Express convention ``X / (s * ||X||_F + eps)``.  Only named schedules
    carry one; user-given coefficient lists use torch's convention.
    """
    return _NORM_SAFETY.get(schedule) if isinstance(schedule, str) else None


def _check_steps(steps: object, where: str) -> int:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise ValueError(f"{where}: steps must be a non-negative int, got {steps!r}")
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"{where}: steps must be a non-negative int, got {steps!r}")
    return steps


def _is_real(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _as_table(schedule: object) -> tuple[Coeffs, ...]:
    where = "ns_coefficients"
    if isinstance(schedule, str):
        try:
            return _TABLES[schedule]
        except KeyError:
            raise ValueError(
                f"{where}: unknown schedule {schedule!r}; choose from {list(SCHEDULES)}"
            ) from None
    if hasattr(schedule, "tolist") and not isinstance(schedule, Sequence):
        schedule = schedule.tolist()  # numpy array / tensor of shape (k, 3) or (3,)
    if not isinstance(schedule, Sequence):
        raise ValueError(
            f"{where}: schedule must be one of {list(SCHEDULES)} or a sequence of (a, b, c) "
            f"tuples, got {schedule!r}"
        )
    items = list(schedule)
    if len(items) == 3 and all(_is_real(v) for v in items):
        items = [tuple(items)]  # one bare (a, b, c) triple, like torch.optim.Muon's ns_coefficients
    if not items:
        raise ValueError(f"{where}: schedule must not be empty, got {schedule!r}")
    table = []
    for i, t in enumerate(items):
        if (
            isinstance(t, str)
            or not isinstance(t, Sequence)
            or len(t) != 3
            or not all(_is_real(v) and math.isfinite(v) for v in t)
        ):
            raise ValueError(
                f"{where}: schedule entry {i} must be a triple of finite real numbers (a, b, c), "
                f"got {t!r}"
            )
        table.append((float(t[0]), float(t[1]), float(t[2])))
    return tuple(table)


def ns_coefficients(
    schedule: str | Sequence[tuple[float, float, float]], steps: int
) -> list[tuple[float, float, float]]:
    """The ``(a, b, c)`` of each of ``steps`` quintic Newton–Schulz iterations.

    ``schedule`` is a name from :data:`SCHEDULES` or a user sequence of triples.  Step ``i``
    (0-based) uses entry ``min(i, len(table) - 1)``: the last entry repeats, nothing cycles.
    ``steps = 0`` gives ``[]``.  Raises ``ValueError`` naming the offending argument.
    """
    steps = _check_steps(steps, "ns_coefficients")
    table = _as_table(schedule)
    last = len(table) - 1
    return [table[min(i, last)] for i in range(steps)]
