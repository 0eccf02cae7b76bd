"""Answers of the numeric summary's KLL queries, each with its error bound.

The bounds are DataSketches' KLL normalized rank errors at 99% confidence: single-sided for
quantiles and the CDF, double-sided for histogram buckets (the mass between two points);
0 while the sketch still holds every value.

>>> Quantiles((0.5,), (2.0,), (2.0,), (2.0,), 0.0).rank_error
0.0
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quantiles:
    """Values at normalized ranks. With 99% confidence each value's true rank is within
    `rank_error` of the asked rank, so the true quantile lies in [lower[i], upper[i]] (the
    values at ranks r -/+ rank_error). All three are equal while the sketch is exact.

    >>> Quantiles((0.5,), (2.0,), (2.0,), (2.0,), 0.0).values
    (2.0,)
    """

    ranks: tuple[float, ...]
    values: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    rank_error: float


@dataclass(frozen=True)
class Cdf:
    """Fraction of values <= each point (inclusive); with 99% confidence each true fraction
    lies in [lower[i], upper[i]] = fraction -/+ `rank_error`, clipped to [0, 1].

    >>> Cdf((1.0,), (0.5,), (0.5,), (0.5,), 0.0).fractions
    (0.5,)
    """

    points: tuple[float, ...]
    fractions: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    rank_error: float


@dataclass(frozen=True)
class Histogram:
    """Mass between consecutive edges: buckets (-inf, e0), [e0, e1), ..., [e_last, inf).

    Each fraction is within `rank_error` of the truth (double-sided KLL PMF error, 99%
    confidence); `counts` are the fractions times the column count, rounded.

    >>> Histogram((0.0,), (0.25, 0.75), (1, 3), 0.0).counts
    (1, 3)
    """

    edges: tuple[float, ...]
    fractions: tuple[float, ...]
    counts: tuple[int, ...]
    rank_error: float
