"""Mergeable summary of one categorical column: exact counts up to a cap, sketches beyond.

Exact parts: count, nulls (None and NaN) and a count per category for the first `cap`
distinct categories (default 256), so chi-squared and PSI can run on categories; values of
further categories are tallied in `other` and `overflowed` turns true. Approximate parts,
from Apache DataSketches: a frequent-items sketch (`frequent_strings_sketch`, the
Misra-Gries family as in Anderson et al. 2017) that keeps the heavy hitters of any number of
categories with a stated error, and an HLL sketch for the distinct count. Categories are
strings: other values are converted with `str` (so 1 and "1" are one category, 1.0 another).

Update from batches (`update`) or one value at a time (`add`): both give the same counts,
nulls, `other` and HLL bit for bit, and the same frequent-items sketch until it first purges
(more distinct categories than it tracks, about 0.75 x 2**freq_lg_k); past that, both are
within the sketch's stated error (`frequency_error`).

Per-category counts are exact in a summary built from one stream: a category enters the
counts before the cap fills, or never. A merge past the cap keeps the `cap` largest
categories (ties by name) and folds the rest into `other`; a kept category may then have
values in a part's `other`, so its count becomes a lower bound and `slack[category]` bounds
what may be missing (`count_bounds`). `count`, `nulls` and `other` + the counts stay exact
in every case. Merge is commutative, and associative while the union of categories fits
the cap; past it, which categories stay counted depends on the grouping.

Byte layout (`to_bytes`, little-endian, format version 1)::

    offset size  field
    0      4     magic b"DLCS"
    4      1     version (1)
    5      1     freq_lg_k (u8)
    6      1     hll_lg_k (u8)
    7      4     cap (u32)
    11     24    nulls, other, n_categories (3 x u64)
    35     8     freq_len, hll_len (2 x u32)
    43     ...   n_categories x (name_len u32, UTF-8 name, count u64, slack u64), sorted by
                 name, then frequent-items bytes (`freq_bytes`), then HLL bytes
                 (`features.summaries.hll.hll_bytes`)

>>> s = CategoricalSummary()
>>> s.update(["card", "cash", "card", None])
>>> s.count, s.nulls, s.counts
(3, 1, {'card': 2, 'cash': 1})
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasketches import frequent_items_error_type, frequent_strings_sketch, hll_sketch

from features.summaries.hll import HLL_TYPE, DistinctCount, hll_bytes, hll_distinct, hll_merge
from features.summaries.codec import b64decode, b64encode

DEFAULT_CAP = 256
DEFAULT_FREQ_LG_K = 9  # up to 384 tracked items, error about 0.7% of the total weight
# Above 2**10 slots the sketch's purge samples its map in layout order, which a deserialised
# copy does not reproduce: smaller sizes keep a round-tripped summary behaving identically.
MAX_FREQ_LG_K = 10
DEFAULT_HLL_LG_K = 12

MAGIC = b"DLCS"
VERSION = 1
_HEADER = struct.Struct("<4sBBBIQQQII")
_NAME_LEN = struct.Struct("<I")
_COUNTS = struct.Struct("<QQ")
# hll_sketch.update("") is a no-op in DataSketches; the empty category is counted as this
# integer instead, whose 8 bytes (all 0xFF) are no string's UTF-8, so it collides with none.
_EMPTY_CATEGORY_KEY = -1


@dataclass(frozen=True)
class FrequentItem:
    """A heavy hitter: its estimated count and guaranteed lower and upper bounds.

    >>> FrequentItem("card", 10, 9, 11).estimate
    10
    """

    item: str
    estimate: int
    lower: int
    upper: int


def freq_bytes(sketch: frequent_strings_sketch) -> bytes:
    """The sketch's serialisation in a canonical form: equal sketches give equal bytes and
    bytes -> sketch -> bytes is exact.

    DataSketches writes the tracked items in the order of its internal hash map, which a
    deserialised copy may lay out differently. After the 32-byte preamble come n u64
    weights, then n items (u32 length + UTF-8); `deserialize` re-inserts the pairs one by
    one, so sorting them by item is the canonical form. (With more than 1024 tracked items
    a purge samples the map in its layout order; the default size tracks at most 384.)

    >>> f = frequent_strings_sketch(3); f.update("b", 2); f.update("a")
    >>> data = freq_bytes(f); freq_bytes(frequent_strings_sketch.deserialize(data)) == data
    True
    """
    data = sketch.serialize()
    if data[0] == 1:  # one preamble long: the sketch is empty
        return data
    (n,) = _NAME_LEN.unpack_from(data, 8)
    weights = [data[32 + 8 * i:40 + 8 * i] for i in range(n)]
    items, pos = [], 32 + 8 * n
    for _ in range(n):
        (size,) = _NAME_LEN.unpack_from(data, pos)
        items.append(data[pos:pos + 4 + size])
        pos += 4 + size
    pairs = sorted(zip(items, weights))
    return data[:32] + b"".join(w for _, w in pairs) + b"".join(i for i, _ in pairs)


def _category(value: object) -> str | None:
    """The category of a value: None for nulls (None, NaN), else its `str`.

    >>> _category(1), _category(1.0), _category(True), _category(float("nan"))
    ('1', '1.0', 'True', None)
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


