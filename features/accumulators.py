"""Per-window aggregation state for feature sets: small, mergeable, exact where it can be.

A feature set's features are grouped by (field, filter); each group shares one `Acc` that
keeps only what its features need. Accs merge (hopping windows are merged from panes), and
`reduce_feature` turns an Acc into one output value.

Exactness: counts, sums, means, min, max, std, first, last, share and rate are exact.
`quantile`/`median` are exact (linear interpolation, as numpy's default) up to
`EXACT_VALUES_CAP` values per window, then switch to a KLL sketch (k=200: normalized rank
error about 1.65% with 99% confidence). `distinct` is exact up to `EXACT_DISTINCT_CAP`
values, then an HLL sketch (lg_k=12: relative error about 1.6%, 1 standard deviation).

>>> plan = compile_plan((FeatureSpec("n", "count"), FeatureSpec("avg", "mean", field="price")))
>>> accs = new_accs(plan)
>>> for price in (10.0, 20.0):
...     add_event(plan, accs, 0, {"price": price})
>>> [reduce_feature(f, accs[plan.slot[i]], 60_000) for i, f in enumerate(plan.features)]
[2, 15.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datasketches import hll_sketch, kll_doubles_sketch

from features.feature_config import FeatureSpec, Filter

EXACT_VALUES_CAP = 10_000
EXACT_DISTINCT_CAP = 10_000
KLL_K = 200
HLL_LG_K = 12

# What a group of features needs kept.
SUM, MOMENTS, MINMAX, FIRSTLAST, VALUES, DISTINCT, CATS = 1, 2, 4, 8, 16, 32, 64
_NEEDS = {
    "count": 0, "rate": 0, "sum": SUM, "mean": SUM, "std": MOMENTS, "min": MINMAX, "max": MINMAX,
    "first": FIRSTLAST, "last": FIRSTLAST, "quantile": VALUES, "median": VALUES, "distinct": DISTINCT,
    "share": CATS,
}


class Acc:
    """Aggregation state of one (field, filter) group in one window or pane."""

    __slots__ = ("needs", "n", "total", "mean", "m2", "lo", "hi", "first_t", "first_v", "last_t", "last_v",
                 "values", "kll", "distinct", "hll", "cats")

    def __init__(self, needs: int) -> None:
        self.needs = needs
        self.n = 0
        self.total = 0.0
        self.mean = 0.0
        self.m2 = 0.0
        self.lo: Any = None
        self.hi: Any = None
        self.first_t = 0
        self.first_v: Any = None
        self.last_t = 0
        self.last_v: Any = None
        self.values: list[float] | None = [] if needs & VALUES else None
        self.kll: kll_doubles_sketch | None = None
        self.distinct: set[Any] | None = set() if needs & DISTINCT else None
        self.hll: hll_sketch | None = None
        self.cats: dict[Any, int] | None = {} if needs & CATS else None

    def add(self, t: int, v: Any) -> None:
        """Add one value observed at event time t (v is None for event-count groups)."""
        self.n += 1
        needs = self.needs
        if not needs:
            return
        if needs & SUM:
            self.total += v
        if needs & MOMENTS:  # Welford's update
            delta = v - self.mean
            self.mean += delta / self.n
            self.m2 += delta * (v - self.mean)
        if needs & MINMAX:
            if self.lo is None or v < self.lo:
                self.lo = v
            if self.hi is None or v > self.hi:
                self.hi = v
        if needs & FIRSTLAST:
            if self.n == 1 or t < self.first_t:
                self.first_t, self.first_v = t, v
            if self.n == 1 or t >= self.last_t:
                self.last_t, self.last_v = t, v
        if needs & VALUES:
            self._add_value(float(v))
        if needs & DISTINCT:
            self._add_distinct(v)
        if needs & CATS:
            cats = self.cats
            cats[v] = cats.get(v, 0) + 1

    def _add_value(self, v: float) -> None:
        if self.kll is not None:
            self.kll.update(v)
            return
        self.values.append(v)
        if len(self.values) > EXACT_VALUES_CAP:
            self.kll = kll_doubles_sketch(KLL_K)
            for x in self.values:
                self.kll.update(x)
            self.values = []

    def _add_distinct(self, v: Any) -> None:
        if self.hll is not None:
            self.hll.update(str(v))
            return
        self.distinct.add(v)
        if len(self.distinct) > EXACT_DISTINCT_CAP:
            self.hll = hll_sketch(HLL_LG_K)
            for x in self.distinct:
                self.hll.update(str(x))
            self.distinct = set()

    def merge(self, other: Acc) -> None:
        """Fold `other` (a later pane of the same group) into this one."""
        if other.n == 0:
            return
        n_a, n_b = self.n, other.n
        self.n = n_a + n_b
        needs = self.needs
        if needs & SUM:
            self.total += other.total
        if needs & MOMENTS:  # Chan et al.'s pairwise combination
            delta = other.mean - self.mean
            self.mean += delta * n_b / self.n
            self.m2 += other.m2 + delta * delta * n_a * n_b / self.n
        if needs & MINMAX:
            if self.lo is None or other.lo < self.lo:
                self.lo = other.lo
            if self.hi is None or other.hi > self.hi:
                self.hi = other.hi
        if needs & FIRSTLAST:
            if n_a == 0 or other.first_t < self.first_t:
                self.first_t, self.first_v = other.first_t, other.first_v
            if n_a == 0 or other.last_t >= self.last_t:
                self.last_t, self.last_v = other.last_t, other.last_v
        if needs & VALUES:
            if other.kll is not None:
                if self.kll is None:
                    self.kll = kll_doubles_sketch(KLL_K)
                    for x in self.values:
                        self.kll.update(x)
                    self.values = []
                self.kll.merge(other.kll)
            else:
                for x in other.values:
                    self._add_value(x)
        if needs & DISTINCT:
            if other.hll is not None:
                union = _hll_union(self, other)
                self.hll, self.distinct = union, set()
            else:
                for x in other.distinct:
                    self._add_distinct(x)
        if needs & CATS:
            cats = self.cats
            for k, c in other.cats.items():
                cats[k] = cats.get(k, 0) + c

    def __getstate__(self) -> dict[str, Any]:
        # Sketches pickle as their own serialized bytes (Bytewax snapshots pickle state).
        state = {name: getattr(self, name) for name in self.__slots__}
        state["kll"] = None if self.kll is None else self.kll.serialize()
        state["hll"] = None if self.hll is None else self.hll.serialize_compact()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        if state["kll"] is not None:
            self.kll = kll_doubles_sketch.deserialize(state["kll"])
        if state["hll"] is not None:
            self.hll = hll_sketch.deserialize(state["hll"])

    def copy(self) -> Acc:
        """An independent copy (merging into a copy leaves the pane untouched)."""
        clone = Acc(self.needs)
        clone.merge(self)
        return clone


def _hll_union(a: Acc, b: Acc) -> hll_sketch:
    from datasketches import hll_union

    union = hll_union(HLL_LG_K)
    for side in (a, b):
        if side.hll is not None:
            union.update(side.hll)
        else:
            sketch = hll_sketch(HLL_LG_K)
            for x in side.distinct:
                sketch.update(str(x))
            union.update(sketch)
    return union.get_result()


@dataclass(frozen=True)
class Plan:
    """A feature set compiled for the hot path.

    `groups` lists the (field, filter, needs) of each Acc; `slot[i]` is the Acc index that
    feature i reads. Slot 0 always counts every event of the window (`event_count`).
    """

    features: tuple[FeatureSpec, ...]
    groups: tuple[tuple[str | None, Filter | None, int], ...]
    slot: tuple[int, ...]


def compile_plan(features: tuple[FeatureSpec, ...]) -> Plan:
    """Group features by (field, filter) so each group keeps one Acc.

    >>> plan = compile_plan((FeatureSpec("a", "mean", field="p"), FeatureSpec("b", "max", field="p")))
    >>> plan.groups[1][0], plan.slot
    ('p', (1, 1))
    """
    keys: list[tuple[str | None, Filter | None]] = [(None, None)]
    needs: list[int] = [0]
    slot = []
    for feature in features:
        key = (feature.field, feature.where)
        if key not in keys:
            keys.append(key)
            needs.append(0)
        index = keys.index(key)
        needs[index] |= _NEEDS[feature.agg]
        slot.append(index)
    return Plan(features, tuple((f, w, n) for (f, w), n in zip(keys, needs)), tuple(slot))


def new_accs(plan: Plan) -> list[Acc]:
    """Fresh, empty Accs for one window or pane."""
    return [Acc(needs) for _, _, needs in plan.groups]


def add_event(plan: Plan, accs: list[Acc], t: int, fields: Mapping[str, Any]) -> None:
    """Add one event's values to the Accs of a window or pane (nulls are skipped)."""
    for acc, (field, where, _) in zip(accs, plan.groups):
        if where is not None and fields.get(where.field) not in where.values:
            continue
        if field is None:
            acc.add(t, None)
        else:
            v = fields.get(field)
            if v is not None:
                acc.add(t, v)


