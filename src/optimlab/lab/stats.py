"""Statistics over seeds: means with 95% confidence intervals, paired tests, and how they are printed.

Every comparison in the lab reports a mean over seeds with a two-sided 95% confidence interval from
Student's t distribution (``mean ± t_{0.975, n-1} · s / √n``, ``s`` the sample standard deviation).
One seed has no interval: it is reported as ``n = 1``, never as a zero spread. Where two optimizers
ran on the same seeds (same model initialisation and batches), :func:`paired_test` compares them seed
by seed (paired t test on the differences), which removes the seed-to-seed variation they share.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _st

__all__ = ["Interval", "PairedTest", "mean_ci", "paired_test", "fmt_value", "fmt_interval"]


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values with its 95% t interval ``[low, high]`` (NaN bounds when ``n < 2``)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        return fmt_interval(self)


@dataclass(frozen=True)
class PairedTest:
    """Paired t test of ``a - b`` over ``n`` shared seeds: mean difference, its 95% interval, p value."""

    diff: Interval
    p_value: float
    n: int

    def __str__(self) -> str:
        if self.n < 2:
            return f"Δ {fmt_value(self.diff.mean)} (n = {self.n}, no test)"
        return f"Δ {fmt_interval(self.diff)}, p = {self.p_value:.2g}"


def mean_ci(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean and two-sided ``level`` Student-t confidence interval of ``values`` (NaNs are an error)."""
    xs = [float(v) for v in values]
    if any(math.isnan(x) for x in xs):
        raise ValueError(f"mean_ci: values contain NaN: {xs}")
    if not 0 < level < 1:
        raise ValueError(f"mean_ci: level must be in (0, 1), got {level!r}")
    n = len(xs)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = statistics.fmean(xs)
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(_st.t.ppf(0.5 + level / 2, n - 1)) * statistics.stdev(xs) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired t test of ``a[i] - b[i]`` (same seeds in the same order); p is two-sided."""
    if len(a) != len(b):
        raise ValueError(f"paired_test: need the same seeds on both sides, got {len(a)} and {len(b)} values")
    d = [float(x) - float(y) for x, y in zip(a, b)]
    ci = mean_ci(d)
    if len(d) < 2:
        return PairedTest(ci, math.nan, len(d))
    sd = statistics.stdev(d)
    if sd == 0:
        p = 1.0 if ci.mean == 0 else 0.0
    else:
        t = ci.mean / (sd / math.sqrt(len(d)))
        p = float(2 * _st.t.sf(abs(t), len(d) - 1))
    return PairedTest(ci, p, len(d))


def fmt_value(x: float, digits: int = 3) -> str:
    """``digits`` significant digits; scientific notation outside [1e-3, 1e5)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    x = float(x)
    if x == 0:
        return "0"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if 1e-3 <= abs(x) < 1e5:
        # round to `digits` significant digits without ever switching to an exponent ("1.1e+02")
        places = digits - 1 - math.floor(math.log10(abs(x)))
        text = f"{round(x, places):.{max(places, 0)}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{x:.{max(digits - 1, 0)}e}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


def fmt_interval(ci: Interval, digits: int = 3) -> str:
    """``mean ± half-width`` (95% t), or ``mean (n = 1)`` for a single value."""
    if ci.n == 0:
        return "-"
    if ci.n == 1:
        return f"{fmt_value(ci.mean, digits)} (n = 1)"
    return f"{fmt_value(ci.mean, digits)} ± {fmt_value(ci.half_width, 2)}"
