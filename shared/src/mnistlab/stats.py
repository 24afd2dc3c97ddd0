"""95% intervals for report rows: a t-interval over seeds, a Wilson interval for a rate over
networks, and the paired difference of two arms run on the same seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

Z_95 = 1.959963984540054
# Two-sided 95% Student t quantiles by degrees of freedom 1..30 (standard table); beyond 30
# the normal quantile is within 4% of t and is used instead.
T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile(degrees_of_freedom: int) -> float:
    if degrees_of_freedom < 1:
        raise ValueError("a t-interval needs at least two values")
    return T_975[degrees_of_freedom - 1] if degrees_of_freedom <= len(T_975) else Z_95


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """95% t-interval of the mean; a single value has no interval, only itself."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean
    half = t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    shrink = 1 + z * z / trials
    center = (p + z * z / (2 * trials)) / shrink
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / shrink
    # At 0 or all successes the bound is exactly 0 or 1; the formula leaves rounding noise there.
    low = 0.0 if successes == 0 else center - half
    high = 1.0 if successes == trials else center + half
    return low, high


def wilson_percent(percent: float, trials: int) -> tuple[float, float]:
    """The Wilson interval, in %, of a rate given in % of `trials`."""
    low, high = wilson_interval(round(percent / 100 * trials), trials)
    return 100 * low, 100 * high


def paired_differences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """a - b seed by seed: the arms must have run on the same seeds, in the same order."""
    if len(a) != len(b):
        raise ValueError(f"paired arms need the same seeds ({len(a)} vs {len(b)} values)")
    return [x - y for x, y in zip(a, b, strict=True)]
