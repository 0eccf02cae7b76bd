"""Mergeable summary of one numeric column: exact moments, a KLL quantile sketch, an HLL.

Exact parts: count, nulls (None and NaN), infinities, invalid values (not numbers: strings,
booleans, ...), sum, min, max and the central moments (see `features.summaries.moments`, Chan et al.
1979 and Pébay 2008). Approximate parts, from Apache DataSketches: a KLL sketch
(`kll_doubles_sketch`, Karnin, Lang & Liberty 2016) for quantiles, CDF and histograms, whose
rank error (99% confidence) every query reports, and an HLL sketch (`hll_sketch`, HLL_4) for
the distinct count, reported with its bounds. Infinities, NaN and invalid values are counted
but kept out of the moments and sketches: one of them would turn every moment into NaN.

Update from numpy batches (`update`) or one value at a time (`add`): both give the same
summary: counts, min, max and the HLL bit for bit (see `features.summaries.hll`), moments and sum
within rounding, and KLL contents exactly until its first compaction (which draws random
bits), within its rank error after. `merge` returns a new summary, inputs untouched.

Byte layout (`to_bytes`, little-endian, format version 1)::

    offset size  field
    0      4     magic b"DLNS"
    4      1     version (1)
    5      2     kll_k (u16)
    7      1     hll_lg_k (u8)
    8      32    count, nulls, infinite, invalid (4 x u64)
    40     56    sum, mean, m2, m3, m4, min, max (7 x f64; min and max are NaN when empty)
    96     8     kll_len, hll_len (2 x u32)
    104    ...   KLL bytes (kll_doubles_sketch.serialize), then HLL bytes (`features.summaries.hll.hll_bytes`)

At the defaults (k=200, lg_k=12) a summary of 1M values takes about 7.2 KB.

>>> s = NumericSummary()
>>> s.update(np.array([1.0, 2.0, 3.0, np.nan]))
>>> s.count, s.nulls, s.mean, s.quantiles([0.5]).values
(3, 1, 2.0, (2.0,))
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from datasketches import hll_sketch, kll_doubles_sketch

from features.summaries.hll import (
    HLL_TYPE, DistinctCount, HllBatchFeeder, hll_bytes, hll_distinct, hll_merge,
)
from features.summaries.moments import EMPTY, Moments, add_value, merge_moments, moments_of
from features.summaries.numeric_values import INVALID, classify, coerce
from features.summaries.quantiles import Cdf, Histogram, Quantiles
from features.summaries.codec import b64decode, b64encode, float_from_json, float_to_json

DEFAULT_KLL_K = 200
DEFAULT_HLL_LG_K = 12

MAGIC = b"DLNS"
VERSION = 1
_HEADER = struct.Struct("<4sBHBQQQQdddddddII")


class NumericSummary:
    """Mergeable summary of one numeric column (see the module docstring).

    A summary is mutable through `update` and `add` only, like a DataSketches sketch;
    `merge` and the deserialisers build new summaries.

    >>> s = NumericSummary()
    >>> for v in (4.0, None, 1.0, math.inf, "x"):
    ...     s.add(v)
    >>> s.count, s.nulls, s.infinite, s.invalid, s.min, s.max
    (2, 1, 1, 1, 1.0, 4.0)
    """

    __slots__ = ("kll_k", "hll_lg_k", "nulls", "infinite", "invalid", "total", "moments",
                 "min", "max", "kll", "hll", "_feeder")

    def __init__(self, kll_k: int = DEFAULT_KLL_K, hll_lg_k: int = DEFAULT_HLL_LG_K) -> None:
        if not 8 <= kll_k <= 65535:
            raise ValueError(f"kll_k must be in [8, 65535], got {kll_k}; 200 is the default")
        if not 4 <= hll_lg_k <= 21:
            raise ValueError(f"hll_lg_k must be in [4, 21], got {hll_lg_k}; 12 is the default")
        self.kll_k = kll_k
        self.hll_lg_k = hll_lg_k
        self.nulls = 0
        self.infinite = 0
        self.invalid = 0
        self.total = 0.0
        self.moments: Moments = EMPTY
        self.min: float | None = None
        self.max: float | None = None
        self.kll = kll_doubles_sketch(kll_k)
        self.hll = hll_sketch(hll_lg_k, HLL_TYPE)
        self._feeder: HllBatchFeeder | None = None  # made on the first batch

    # ---- updates -------------------------------------------------------------------

    def update(self, values: npt.ArrayLike | Iterable[object]) -> None:
        """Add a batch: None/NaN count as nulls, +-inf as infinite, non-numbers as invalid.

        >>> s = NumericSummary(); s.update([1, 2, None, float("-inf"), "3"])
        >>> s.count, s.nulls, s.infinite, s.invalid, s.total
        (2, 1, 1, 1, 3.0)
        """
        x, invalid = coerce(values)
        self.invalid += invalid
        if x.size == 0:
            return
        total = float(x.sum())
        # One sum tells whether the batch is all finite: the common case skips the masks.
        if not math.isfinite(total):
            finite = np.isfinite(x)
            nan = int(np.count_nonzero(np.isnan(x)))
            self.nulls += nan
            self.infinite += int(x.size - np.count_nonzero(finite)) - nan
            x = x[finite]
            if x.size == 0:
                return
            total = float(x.sum())
        self.total += total
        self.moments = merge_moments(self.moments, moments_of(x))
        lo, hi = float(x.min()), float(x.max())
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        self.kll.update(x)
        if self._feeder is None:
            self._feeder = HllBatchFeeder(self.hll_lg_k)
        self._feeder.feed(self.hll, x)

    def add(self, value: object) -> None:
        """Add one value (None and NaN are nulls, +-inf infinite, non-numbers invalid).

        >>> s = NumericSummary(); s.add(2.5); s.add(float("nan")); s.add(True)
        >>> s.count, s.nulls, s.invalid
        (1, 1, 1)
        """
        # Fast path: a finite float (x - x is NaN for NaN and infinities).
        x = value if type(value) is float and value - value == 0.0 else classify(value)
        if x is None:
            self.nulls += 1
        elif x is INVALID:
            self.invalid += 1
        elif x - x != 0.0:  # type: ignore[operator]  # infinite
            self.infinite += 1
        else:
            self.total += x  # type: ignore[operator]
            self.moments = add_value(self.moments, x)  # type: ignore[arg-type]
            if self.min is None:
                self.min = self.max = x  # type: ignore[assignment]
            elif x < self.min:  # type: ignore[operator]
                self.min = x  # type: ignore[assignment]
            elif x > self.max:  # type: ignore[operator]
                self.max = x  # type: ignore[assignment]
            self.kll.update(x)
            self.hll.update(x)

    # ---- exact statistics ----------------------------------------------------------

    @property
    def count(self) -> int:
        """Number of finite values (nulls, infinities and invalid values excluded).

        >>> s = NumericSummary(); s.update([1.0, None]); s.count
        1
        """
        return self.moments.count

    @property
    def mean(self) -> float:
        """Mean of the finite values (NaN when there are none).

        >>> s = NumericSummary(); s.update([1.0, 2.0]); s.mean
        1.5
        """
        return self.moments.mean if self.count else math.nan

    @property
    def variance(self) -> float:
        """Population variance (ddof=0, like `np.var`); `moments.sample_variance` has ddof=1.

        >>> s = NumericSummary(); s.update([1.0, 3.0]); s.variance
        1.0
        """
        return self.moments.variance

    @property
    def std(self) -> float:
        """Population standard deviation.

        >>> s = NumericSummary(); s.update([1.0, 3.0]); s.std
        1.0
        """
        return self.moments.std

    @property
    def skewness(self) -> float:
        """Skewness g1, as `scipy.stats.skew` (NaN when empty or constant).

        >>> s = NumericSummary(); s.update([0.0, 0.0, 0.0, 1.0]); round(s.skewness, 6)
        1.154701
        """
        return self.moments.skewness

    @property
    def kurtosis(self) -> float:
        """Excess kurtosis g2, as `scipy.stats.kurtosis` (NaN when empty or constant).

        >>> s = NumericSummary(); s.update([0.0, 1.0]); s.kurtosis
        -2.0
        """
        return self.moments.excess_kurtosis

    # ---- sketch queries ------------------------------------------------------------

    @property
    def rank_error(self) -> float:
        """Single-sided normalized rank error of quantile and CDF answers (99% confidence);
        0 while the KLL sketch still holds every value.

        >>> NumericSummary().rank_error
        0.0
        """
        return self.kll.normalized_rank_error(False) if self.kll.is_estimation_mode() else 0.0

    @property
    def pmf_error(self) -> float:
        """Double-sided normalized rank error, for the mass between two points (99%).

        >>> round(NumericSummary().pmf_error, 6)
        0.0
        """
        return self.kll.normalized_rank_error(True) if self.kll.is_estimation_mode() else 0.0

    def quantiles(self, ranks: Sequence[float]) -> Quantiles:
        """Values at normalized ranks in [0, 1] (inclusive rule, NaN when empty).

        >>> s = NumericSummary(); s.update(np.arange(1.0, 101.0))
        >>> q = s.quantiles([0.05, 0.5, 0.95]); q.values, q.rank_error
        ((5.0, 50.0, 95.0), 0.0)
        """
        ranks_t = tuple(float(r) for r in ranks)
        if any(not 0.0 <= r <= 1.0 for r in ranks_t):
            raise ValueError(f"quantile ranks must lie in [0, 1], got {ranks_t}; "
                             "pass 0.5 for the median")
        if self.kll.is_empty():
            nans = tuple(math.nan for _ in ranks_t)
            return Quantiles(ranks_t, nans, nans, nans, 0.0)
        eps = self.rank_error
        values = self._at_ranks(ranks_t)
        if eps == 0.0:
            return Quantiles(ranks_t, values, values, values, 0.0)
        lower = self._at_ranks([max(0.0, r - eps) for r in ranks_t])
        upper = self._at_ranks([min(1.0, r + eps) for r in ranks_t])
        return Quantiles(ranks_t, values, lower, upper, eps)

    def _at_ranks(self, ranks: Sequence[float]) -> tuple[float, ...]:
        # Compaction can drop the extremes from the KLL sketch; min and max are kept exactly.
        values = self.kll.get_quantiles(list(ranks), inclusive=True)
        return tuple(self.min if r == 0.0 else self.max if r == 1.0 else v  # type: ignore[misc]
                     for r, v in zip(ranks, values))

    def cdf(self, points: Sequence[float]) -> Cdf:
        """Fraction of values <= each point (NaN when empty).

        >>> s = NumericSummary(); s.update([1.0, 2.0, 3.0, 4.0])
        >>> s.cdf([2.0, 10.0]).fractions
        (0.5, 1.0)
        """
        points_t = tuple(float(p) for p in points)
        if self.kll.is_empty():
            nans = tuple(math.nan for _ in points_t)
            return Cdf(points_t, nans, nans, nans, 0.0)
        eps = self.rank_error
        fractions = tuple(self.kll.get_rank(p, inclusive=True) for p in points_t)
        return Cdf(points_t, fractions, tuple(max(0.0, f - eps) for f in fractions),
                   tuple(min(1.0, f + eps) for f in fractions), eps)

    def histogram(self, edges: Sequence[float]) -> Histogram:
        """Mass per bucket between strictly increasing edges (len(edges) + 1 buckets).

        >>> s = NumericSummary(); s.update([1.0, 2.0, 3.0, 4.0])
        >>> s.histogram([2.0, 4.0]).counts
        (1, 2, 1)
        """
        edges_t = tuple(float(e) for e in edges)
        if any(b <= a for a, b in zip(edges_t, edges_t[1:])) or any(map(math.isnan, edges_t)):
            raise ValueError(f"histogram edges must be strictly increasing numbers, got {edges_t}")
        if self.kll.is_empty():
            zeros = tuple(0.0 for _ in range(len(edges_t) + 1))
            return Histogram(edges_t, zeros, tuple(0 for _ in zeros), 0.0)
        fractions = tuple(self.kll.get_pmf(list(edges_t)))
        counts = tuple(round(f * self.count) for f in fractions)
        return Histogram(edges_t, fractions, counts, self.pmf_error)

    def distinct(self) -> DistinctCount:
        """Distinct-count estimate of the finite values, with ~95% bounds.

        >>> s = NumericSummary(); s.update([1.0, 1.0, 2.0]); round(s.distinct().estimate, 6)
        2.0
        """
        return hll_distinct(self.hll)

    # ---- serialisation -------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Compact bytes (layout in the module docstring).

        >>> s = NumericSummary(); s.update([1.0, 2.0])
        >>> NumericSummary.from_bytes(s.to_bytes()) == s
        True
        """
        kll, hll = self.kll.serialize(), hll_bytes(self.hll)
        m = self.moments
        floats = (self.total, m.mean, m.m2, m.m3, m.m4, math.nan if self.min is None else self.min,
                  math.nan if self.max is None else self.max)
        # One NaN bit pattern (overflowed moments can be -NaN), so that bytes -> JSON -> bytes
        # is exact.
        header = _HEADER.pack(
            MAGIC, VERSION, self.kll_k, self.hll_lg_k, m.count, self.nulls, self.infinite,
            self.invalid, *(math.nan if f != f else f for f in floats), len(kll), len(hll))
        return header + kll + hll

    @classmethod
    def from_bytes(cls, data: bytes) -> NumericSummary:
        """The summary that `to_bytes` wrote.

        >>> NumericSummary.from_bytes(NumericSummary().to_bytes()).count
        0
        """
        if len(data) < _HEADER.size or data[:4] != MAGIC:
            raise ValueError(f"expected numeric summary bytes starting with {MAGIC!r}, got "
                             f"{bytes(data[:4])!r} ({len(data)} bytes); use NumericSummary.to_bytes")
        (_, version, kll_k, lg_k, count, nulls, infinite, invalid, total, mean, m2, m3, m4, lo,
         hi, kll_len, hll_len) = _HEADER.unpack_from(data)
        if version != VERSION:
            raise ValueError(f"numeric summary format version {version} is not supported "
                             f"(this library reads {VERSION}); upgrade driftline")
        if len(data) != _HEADER.size + kll_len + hll_len:
            raise ValueError(f"numeric summary bytes: header announces "
                             f"{_HEADER.size + kll_len + hll_len} bytes, got {len(data)}")
        kll = data[_HEADER.size:_HEADER.size + kll_len]
        hll = data[_HEADER.size + kll_len:]
        return cls._assemble(kll_k, lg_k, Moments(count, mean, m2, m3, m4),
                             (nulls, infinite, invalid), total, lo, hi, kll, hll)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict: exact scalars plus base64 sketch bytes. Non-finite floats
        are the strings "inf", "-inf", "nan"; min and max are None when empty.

        >>> s = NumericSummary(); s.update([1.0, 2.0])
        >>> d = s.to_dict(); d["count"], d["mean"], d["min"]
        (2, 1.5, 1.0)
        >>> NumericSummary.from_dict(d) == s
        True
        """
        m = self.moments
        return {
            "kind": "numeric", "version": VERSION, "kll_k": self.kll_k,
            "hll_lg_k": self.hll_lg_k, "count": m.count, "nulls": self.nulls,
            "infinite": self.infinite, "invalid": self.invalid,
            "sum": float_to_json(self.total), "mean": float_to_json(m.mean),
            "m2": float_to_json(m.m2), "m3": float_to_json(m.m3), "m4": float_to_json(m.m4),
            "min": self.min, "max": self.max,
            "kll": b64encode(self.kll.serialize()), "hll": b64encode(hll_bytes(self.hll)),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericSummary:
        """The summary that `to_dict` wrote.

        >>> NumericSummary.from_dict(NumericSummary().to_dict()).count
        0
        """
        if d.get("kind") != "numeric" or d.get("version") != VERSION:
            raise ValueError(f"expected a numeric summary dict (kind 'numeric', version "
                             f"{VERSION}), got kind {d.get('kind')!r} version {d.get('version')!r}")
        lo = math.nan if d["min"] is None else float_from_json(d["min"], "min")
        hi = math.nan if d["max"] is None else float_from_json(d["max"], "max")
        m = [float_from_json(d[k], k) for k in ("mean", "m2", "m3", "m4")]
        return cls._assemble(d["kll_k"], d["hll_lg_k"], Moments(int(d["count"]), *m),
                             (d["nulls"], d["infinite"], d["invalid"]),
                             float_from_json(d["sum"], "sum"), lo, hi,
                             b64decode(d["kll"], "kll"), b64decode(d["hll"], "hll"))

    @classmethod
    def _assemble(cls, kll_k: int, lg_k: int, moments: Moments, counts: tuple[int, int, int],
                  total: float, lo: float, hi: float, kll: bytes, hll: bytes) -> NumericSummary:
        s = cls(kll_k, lg_k)
        s.moments, s.total = moments, float(total)
        s.nulls, s.infinite, s.invalid = (int(c) for c in counts)
        s.min = None if math.isnan(lo) else float(lo)
        s.max = None if math.isnan(hi) else float(hi)
        s.kll = kll_doubles_sketch.deserialize(bytes(kll))
        s.hll = hll_sketch.deserialize(bytes(hll))
        return s

    def __reduce__(self) -> tuple[Any, ...]:
        # DataSketches objects do not pickle; Bytewax snapshots pickle state, so go via bytes.
        return (NumericSummary.from_bytes, (self.to_bytes(),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumericSummary) and self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]  # mutable: equal summaries may diverge later

    def __repr__(self) -> str:
        return (f"NumericSummary(count={self.count}, nulls={self.nulls}, mean={self.mean:.6g}, "
                f"min={self.min}, max={self.max}, distinct~{self.hll.get_estimate():.0f})")


def merge(a: NumericSummary, b: NumericSummary) -> NumericSummary:
    """A new summary of both inputs' values (associative, commutative; inputs untouched).

    >>> a = NumericSummary(); a.update([1.0, 2.0])
    >>> b = NumericSummary(); b.update([3.0, 4.0])
    >>> m = merge(a, b); m.count, m.mean, m.min, m.max, a.count
    (4, 2.5, 1.0, 4.0, 2)
    """
    if (a.kll_k, a.hll_lg_k) != (b.kll_k, b.hll_lg_k):
        raise ValueError(f"cannot merge summaries built with different sketch sizes: "
                         f"(kll_k, hll_lg_k) = {(a.kll_k, a.hll_lg_k)} and "
                         f"{(b.kll_k, b.hll_lg_k)}; summarise both with the same config")
    # An empty side is an exact identity (a union would drop the HLL's HIP estimator).
    if b.count == 0:
        a, b = b, a
    if a.count == 0:
        out = NumericSummary.from_bytes(b.to_bytes())
    else:
        out = NumericSummary(a.kll_k, a.hll_lg_k)
        out.total = a.total + b.total
        out.moments = merge_moments(a.moments, b.moments)
        out.min = min(a.min, b.min)  # type: ignore[type-var]  # both set when count > 0
        out.max = max(a.max, b.max)  # type: ignore[type-var]
        out.kll.merge(a.kll)
        out.kll.merge(b.kll)
        out.hll = hll_merge(a.hll, b.hll, a.hll_lg_k)
    out.nulls, out.infinite = a.nulls + b.nulls, a.infinite + b.infinite
    out.invalid = a.invalid + b.invalid
    return out
