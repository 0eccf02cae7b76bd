"""Central moments up to the fourth, computed from numpy batches and merged pairwise.

A `Moments` value holds the count, the mean and the central moment sums
M2 = sum((x - mean)**2), M3 = sum((x - mean)**3), M4 = sum((x - mean)**4). Two values merge
with the pairwise formulas of Chan, Golub & LeVeque (1979, "Updating formulae and a pairwise
algorithm for computing sample variances") extended to the third and fourth moments by
Pébay (2008, "Formulas for robust, one-pass parallel computation of covariances and
arbitrary-order statistical moments", Sandia report SAND2008-6212). Sums of powers of raw
values would cancel catastrophically when the mean is large against the spread; central sums
do not. A batch is summarised with numpy in two passes (mean, then deviations) and merged
in, so a stream costs one merge per batch rather than one Python step per value.

Merge is commutative exactly (operands are put in a canonical order first) and associative
up to floating-point rounding.

>>> m = merge_moments(moments_of([1.0, 2.0]), moments_of([3.0, 4.0]))
>>> m.count, m.mean, m.variance
(4, 2.5, 1.25)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt


class Moments(NamedTuple):
    """Count, mean and central moment sums M2..M4 of a set of finite numbers.

    An immutable value (a NamedTuple rather than a frozen dataclass: the per-value path
    builds one per value, and a tuple builds ~5x faster).

    Statistics follow numpy/scipy's biased (population) conventions unless named otherwise:
    `variance` is ddof=0 like `np.var`, `skewness` and `excess_kurtosis` match
    `scipy.stats.skew` and `scipy.stats.kurtosis` with `bias=True`. Undefined statistics
    (an empty set, or a constant one for skewness and kurtosis) are NaN.

    >>> m = moments_of([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    >>> m.mean, m.variance, m.sample_variance
    (5.0, 4.0, 4.571428571428571)
    """

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    m3: float = 0.0
    m4: float = 0.0

    @property
    def variance(self) -> float:
        """Population variance M2 / n (NaN when empty).

        >>> moments_of([1.0, 3.0]).variance
        1.0
        """
        return self.m2 / self.count if self.count > 0 else math.nan

    @property
    def sample_variance(self) -> float:
        """Unbiased sample variance M2 / (n - 1) (NaN below two values).

        >>> moments_of([1.0, 3.0]).sample_variance
        2.0
        """
        return self.m2 / (self.count - 1) if self.count > 1 else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation, the square root of `variance`.

        >>> moments_of([1.0, 3.0]).std
        1.0
        """
        return math.sqrt(self.variance) if self.count > 0 else math.nan

    @property
    def skewness(self) -> float:
        """Fisher-Pearson skewness g1 = sqrt(n) * M3 / M2**1.5 (NaN if empty or constant).

        >>> round(moments_of([0.0, 0.0, 0.0, 1.0]).skewness, 6)
        1.154701
        """
        if self.count == 0 or self.m2 <= 0.0:
            return math.nan
        # Divided step by step: m2**1.5 or m2**2 would underflow to 0 for tiny spreads.
        return math.sqrt(self.count) * (self.m3 / self.m2) / math.sqrt(self.m2)

    @property
    def excess_kurtosis(self) -> float:
        """Excess kurtosis g2 = n * M4 / M2**2 - 3 (NaN if empty or constant).

        >>> moments_of([0.0, 1.0]).excess_kurtosis
        -2.0
        """
        if self.count == 0 or self.m2 <= 0.0:
            return math.nan
        return self.count * (self.m4 / self.m2) / self.m2 - 3.0


EMPTY = Moments()
# Builds a Moments from a tuple without NamedTuple's keyword-handling __new__ (2x faster).
_new = tuple.__new__


def moments_of(values: npt.ArrayLike) -> Moments:
    """Moments of a batch of finite numbers, computed with numpy (two passes).

    The caller filters NaN and infinities out first: one of them would make every moment
    NaN, so they are counted apart (see `features.summaries.numeric`).

    >>> moments_of(np.array([1.0, 2.0, 3.0]))
    Moments(count=3, mean=2.0, m2=2.0, m3=0.0, m4=2.0)
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    n = int(x.size)
    if n == 0:
        return EMPTY
    mean = float(x.sum()) / n
    d = x - mean
    # Fold the first pass's rounding error back into the mean (the "corrected two-pass"
    # algorithm); deviations then sum to ~0 and M3/M4 need no correction terms.
    shift = float(d.sum()) / n
    if shift != 0.0:
        mean += shift
        d -= shift
    # Values near the float limits overflow the power sums to inf (or inf - inf = NaN):
    # that is the answer, so numpy's warnings would only be noise.
    with np.errstate(over="ignore", invalid="ignore"):
        d2 = d * d
        # np.dot runs in BLAS: several times faster than (d2 * d).sum() at the same accuracy.
        return Moments(n, mean, float(d2.sum()), float(np.dot(d2, d)), float(np.dot(d2, d2)))


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Moments of the union of two disjoint sets (Chan et al. 1979; Pébay 2008, eq. 2.1-2.3).

    >>> merge_moments(moments_of([1.0]), moments_of([3.0]))
    Moments(count=2, mean=2.0, m2=2.0, m3=0.0, m4=2.0)
    """
    if a.count == 0:
        return b
    if b.count == 0:
        return a
    # A canonical operand order makes merge(a, b) and merge(b, a) bit-identical.
    if b < a:
        a, b = b, a
    na, nb = float(a.count), float(b.count)
    n = na + nb
    delta = b.mean - a.mean
    delta_n = delta / n
    delta_n2 = delta_n * delta_n
    term1 = delta * delta_n * na * nb  # delta**2 * na * nb / n
    mean = a.mean + delta_n * nb
    m2 = a.m2 + b.m2 + term1
    m3 = (a.m3 + b.m3 + term1 * delta_n * (na - nb)
          + 3.0 * delta_n * (na * b.m2 - nb * a.m2))
    m4 = (a.m4 + b.m4 + term1 * delta_n2 * (na * na - na * nb + nb * nb)
          + 6.0 * delta_n2 * (na * na * b.m2 + nb * nb * a.m2)
          + 4.0 * delta_n * (na * b.m3 - nb * a.m3))
    return Moments(a.count + b.count, mean, m2, m3, m4)


def add_value(m: Moments, x: float) -> Moments:
    """Moments after one more finite value: `merge_moments` with a one-value set, its terms
    in b's moments dropped (they are 0), which is the online update of Pébay 2008 eq. 3.1.

    >>> add_value(add_value(EMPTY, 1.0), 3.0).variance
    1.0
    """
    na, mean, m2, m3, m4 = m  # unpacking: cheaper than five attribute reads
    if na == 0:
        return _new(Moments, (1, float(x), 0.0, 0.0, 0.0))
    n = na + 1.0
    delta = x - mean
    delta_n = delta / n
    delta_n2 = delta_n * delta_n
    term1 = delta * delta_n * na
    return _new(Moments, (
        na + 1, mean + delta_n, m2 + term1,
        m3 + term1 * delta_n * (n - 2.0) - 3.0 * delta_n * m2,
        m4 + term1 * delta_n2 * (n * n - 3.0 * n + 3.0) + 6.0 * delta_n2 * m2
        - 4.0 * delta_n * m3))