def merge_accs(into: list[Acc], other: list[Acc]) -> None:
    """Fold every Acc of `other` into the matching Acc of `into`."""
    for a, b in zip(into, other):
        a.merge(b)


def quantile(acc: Acc, q: float) -> float | None:
    """The q-quantile of the values: exact (linear interpolation) below the cap, KLL above.

    >>> acc = Acc(VALUES)
    >>> for v in (1.0, 2.0, 3.0, 4.0):
    ...     acc.add(0, v)
    >>> quantile(acc, 0.5)
    2.5
    """
    if acc.kll is not None:
        return float(acc.kll.get_quantile(q))
    values = acc.values
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def reduce_feature(feature: FeatureSpec, acc: Acc, window_ms: int) -> Any:
    """The value of one feature from its group's Acc; None when there is nothing to aggregate."""
    agg = feature.agg
    n = acc.n
    if agg == "count":
        return n
    if agg == "rate":
        return n / (window_ms / 1000) if window_ms > 0 else None
    if n == 0:
        return 0.0 if agg == "sum" else None
    if agg == "sum":
        return acc.total
    if agg == "mean":
        return acc.total / n
    if agg == "min":
        return acc.lo
    if agg == "max":
        return acc.hi
    if agg == "std":
        return math.sqrt(acc.m2 / (n - 1)) if n > 1 else None
    if agg == "first":
        return acc.first_v
    if agg == "last":
        return acc.last_v
    if agg in ("quantile", "median"):
        return quantile(acc, 0.5 if agg == "median" else feature.q)
    if agg == "distinct":
        return len(acc.distinct) if acc.hll is None else int(round(acc.hll.get_estimate()))
    if agg == "share":
        return acc.cats.get(feature.value, 0) / n
    raise ValueError(f"unknown aggregation {agg!r}")