class CategoricalSummary:
    """Mergeable summary of one categorical column (see the module docstring).

    >>> s = CategoricalSummary(cap=1)
    >>> for v in ("a", "b", "a"):
    ...     s.add(v)
    >>> s.counts, s.other, s.overflowed
    ({'a': 2}, 1, True)
    """

    __slots__ = ("cap", "freq_lg_k", "hll_lg_k", "nulls", "other", "counts", "slack", "freq",
                 "hll")

    def __init__(self, cap: int = DEFAULT_CAP, freq_lg_k: int = DEFAULT_FREQ_LG_K,
                 hll_lg_k: int = DEFAULT_HLL_LG_K) -> None:
        if not 0 <= cap < 2**32:
            raise ValueError(f"cap must be a count of categories >= 0, got {cap}; 256 is the default")
        if not 3 <= freq_lg_k <= MAX_FREQ_LG_K:
            raise ValueError(f"freq_lg_k must be in [3, {MAX_FREQ_LG_K}], got {freq_lg_k}; "
                             "9 is the default")
        if not 4 <= hll_lg_k <= 21:
            raise ValueError(f"hll_lg_k must be in [4, 21], got {hll_lg_k}; 12 is the default")
        self.cap, self.freq_lg_k, self.hll_lg_k = cap, freq_lg_k, hll_lg_k
        self.nulls = 0
        self.other = 0
        self.counts: dict[str, int] = {}
        self.slack: dict[str, int] = {}  # only after merges past the cap (module docstring)
        self.freq = frequent_strings_sketch(freq_lg_k)
        self.hll = hll_sketch(hll_lg_k, HLL_TYPE)

    def update(self, values: Iterable[object]) -> None:
        """Add a batch (list, tuple, iterable or numpy array); one sketch call per distinct
        value of the batch.

        >>> s = CategoricalSummary(); s.update(np.array(["x", "y", "x"], dtype=object))
        >>> s.counts
        {'x': 2, 'y': 1}
        """
        seq = values.ravel().tolist() if isinstance(values, np.ndarray) else values
        if not isinstance(seq, (list, tuple)):
            seq = list(seq)
        try:
            batch = Counter(seq)
            plain = all(type(key) is str for key in batch)
        except TypeError:  # unhashable values (lists, dicts): their str is the category
            plain = False
        if not plain:
            # A Counter merges 1, 1.0 and True (equal keys), which are three categories;
            # count the categories themselves (None for every null).
            batch = Counter(v if type(v) is str else _category(v) for v in seq)
        # Counter keeps first-occurrence order, so the sketches and the capped counts see
        # new categories in the same order as value-by-value adds would.
        for category, n in batch.items():
            if category is None:
                self.nulls += n
            else:
                self._add_category(category, n)

    def add(self, value: object) -> None:
        """Add one value (None and NaN are nulls).

        >>> s = CategoricalSummary(); s.add(3); s.add(None); s.counts, s.nulls
        ({'3': 1}, 1)
        """
        category = value if type(value) is str else _category(value)
        if category is None:
            self.nulls += 1
        else:
            self._add_category(category, 1)

    def _add_category(self, category: str, n: int) -> None:
        self.freq.update(category, n)
        self.hll.update(category if category else _EMPTY_CATEGORY_KEY)
        if category in self.counts:
            self.counts[category] += n
        elif len(self.counts) < self.cap:
            self.counts[category] = n
            if self.other:  # only after a merge: earlier values may sit in `other`
                self.slack[category] = self.other
        else:
            self.other += n

    def count_bounds(self, category: object) -> tuple[int, int]:
        """Guaranteed (lower, upper) bounds of a category's count: exact for a category in
        `counts` without `slack`, else from `other` and the frequent-items sketch.

        >>> s = CategoricalSummary(cap=1); s.update(["a", "b", "b"])
        >>> s.count_bounds("a"), s.count_bounds("b"), s.count_bounds("z")
        ((1, 1), (2, 2), (0, 0))
        """
        name = category if type(category) is str else _category(category)
        if name is None:
            return (0, 0)
        lower = max(self.counts.get(name, 0), self.freq.get_lower_bound(name))
        upper = self.counts.get(name, 0) + (self.slack.get(name, 0) if name in self.counts
                                            else self.other)
        return (lower, max(lower, min(upper, self.freq.get_upper_bound(name))))

    @property
    def count(self) -> int:
        """Number of non-null values.

        >>> s = CategoricalSummary(); s.update(["a", None]); s.count
        1
        """
        return sum(self.counts.values()) + self.other

    @property
    def overflowed(self) -> bool:
        """True once some values fell outside the exact per-category counts.

        >>> CategoricalSummary().overflowed
        False
        """
        return self.other > 0

    def proportions(self) -> dict[str, float]:
        """Share of the non-null values per exactly counted category.

        >>> s = CategoricalSummary(); s.update(["a", "a", "b", "b"]); s.proportions()
        {'a': 0.5, 'b': 0.5}
        """
        total = self.count
        return {c: n / total for c, n in self.counts.items()} if total else {}

    def frequent_items(self, threshold: int = 0) -> tuple[FrequentItem, ...]:
        """Heavy hitters above `threshold`, without false positives, most frequent first.

        Each true count lies in [lower, upper]; `frequency_error` bounds upper - lower.

        >>> s = CategoricalSummary(); s.update(["a", "a", "b"])
        >>> [(f.item, f.estimate) for f in s.frequent_items()]
        [('a', 2), ('b', 1)]
        """
        rows = self.freq.get_frequent_items(frequent_items_error_type.NO_FALSE_POSITIVES,
                                            threshold)
        # Ties come out in the map's layout order; sort them by name to be deterministic.
        rows.sort(key=lambda row: (-row[1], row[0]))
        return tuple(FrequentItem(item, est, lo, hi) for item, est, lo, hi in rows)

    @property
    def frequency_error(self) -> float:
        """Largest possible error of any frequent-items estimate (epsilon x total weight).

        >>> CategoricalSummary().frequency_error
        0.0
        """
        return float(self.freq.epsilon * self.freq.total_weight)

    def distinct(self) -> DistinctCount:
        """Distinct-count estimate of the categories, with ~95% bounds.

        >>> s = CategoricalSummary(); s.update(["a", "b", "a"]); round(s.distinct().estimate, 6)
        2.0
        """
        return hll_distinct(self.hll)

    def to_bytes(self) -> bytes:
        """Compact bytes (layout in the module docstring).

        >>> s = CategoricalSummary(); s.update(["a", "b"])
        >>> CategoricalSummary.from_bytes(s.to_bytes()) == s
        True
        """
        freq, hll = freq_bytes(self.freq), hll_bytes(self.hll)
        parts = [_HEADER.pack(MAGIC, VERSION, self.freq_lg_k, self.hll_lg_k, self.cap,
                              self.nulls, self.other, len(self.counts), len(freq), len(hll))]
        for name in sorted(self.counts):
            encoded = name.encode("utf-8")
            parts += [_NAME_LEN.pack(len(encoded)), encoded,
                      _COUNTS.pack(self.counts[name], self.slack.get(name, 0))]
        parts += [freq, hll]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> CategoricalSummary:
        """The summary that `to_bytes` wrote.

        >>> CategoricalSummary.from_bytes(CategoricalSummary().to_bytes()).count
        0
        """
        if len(data) < _HEADER.size or data[:4] != MAGIC:
            raise ValueError(f"expected categorical summary bytes starting with {MAGIC!r}, got "
                             f"{bytes(data[:4])!r} ({len(data)} bytes); use "
                             "CategoricalSummary.to_bytes")
        (_, version, freq_lg_k, hll_lg_k, cap, nulls, other, n_cats, freq_len,
         hll_len) = _HEADER.unpack_from(data)
        if version != VERSION:
            raise ValueError(f"categorical summary format version {version} is not supported "
                             f"(this library reads {VERSION}); upgrade driftline")
        pos, counts, slack = _HEADER.size, {}, {}
        try:
            for _ in range(n_cats):
                (size,) = _NAME_LEN.unpack_from(data, pos)
                name = bytes(data[pos + 4:pos + 4 + size]).decode("utf-8")
                counts[name], missing = _COUNTS.unpack_from(data, pos + 4 + size)
                if missing:
                    slack[name] = missing
                pos += 4 + size + _COUNTS.size
        except (struct.error, UnicodeDecodeError) as err:
            raise ValueError(f"categorical summary bytes: category table is corrupt ({err})") from err
        if len(data) != pos + freq_len + hll_len:
            raise ValueError(f"categorical summary bytes: header announces "
                             f"{pos + freq_len + hll_len} bytes, got {len(data)}")
        return cls._assemble(cap, freq_lg_k, hll_lg_k, nulls, other, counts, slack,
                             data[pos:pos + freq_len], data[pos + freq_len:])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict: exact counts plus base64 sketch bytes.

        >>> s = CategoricalSummary(); s.update(["b", "a", "b"])
        >>> d = s.to_dict(); d["counts"], d["count"]
        ({'a': 1, 'b': 2}, 3)
        >>> CategoricalSummary.from_dict(d) == s
        True
        """
        return {
            "kind": "categorical", "version": VERSION, "cap": self.cap,
            "freq_lg_k": self.freq_lg_k, "hll_lg_k": self.hll_lg_k, "count": self.count,
            "nulls": self.nulls, "other": self.other, "overflowed": self.overflowed,
            "counts": {name: self.counts[name] for name in sorted(self.counts)},
            "slack": {name: self.slack[name] for name in sorted(self.slack)},
            "freq": b64encode(freq_bytes(self.freq)),
            "hll": b64encode(hll_bytes(self.hll)),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalSummary:
        """The summary that `to_dict` wrote (`count` and `overflowed` are derived, not read).

        >>> CategoricalSummary.from_dict(CategoricalSummary().to_dict()).nulls
        0
        """
        if d.get("kind") != "categorical" or d.get("version") != VERSION:
            raise ValueError(f"expected a categorical summary dict (kind 'categorical', "
                             f"version {VERSION}), got kind {d.get('kind')!r} "
                             f"version {d.get('version')!r}")
        return cls._assemble(d["cap"], d["freq_lg_k"], d["hll_lg_k"], d["nulls"], d["other"],
                             dict(d["counts"]), dict(d["slack"]), b64decode(d["freq"], "freq"),
                             b64decode(d["hll"], "hll"))

    @classmethod
    def _assemble(cls, cap: int, freq_lg_k: int, hll_lg_k: int, nulls: int, other: int,
                  counts: dict[str, int], slack: dict[str, int], freq: bytes,
                  hll: bytes) -> CategoricalSummary:
        s = cls(cap, freq_lg_k, hll_lg_k)
        s.nulls, s.other, s.counts, s.slack = nulls, other, counts, slack
        s.freq = frequent_strings_sketch.deserialize(bytes(freq))
        s.hll = hll_sketch.deserialize(bytes(hll))
        return s

    def __reduce__(self) -> tuple[Any, ...]:
        # DataSketches objects do not pickle; Bytewax snapshots pickle state, so go via bytes.
        return (CategoricalSummary.from_bytes, (self.to_bytes(),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CategoricalSummary) and self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]  # mutable: equal summaries may diverge later

    def __repr__(self) -> str:
        return (f"CategoricalSummary(count={self.count}, nulls={self.nulls}, "
                f"categories={len(self.counts)}, other={self.other})")


def merge(a: CategoricalSummary, b: CategoricalSummary) -> CategoricalSummary:
    """A new summary of both inputs' values (commutative; inputs untouched). Past the cap,
    see the module docstring for what stays exact.

    >>> a = CategoricalSummary(); a.update(["x", "y"])
    >>> b = CategoricalSummary(); b.update(["y", None])
    >>> m = merge(a, b); m.counts, m.nulls
    ({'x': 1, 'y': 2}, 1)
    """
    config_a = (a.cap, a.freq_lg_k, a.hll_lg_k)
    config_b = (b.cap, b.freq_lg_k, b.hll_lg_k)
    if config_a != config_b:
        raise ValueError(f"cannot merge categorical summaries with different settings: "
                         f"(cap, freq_lg_k, hll_lg_k) = {config_a} and {config_b}; "
                         "summarise both with the same config")
    if b.count == 0:
        a, b = b, a
    if a.count == 0:  # exact identity: a sketch union would drop the HLL's HIP estimator
        out = CategoricalSummary.from_bytes(b.to_bytes())
        out.nulls += a.nulls
        return out
    out = CategoricalSummary(*config_a)
    out.nulls = a.nulls + b.nulls
    totals = Counter(a.counts)
    totals.update(b.counts)
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    out.counts = dict(sorted(ranked[:a.cap]))
    out.other = a.other + b.other + sum(n for _, n in ranked[a.cap:])
    for name in out.counts:
        # A part that does not count the category may hold some of its values in `other`.
        missing = sum(part.slack.get(name, 0) if name in part.counts else part.other
                      for part in (a, b))
        if missing:
            out.slack[name] = missing
    out.freq.merge(a.freq)
    out.freq.merge(b.freq)
    out.hll = hll_merge(a.hll, b.hll, a.hll_lg_k)
    return out
