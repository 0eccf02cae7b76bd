"""Tumbling and hopping windows of one feature set as numpy arrays: a ring of panes per entity.

A window of `length` every `step` is the merge of `length / step` panes of one step
(tumbling: one pane). Each entity (a dense integer id, see `columnar`) owns `ring` ring
positions; pane `k` (events with `t // step == k`) lives at position `k % ring`, which
points into a shared pool of pane slots holding the aggregates (so an entity with one pane
holds one slot, not `ring`: a million sparse entities cost a few bytes of ring each). The ring holds
every pane an open window can still read: after an entity's windows up to watermark `w`
are emitted, its panes start after `w - length`, and a non-late event is at most
`lateness` behind the entity's watermark, so `ring = panes per window + ceil(lateness /
step) + 1` suffices once windows are closed before a later pane needs the slot (`fits`
says when a batch would need a slot still in use; the engine then feeds it in smaller
pieces).

A batch updates the panes with grouped numpy operations (sort by slot, `reduceat`,
`bincount`), whatever the number of events; emitting gathers each window's panes.
Aggregates are those of `features.windows.aggregates`, with the same results: counts,
sums, means, min, max, first, last, share and rate exact; std from moments merged with
Chan's formulas (equal to the per-event Welford update up to rounding); quantiles and
distinct counts exact up to the same caps, then the same sketches. Distinct values are bits
of a mask per slot while their field has shown at most 64 values (categories), sets after.

>>> from features.windows.config import FeatureSet, FeatureSpec, WindowSpec
>>> fs = FeatureSet("s", "area", "features.s", WindowSpec("hopping", 120_000, 60_000),
...                 (FeatureSpec("n", "count"), FeatureSpec("m", "max", "price")))
>>> panes = PaneWindows(fs, lateness_ms=10_000)
>>> panes.grow(2)
>>> columns = {"price": np.array([1.0, 5.0, 2.0])}
>>> panes.add(np.array([0, 0, 1]), np.array([1_000, 61_000, 5_000]), None, columns, {})
>>> block = panes.close(np.array([0, 1]), np.array([200_000, 60_000]))
>>> list(zip(block.entity_ids.tolist(), block.ends.tolist(), block.values["n"], block.values["m"]))
[(0, 60000, 1, 1.0), (0, 120000, 2, 5.0), (0, 180000, 1, 5.0), (1, 60000, 1, 2.0)]
"""

from __future__ import annotations

import heapq
import math
from hashlib import blake2b
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from features.windows.aggregates import (
    EXACT_DISTINCT_CAP,
    Distinct,
    _merge_distinct,
    distinct_count,
    quantile,
)
from features.windows.config import FeatureSet, FeatureSpec, Filter
from features.windows.ordering import spans, stable_order
from features.windows.value_log import ValueLog
from features.schema import EventSchema

try:
    from features.windows import _fold  # compiled by `pip install` (features/windows/_fold.c)
except ImportError:  # no C compiler where it was installed: numpy does the same operations
    _fold = None

NO_END = np.iinfo(np.int64).max  # an entity without panes
NO_PANE = np.iinfo(np.int64).min  # a ring position without a pane (any pane number, even negative, is larger)

def run_heads(keys: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts in `keys` (sorted, or grouped).

    >>> run_heads(np.array([3, 3, 5, 7, 7])).tolist()
    [0, 2, 3]
    """
    if not len(keys):
        return np.zeros(0, np.int64)
    change = np.empty(len(keys), bool)
    change[0] = True
    np.not_equal(keys[1:], keys[:-1], out=change[1:])
    return np.flatnonzero(change)


def position_in(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each value, its position in `keys` (distinct; every value must be one of them).

    >>> position_in(np.array([7, 3, 9]), np.array([9, 7, 9])).tolist()
    [2, 0, 2]
    """
    order = stable_order(keys)
    return order[np.searchsorted(keys[order], values)]


def run_ends(heads: np.ndarray, size: int) -> np.ndarray:
    """Where each run ends (exclusive), from its heads.

    >>> run_ends(np.array([0, 2, 3]), 5).tolist()
    [2, 3, 5]
    """
    ends = np.empty(len(heads), np.int64)
    ends[:-1] = heads[1:]
    if len(heads):
        ends[-1] = size
    return ends

_NEEDS = {
    "count": (), "rate": (), "sum": ("sum",), "mean": ("sum",), "std": ("moments",), "min": ("minmax",),
    "max": ("minmax",), "first": ("firstlast",), "last": ("firstlast",), "quantile": ("values",),
    "median": ("values",), "distinct": ("distinct",), "share": ("cats",),
}


def grown(array: np.ndarray, size: int, fill: int) -> np.ndarray:
    """`array` (int64) extended to `size` entries, the new ones `fill`.

    >>> grown(np.array([3, 4]), 4, -1).tolist()
    [3, 4, -1, -1]
    """
    out = np.full(size, fill, np.int64)
    out[: len(array)] = array
    return out


class FreeSlots:
    """The free slots of a pool of arrays that doubles when it runs out: a stack, so slots
    are reused in a deterministic order.

    >>> free, sizes = FreeSlots(), []
    >>> free.take(2, sizes.append).tolist(), sizes, free.size, free.held
    ([1, 0], [64], 64, 2)
    >>> free.give(np.array([1])); free.take(1, sizes.append).tolist()
    [1]
    """

    def __init__(self) -> None:
        self.stack = np.zeros(0, np.int64)  # free slots, the top `n` in use
        self.n = 0
        self.size = 0  # slots in the pool

    @property
    def held(self) -> int:
        """Slots in use."""
        return self.size - self.n

    def take(self, n: int, grow: Callable[[int], None]) -> np.ndarray:
        """`n` free slots; when there are too few, `grow(size)` resizes the pool's arrays first."""
        if n > self.n:
            old = self.size
            size = max(2 * old, old + n - self.n, 64)
            grow(size)
            stack = np.empty(size, np.int64)
            stack[: self.n] = self.stack[: self.n]
            stack[self.n: self.n + size - old] = np.arange(size - 1, old - 1, -1)
            self.stack, self.n, self.size = stack, self.n + size - old, size
        self.n -= n
        return self.stack[self.n: self.n + n].copy()

    def give(self, slots: np.ndarray) -> None:
        """Slots back to the pool (the caller has emptied them)."""
        self.stack[self.n: self.n + len(slots)] = slots
        self.n += len(slots)


class DueIndex:
    """Entity ids to look at when a watermark passes a time: `schedule` many at once, `pop` those due.

    Entries may be stale (the caller re-checks); each is popped once.

    >>> due = DueIndex()
    >>> due.schedule(np.array([3, 4, 3]), np.array([20, 10, 10]))
    >>> due.pop(15).tolist(), due.pop(15).tolist(), due.pop(99).tolist()
    ([3, 4], [], [3])
    """

    def __init__(self) -> None:
        self._times: list[int] = []
        self._ids: dict[int, list[np.ndarray]] = {}

    def schedule(self, entity_ids: np.ndarray, times: np.ndarray) -> None:
        order = stable_order(times)
        times, entity_ids = times[order], entity_ids[order]
        heads = run_heads(times)
        for time, part in zip(times[heads].tolist(), np.split(entity_ids, heads[1:])):
            bucket = self._ids.get(time)
            if bucket is None:
                self._ids[time] = bucket = []
                heapq.heappush(self._times, time)
            bucket.append(part)

    def pop(self, watermark: int) -> np.ndarray:
        """The distinct ids scheduled at times up to `watermark`."""
        parts = []
        while self._times and self._times[0] <= watermark:
            parts.extend(self._ids.pop(heapq.heappop(self._times)))
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


class ChangeFilter:
    """`emit = "changes"`: keep a window only when its values differ from the last ones written
    for its entity. Compares 64-bit BLAKE2 digests of the values' JSON, so the state is eight
    bytes per entity and the same in every process (recovery gives the same choices).

    >>> changes = ChangeFilter()
    >>> changes.grow(2)
    >>> changes.keep(np.array([0, 0, 0, 1]), {"n": [1, 1, 2, 1]}).tolist()
    [True, False, True, True]
    """

    def __init__(self) -> None:
        self.digests = np.zeros(0, np.int64)  # 0: nothing written yet

    def grow(self, capacity: int) -> None:
        if capacity > len(self.digests):
            grown = np.zeros(max(capacity, 2 * len(self.digests), 64), np.int64)
            grown[: len(self.digests)] = self.digests
            self.digests = grown

    def forget(self, entity_ids: np.ndarray) -> None:
        self.digests[entity_ids] = 0

    def keep(self, entity_ids: np.ndarray, values: Mapping[str, list[Any]]) -> np.ndarray:
        """Which rows to write, rows in order (an entity's windows by end); updates the last digests."""
        columns = list(values.values())
        rows = list(zip(*columns)) if columns else [()] * len(entity_ids)
        digests = self.digests
        keep = np.zeros(len(entity_ids), bool)
        for i, (e, row) in enumerate(zip(entity_ids.tolist(), rows)):
            digest = int.from_bytes(blake2b(orjson.dumps(row), digest_size=8).digest(), "little", signed=True) or 1
            if digest != digests[e]:
                digests[e] = digest
                keep[i] = True
        return keep


@dataclass(frozen=True, eq=False)
class WindowBlock:
    """Closed windows of one feature set: one row per (entity id, window), values by feature name."""

    entity_ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    counts: np.ndarray  # events in the window, whatever the filters
    values: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.ends)


class ObjectColumn:
    """An event field that is not read as numbers (filters, categories, distinct, first and
    last), as integer codes: encoded once per batch, then reordered and subset with numpy for
    every set and group that reads it.

    Codes follow dict equality (`1 == 1.0`), as the per-event sets, filters and `==` do; the
    original values stay at hand (`source`) for first and last.

    >>> c = ObjectColumn(["card", None, "cash", "card"])
    >>> c.codes.tolist(), c.vocabulary, c.none
    ([0, 1, 2, 0], ['card', None, 'cash'], 1)
    >>> c.table(lambda v: v == "cash")[c.codes].tolist()
    [False, False, True, False]
    >>> c.take(np.array([3, 2])).source.tolist()
    ['card', 'cash']
    """

    __slots__ = ("codes", "vocabulary", "none", "source")

    def __init__(self, values: Sequence[Any] | np.ndarray) -> None:
        index: dict[Any, int] = {}
        codes = np.fromiter(map(index.setdefault, values, range(len(values))), np.int64, len(values))
        # setdefault numbered each value by its first position: renumber densely.
        firsts = np.fromiter(index.values(), np.int64, len(index))
        dense = np.zeros(len(values), np.int64)
        dense[firsts] = np.arange(len(firsts))
        self.codes = dense[codes]
        self.vocabulary = list(index)
        none = index[None] if None in index else -1
        self.none = int(dense[none]) if none >= 0 else -1
        is_array = isinstance(values, np.ndarray) and values.dtype == object
        self.source = values if is_array else np.fromiter(values, object, len(values))

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, positions: np.ndarray) -> ObjectColumn:
        """The values at `positions` (a reorder or a subset), with the same codes."""
        out = ObjectColumn.__new__(ObjectColumn)
        out.codes, out.source = self.codes[positions], self.source[positions]
        out.vocabulary, out.none = self.vocabulary, self.none
        return out

    def table(self, test: Any) -> np.ndarray:
        """`test` of each vocabulary value, to index with codes."""
        return np.fromiter((bool(test(v)) for v in self.vocabulary), bool, len(self.vocabulary))


class _Group:
    """The state of the features that read one (field, filter) pair, for every pane slot."""

    def __init__(self, field: str | None, where: Filter | None, needs: set[str], shares: list[Any],
                 integer: bool) -> None:
        self.field = field
        self.where = where
        self.needs = needs
        self.shares = shares  # the values `share` features count
        self.integer = integer  # an int field: sums, min, max keep integers
        self.numeric = bool(needs & {"sum", "moments", "minmax", "values"})
        self.log = ValueLog() if "values" in needs else None
        # Distinct values as bits of a mask per slot while the field has shown at most 64 values
        # (categories: the usual case), numbered in `vocabulary`; then sets per slot, as the per-event engine.
        self.vocabulary: dict[Any, int] | None = {}

    def allocate(self, size: int) -> None:
        self.n = np.zeros(size, np.int64)
        if "sum" in self.needs:
            self.sum = np.zeros(size, np.float64)
        if "moments" in self.needs:
            self.mean = np.zeros(size, np.float64)
            self.m2 = np.zeros(size, np.float64)
        if "minmax" in self.needs:
            self.lo = np.full(size, np.inf)
            self.hi = np.full(size, -np.inf)
        if "firstlast" in self.needs:
            self.ft = np.full(size, NO_END, np.int64)
            self.fv = np.empty(size, object)
            self.lt = np.full(size, -1, np.int64)
            self.lv = np.empty(size, object)
        if "distinct" in self.needs:
            self.distinct = np.empty(size, object)
            self.masks = np.zeros(size, np.uint64)
        if "cats" in self.needs:
            self.eq = [np.zeros(size, np.int64) for _ in self.shares]

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)} | (
            {f"eq{i}": a for i, a in enumerate(self.eq)} if "cats" in self.needs else {})

    def resize(self, size: int) -> None:
        old = self.arrays()
        self.allocate(size)
        for name, array in old.items():
            target = self.eq[int(name[2:])] if name.startswith("eq") else getattr(self, name)
            target[: len(array)] = array

    def reset(self, slots: np.ndarray) -> None:
        self.n[slots] = 0
        if "sum" in self.needs:
            self.sum[slots] = 0.0
        if "moments" in self.needs:
            self.mean[slots] = 0.0
            self.m2[slots] = 0.0
        if "minmax" in self.needs:
            self.lo[slots] = np.inf
            self.hi[slots] = -np.inf
        if "firstlast" in self.needs:
            self.ft[slots] = NO_END
            self.fv[slots] = None
            self.lt[slots] = -1
            self.lv[slots] = None
        if self.log is not None:
            self.log.drop(slots)
        if "distinct" in self.needs:
            self.distinct[slots] = None
            self.masks[slots] = 0
        if "cats" in self.needs:
            for eq in self.eq:
                eq[slots] = 0

    def add(self, slots: np.ndarray, times: np.ndarray, columns: Mapping[str, np.ndarray],
            objects: Mapping[str, ObjectColumn], runs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Add events (sorted by slot, arrival order within a slot); `runs` are the events' runs of
        one slot (heads, slots, counts), shared by the groups."""
        keep = None
        if self.where is not None:
            where = objects[self.where.field]
            keep = where.table(lambda v, values=self.where.values: v in values)[where.codes]
        if self.field is None:  # counts only: one grouped sum over the shared runs
            heads, at, counts = runs
            self.n[at] += counts if keep is None else np.add.reduceat(keep.astype(np.int64), heads)
            return
        if self.field is not None:
            if self.numeric:
                v = columns[self.field]
                present = ~np.isnan(v)
            else:
                present = objects[self.field].codes != objects[self.field].none
            keep = present if keep is None else keep & present
        if keep is not None:
            if not keep.any():
                return
            slots, times = slots[keep], times[keep]
        folded = self.numeric and _fold is not None
        if not folded or self.log is not None or self.needs & {"firstlast", "distinct", "cats"}:
            heads = run_heads(slots)
            at = slots[heads]
            ends = run_ends(heads, len(slots))
            counts = ends - heads
            n_before = self.n[at]
        if self.numeric:
            v = columns[self.field] if keep is None else columns[self.field][keep]
        if self.needs & {"firstlast", "distinct", "cats"}:
            field = objects[self.field]
            codes = field.codes if keep is None else field.codes[keep]
            kept = np.arange(len(codes)) if keep is None else np.flatnonzero(keep)  # positions in `field`
        # Sums, moments, min and max take the events one at a time, in order: the same roundings
        # as the per-event engine, so a window's values do not depend on how the stream was cut
        # into batches. Compiled (`_fold`), or with ufunc.at and a lockstep over the runs.
        if folded:
            minmax = "minmax" in self.needs
            moments = "moments" in self.needs
            _fold.fold(np.ascontiguousarray(slots), np.ascontiguousarray(v), self.n,
                       self.sum if "sum" in self.needs else None, self.mean if moments else None,
                       self.m2 if moments else None, self.lo if minmax else None, self.hi if minmax else None)
        else:
            self.n[at] = n_before + counts
            if "sum" in self.needs:
                np.add.at(self.sum, slots, v)
            if "moments" in self.needs:
                _welford(self.mean, self.m2, at, n_before, heads, counts, v)
            if "minmax" in self.needs:
                self.lo[at] = np.minimum(self.lo[at], np.minimum.reduceat(v, heads))
                self.hi[at] = np.maximum(self.hi[at], np.maximum.reduceat(v, heads))
        if "firstlast" in self.needs:
            run = np.repeat(np.arange(len(heads)), counts)
            low = np.minimum.reduceat(times, heads)
            first = np.flatnonzero(times == low[run])
            first = first[run_heads(run[first])]  # earliest arrival among the earliest
            high = np.maximum.reduceat(times, heads)
            last = np.flatnonzero(times == high[run])
            last = last[run_ends(run_heads(run[last]), len(last)) - 1]  # latest arrival among the latest
            replace = low < self.ft[at]
            self.ft[at[replace]] = low[replace]
            self.fv[at[replace]] = field.source[kept[first[replace]]]
            replace = high >= self.lt[at]
            self.lt[at[replace]] = high[replace]
            self.lv[at[replace]] = field.source[kept[last[replace]]]
        if self.log is not None:
            self.log.add(slots, v, heads, counts, n_before)
        if "distinct" in self.needs:
            bits = self._bits(field) if self.vocabulary is not None else None
            if bits is not None:
                masks = np.left_shift(np.uint64(1), bits[codes].astype(np.uint64))
                self.masks[at] |= np.bitwise_or.reduceat(masks, heads)
            else:
                _collect_distinct(self.distinct, at, heads, ends, field.source[kept].tolist())
        if "cats" in self.needs:
            table = np.array([[bool(v == value) for value in self.shares] for v in field.vocabulary], np.int64)
            hits = np.add.reduceat(table.reshape(-1, len(self.shares))[codes], heads, axis=0)
            for i, eq in enumerate(self.eq):
                eq[at] += hits[:, i]

    def _bits(self, field: ObjectColumn) -> np.ndarray | None:
        """Each of the batch's values' bit, numbering new values; None once past 64 values (the
        masks are then turned into sets, for good)."""
        vocabulary = self.vocabulary
        assert vocabulary is not None
        bits = np.fromiter((vocabulary.setdefault(v, len(vocabulary)) for v in field.vocabulary), np.int64,
                           len(field.vocabulary))
        if len(vocabulary) <= 64:
            return bits
        values = list(vocabulary)
        for slot in np.flatnonzero(self.masks).tolist():
            mask = int(self.masks[slot])
            self.distinct[slot] = {values[b] for b in range(64) if mask >> b & 1}
        self.masks[:] = 0
        self.vocabulary = None
        return None

    def window(self, slots: np.ndarray, valid: np.ndarray) -> dict[str, Any]:
        """This group's state over each window's panes: `slots` and `valid` are (windows, panes)."""
        out = self._merged_in_c(slots, valid) if _fold is not None else self._merged_in_numpy(slots, valid)
        if "firstlast" in self.needs:
            ft = np.where(valid, self.ft[slots], NO_END)
            lt = np.where(valid, self.lt[slots], -1)
            rows = np.arange(len(slots))
            first = slots[rows, ft.argmin(axis=1)]
            last = slots[rows, lt.argmax(axis=1)]
            out["first"] = np.where(ft.min(axis=1) != NO_END, self.fv[first], None)
            out["last"] = np.where(lt.max(axis=1) >= 0, self.lv[last], None)
        if self.log is not None:
            out["sorted"], out["values"] = self.log.gather(slots, valid)
        if "distinct" in self.needs and self.vocabulary is not None:
            masks = np.bitwise_or.reduce(np.where(valid, self.masks[slots], np.uint64(0)), axis=1)
            out["distinct"] = np.bitwise_count(masks).astype(np.int64)
        elif "distinct" in self.needs:
            out["distinct"] = [_merged(self.distinct, s, ok, _merge_distinct, set()) for s, ok in zip(slots, valid)]
        if "cats" in self.needs:
            out["eq"] = [np.where(valid, eq[slots], 0).sum(axis=1) for eq in self.eq]
        return out

    def _merged_in_c(self, slots: np.ndarray, valid: np.ndarray) -> dict[str, Any]:
        """`_merged_in_numpy`'s counts, sums, moments, min and max by `_fold.merge`: one pass."""
        assert _fold is not None
        windows = len(slots)
        sums, moments, minmax = "sum" in self.needs, "moments" in self.needs, "minmax" in self.needs
        out: dict[str, Any] = {"n": np.empty(windows, np.int64)}
        for name, wanted in (("sum", sums), ("m2", moments), ("lo", minmax), ("hi", minmax)):
            if wanted:
                out[name] = np.empty(windows)
        _fold.merge(np.ascontiguousarray(slots, np.int64), np.ascontiguousarray(valid, bool), self.n,
                    self.sum if sums else None, self.mean if moments else None, self.m2 if moments else None,
                    self.lo if minmax else None, self.hi if minmax else None,
                    out["n"], out.get("sum"), out.get("m2"), out.get("lo"), out.get("hi"))
        return out

    def _merged_in_numpy(self, slots: np.ndarray, valid: np.ndarray) -> dict[str, Any]:
        """Counts, sums, moments (m2), min and max of each window's valid panes, merged pane by
        pane in time order, as the per-event engine merges them."""
        n = np.where(valid, self.n[slots], 0)
        out: dict[str, Any] = {"n": n.sum(axis=1)}
        if "sum" in self.needs:
            total = np.zeros(len(slots))
            for j in range(slots.shape[1]):
                total = total + np.where(valid[:, j], self.sum[slots[:, j]], 0.0)
            out["sum"] = total
        if "moments" in self.needs:  # Chan et al.'s pairwise merge
            count = np.zeros(len(slots), np.int64)
            mean = np.zeros(len(slots))
            m2 = np.zeros(len(slots))
            for j in range(slots.shape[1]):
                nb = n[:, j]
                has = nb > 0
                total = np.where(has, count + nb, 1)
                delta = self.mean[slots[:, j]] - mean
                m2 = np.where(has, m2 + (self.m2[slots[:, j]] + delta * delta * count * nb / total), m2)
                mean = np.where(has, mean + delta * nb / total, mean)
                count = count + nb
            out["m2"] = m2
        if "minmax" in self.needs:
            out["lo"] = np.where(valid, self.lo[slots], np.inf).min(axis=1)
            out["hi"] = np.where(valid, self.hi[slots], -np.inf).max(axis=1)
        return out


def _welford(mean_of: np.ndarray, m2_of: np.ndarray, at: np.ndarray, n_before: np.ndarray, heads: np.ndarray,
             counts: np.ndarray, v: np.ndarray) -> None:
    """Welford's update of each slot `at[r]` with its run `v[heads[r]:heads[r] + counts[r]]`, event by
    event: the j-th events of all runs in one numpy step (the same float operations, in the same
    order, as the per-event engine), then the few runs longer than most in Python.

    >>> mean, m2 = np.zeros(2), np.zeros(2)
    >>> _welford(mean, m2, np.array([0, 1]), np.array([0, 0]), np.array([0, 3]), np.array([3, 1]),
    ...          np.array([1.0, 2.0, 6.0, 5.0]))
    >>> mean.tolist(), m2.tolist()
    ([3.0, 5.0], [14.0, 0.0])
    """
    order = stable_order(-counts)  # the longest runs first: the runs still going are a prefix
    at, heads, counts = at[order], heads[order], counts[order]
    k = n_before[order].astype(np.float64)  # values seen, as the float divisor (exact: small integers)
    mean, m2 = mean_of[at], m2_of[at]
    longer = (len(counts) - np.cumsum(np.bincount(counts))).tolist()  # runs longer than j, for each j
    # The lockstep's steps (while more than 8 runs are still going: then a handful of long runs
    # finish in the loop below): step j reads the j-th event of the first `sizes[j]` runs, all
    # gathered at once.
    sizes = [len(counts)]
    while sizes[-1] > 8 and longer[len(sizes)] > 8:
        sizes.append(longer[len(sizes)])
    j = 0
    if sizes[0] > 8:
        x_all = v[_runs_index(heads[: sizes[0]], sizes)]
        start = 0
        for j, active in enumerate(sizes):
            x = x_all[start: start + active]
            start += active
            mu, kk = mean[:active], k[:active]
            kk += 1.0
            d = x - mu
            mu += d / kk
            m2[:active] += d * (x - mu)
        j += 1
    active = longer[j] if j else len(counts)
    if active:
        tails = counts[:active] - j
        values = v[spans(heads[:active] + j, tails)].tolist()
        start = 0
        for r, length in enumerate(tails.tolist()):
            kr, mr, qr = int(k[r]), float(mean[r]), float(m2[r])
            for x in values[start: start + length]:
                kr += 1
                d = x - mr
                mr += d / kr
                qr += d * (x - mr)
            start += length
            mean[r], m2[r] = mr, qr
    mean_of[at], m2_of[at] = mean, m2


def _runs_index(heads: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Positions of the j-th event of the first `sizes[j]` runs (starting at `heads`), step by step.

    >>> _runs_index(np.array([0, 3, 5]), [3, 2]).tolist()
    [0, 3, 5, 1, 4]
    """
    steps = np.asarray(sizes, np.int64)
    return heads[spans(np.zeros(len(steps), np.int64), steps)] + np.repeat(np.arange(len(steps)), steps)


def _collect_distinct(store: np.ndarray, at: np.ndarray, heads: np.ndarray, ends: np.ndarray,
                      items: list[Any]) -> None:
    """Add each slot's run of items to the slot's set of distinct values, which becomes a
    sketch past the cap, as `features.windows.aggregates` does."""
    for slot, a, b in zip(at.tolist(), heads.tolist(), ends.tolist()):
        current = store[slot]
        if current is None:
            current = store[slot] = set()
        if type(current) is set:
            current.update(items[a:b])
            if len(current) > EXACT_DISTINCT_CAP:
                store[slot] = Distinct(current)
        else:
            for x in items[a:b]:
                current.update(x)


def _merged(store: np.ndarray, slots: np.ndarray, valid: np.ndarray, merge: Any, empty: Any) -> Any:
    parts = [store[s] for s, ok in zip(slots.tolist(), valid.tolist()) if ok and store[s] is not None]
    if len(parts) == 1:
        return parts[0]
    merged = type(empty)()
    for part in parts:
        merged = merge(merged, part)
    return merged


def _or_none(values: np.ndarray, defined: np.ndarray) -> list[Any]:
    """`values` as a list, None where not `defined`.

    >>> _or_none(np.array([1.5, 0.0]), np.array([True, False]))
    [1.5, None]
    """
    out = values.tolist()
    if not defined.all():
        for i in np.flatnonzero(~defined).tolist():
            out[i] = None
    return out


def _number(x: float, integer: bool) -> int | float:
    return int(x) if integer else x


class ColumnAggregates:
    """A feature set's aggregations over many windows at once, one slot per pane or window.

    Features that read the same (field, filter) share a group, as in
    `features.windows.aggregates`; `add` takes events sorted by slot (arrival order within a
    slot), `values` merges slots into windows and returns each feature's values.
    """

    def __init__(self, feature_set: FeatureSet, schema: EventSchema | None = None, size: int = 0) -> None:
        integers = {f.name for f in schema.fields if f.type == "int"} if schema is not None else set()
        groups: dict[tuple[str | None, Filter | None], tuple[set[str], list[Any]]] = {}
        for feature in feature_set.features:
            needs, shares = groups.setdefault((feature.field, feature.where), (set(), []))
            needs.update(_NEEDS[feature.agg])
            if feature.agg == "share" and feature.value not in shares:
                shares.append(feature.value)
        self.features = feature_set.features
        self.groups = [_Group(f, w, needs, shares, f in integers) for (f, w), (needs, shares) in groups.items()]
        self._group_of = {key: i for i, key in enumerate(groups)}
        # The event fields the groups read: as float64 columns, or as Python values.
        self.fields = sorted({g.field for g in self.groups if g.field is not None and g.numeric})
        self.objects = sorted({g.where.field for g in self.groups if g.where is not None}
                              | {g.field for g in self.groups if g.field is not None and not g.numeric}
                              | {g.field for g in self.groups if g.field is not None
                                 and g.needs & {"firstlast", "distinct", "cats"}})
        for group in self.groups:
            group.allocate(size)

    def resize(self, size: int) -> None:
        for group in self.groups:
            group.resize(size)

    def reset(self, slots: np.ndarray) -> None:
        for group in self.groups:
            group.reset(slots)

    def add(self, slots: np.ndarray, times: np.ndarray, columns: Mapping[str, np.ndarray],
            objects: Mapping[str, ObjectColumn]) -> None:
        """Add events sorted by slot (arrival order within a slot); columns and objects in that order."""
        if not len(slots):
            return
        heads = run_heads(slots)
        runs = (heads, slots[heads], run_ends(heads, len(slots)) - heads)
        for group in self.groups:
            group.add(slots, times, columns, objects, runs)

    def values(self, slots: np.ndarray, valid: np.ndarray, length_ms: int | np.ndarray) -> dict[str, list[Any]]:
        """Each feature's values over windows made of `slots` (windows x slots, `valid` where used)."""
        states = [group.window(slots, valid) for group in self.groups]
        values: dict[str, list[Any]] = {}
        for feature in self.features:
            i = self._group_of[(feature.field, feature.where)]
            values[feature.name] = _feature_values(feature, self.groups[i], states[i], length_ms)
        return values


class PaneWindows:
    """The open tumbling or hopping windows of one feature set, for the entities of one shard."""

    def __init__(self, feature_set: FeatureSet, lateness_ms: int, schema: EventSchema | None = None) -> None:
        window = feature_set.window
        if window.type not in ("tumbling", "hopping") or feature_set.emit not in ("final", "changes"):
            raise ValueError(f"pane windows serve tumbling and hopping sets with emit = final or changes, "
                             f"not {window.type} with {feature_set.emit}")
        # emit = "changes": only windows whose values changed, and one empty window once the
        # entity's last pane has left (so a reader knows its values went back to empty).
        self.changes = ChangeFilter() if feature_set.emit == "changes" else None
        self.empty_end = np.zeros(0, np.int64)  # with changes: the end of the empty window still to write
        self.spec = feature_set
        self.step = window.step_ms if window.type == "hopping" else window.length_ms
        self.panes = window.length_ms // self.step
        self.ring = self.panes + math.ceil(lateness_ms / self.step) + 1
        self.aggregates = ColumnAggregates(feature_set, schema)
        self.fields, self.objects = self.aggregates.fields, self.aggregates.objects
        self.capacity = 0
        self.slot = np.zeros(0, np.int32)  # ring position (entity * ring + k % ring) -> pool slot, -1: free
        self.next_end = np.zeros(0, np.int64)
        self.due = DueIndex()  # entities by the end of their next window
        # The pool: each slot holds one pane (its number, its events, its aggregates).
        self.pane_k = np.zeros(0, np.int64)
        self.count = np.zeros(0, np.int64)
        self.free = FreeSlots()

    # ------------------------------------------------------------------ state size

    def grow(self, capacity: int) -> None:
        """Make room for entity ids below `capacity`."""
        if capacity <= self.capacity:
            return
        size = max(capacity, 2 * self.capacity, 64)
        slot = np.full(size * self.ring, -1, np.int32)
        slot[: len(self.slot)] = self.slot
        next_end = np.full(size, NO_END, np.int64)
        next_end[: len(self.next_end)] = self.next_end
        self.slot, self.next_end = slot, next_end
        if self.changes is not None:
            self.changes.grow(size)
            empty_end = np.full(size, -1, np.int64)
            empty_end[: len(self.empty_end)] = self.empty_end
            self.empty_end = empty_end
        self.capacity = size

    def _allocate(self, n: int) -> np.ndarray:
        """`n` free pool slots (the pool doubles when it runs out)."""
        return self.free.take(n, self._grow_pool)

    def _grow_pool(self, size: int) -> None:
        self.pane_k = grown(self.pane_k, size, NO_PANE)
        self.count = grown(self.count, size, 0)
        self.aggregates.resize(size)

    def _release(self, slots: np.ndarray) -> None:
        """Return pool slots (their panes have been emitted) to the free stack, emptied."""
        self.pane_k[slots] = NO_PANE
        self.count[slots] = 0
        self.aggregates.reset(slots)
        self.free.give(slots)

    def _panes_at(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pool slot (0 where none: mask with the pane numbers) and pane number (NO_PANE: none) at ring positions."""
        slots = self.slot[positions].astype(np.int64)
        held = slots >= 0
        k = np.where(held, self.pane_k[np.where(held, slots, 0)] if len(self.pane_k) else NO_PANE, NO_PANE)
        return np.where(held, slots, 0), k

    def live(self, entity_ids: np.ndarray) -> np.ndarray:
        """Whether each entity still has panes (an open window), or an empty window to write."""
        return self.next_end[entity_ids] != NO_END

    def forget(self, entity_ids: np.ndarray) -> None:
        """The entities' ids are being released (they hold no panes)."""
        if self.changes is not None:
            self.changes.forget(entity_ids)

    # ------------------------------------------------------------------ adding

    def fits(self, entity_ids: np.ndarray, times: np.ndarray) -> bool:
        """True when every event's pane has its slot to itself (free, or already this pane)."""
        k = times // self.step
        positions = entity_ids * self.ring + k % self.ring
        _, held = self._panes_at(positions)
        if np.any((held != NO_PANE) & (held != k)):
            return False
        if len(k) and int(k.max()) - int(k.min()) < self.ring:
            return True  # equal ring positions of one entity then mean equal panes: no sort needed
        order = stable_order(positions)
        s, kk = positions[order], k[order]
        return not np.any((s[1:] == s[:-1]) & (kk[1:] != kk[:-1]))

    def add(self, entity_ids: np.ndarray, times: np.ndarray, arrivals: np.ndarray | None,
            columns: Mapping[str, np.ndarray], objects: Mapping[str, ObjectColumn]) -> None:
        """Add non-late events (arrival order; `arrivals` is not needed here); the caller has checked `fits`."""
        if not len(times):
            return
        k = times // self.step
        positions = entity_ids * self.ring + k % self.ring
        new = self.slot[positions] < 0
        if new.any():
            fresh, first = np.unique(positions[new], return_index=True)
            taken = self._allocate(len(fresh))
            self.slot[fresh] = taken
            self.pane_k[taken] = k[new][first]
            ends = (k[new] + 1) * self.step
            eids = entity_ids[new]
            earlier = ends < self.next_end[eids]
            if earlier.any():
                eids, ends = eids[earlier], ends[earlier]
                np.minimum.at(self.next_end, eids, ends)
                self.due.schedule(eids, ends)
        slots = self.slot[positions].astype(np.int64)
        order = stable_order(slots)
        slots, times = slots[order], times[order]
        np.add.at(self.count, slots, 1)
        sorted_columns = {name: columns[name][order] for name in self.fields}
        sorted_objects = {name: objects[name].take(order) for name in self.objects}
        self.aggregates.add(slots, times, sorted_columns, sorted_objects)

    # ------------------------------------------------------------------ closing

    def close(self, entity_ids: np.ndarray, watermarks: np.ndarray) -> WindowBlock:
        """Emit, for each entity, its windows ending at or before its watermark; drop the panes
        no later window reads. Rows are ordered by entity, then window end."""
        step, panes, ring = self.step, self.panes, self.ring
        first = self.next_end[entity_ids]
        due = first <= watermarks
        entity_ids, first, watermarks = entity_ids[due], first[due], watermarks[due]
        if not len(entity_ids):
            return _empty_block(self)
        own = entity_ids[:, None] * ring + np.arange(ring)[None, :]
        own_slots, k_all = self._panes_at(own)
        last_pane = k_all.max(axis=1)
        has_panes = last_pane != NO_PANE
        last = np.minimum(watermarks - watermarks % step,  # no window past the panes
                          (np.where(has_panes, last_pane, 0) + panes) * step)
        if self.changes is not None:  # an entity waiting only for its empty window
            waiting = self.empty_end[entity_ids]
            last = np.where(~has_panes, waiting, np.maximum(last, np.minimum(waiting, watermarks)))
        last = np.maximum(last, first)
        n_ends = (last - first) // step + 1
        eids = np.repeat(entity_ids, n_ends)
        offsets = spans(np.zeros(len(n_ends), np.int64), n_ends)
        ends = np.repeat(first, n_ends) + offsets * step
        k = ends[:, None] // step - panes + np.arange(panes)[None, :]
        slots, held = self._panes_at(eids[:, None] * ring + k % ring)
        valid = held == k
        counts = np.where(valid, self.count[slots], 0).sum(axis=1)
        keep = counts > 0  # windows over gaps between an entity's panes have no row
        if self.changes is not None:
            # ... except, with changes, the first window of a gap after windows with events (and
            # the empty window after the last ones): a reader learns the values went back to empty.
            gap_start = np.zeros(len(counts), bool)
            gap_start[1:] = (counts[1:] == 0) & (counts[:-1] > 0) & (eids[1:] == eids[:-1])
            keep |= gap_start | (ends == self.empty_end[eids])
        eids, ends, slots, valid, counts = eids[keep], ends[keep], slots[keep], valid[keep], counts[keep]
        block = self._block(eids, ends, slots, valid, counts)
        if self.changes is not None:
            self.empty_end[np.unique(eids)] = -1  # written (or overtaken by events)
            written = self.changes.keep(eids, block.values)
            block = _take(block, written)
        # Drop what no later window reads: panes whose last window has just been emitted.
        # Per entity of this call (not per entity of the shard: a close touches a few of many).
        done = entity_ids
        row_entity = position_in(done, eids)
        last_end = np.zeros(len(done), np.int64)
        np.maximum.at(last_end, row_entity, ends)
        drop = (k_all != NO_PANE) & ((k_all + panes) * step <= last_end[:, None])
        if drop.any():
            self.slot[own[drop]] = -1
            self._release(own_slots[drop])
        remaining = np.where(drop | (k_all == NO_PANE), np.iinfo(np.int64).max, k_all).min(axis=1)
        alive = remaining != np.iinfo(np.int64).max
        nxt = np.full(len(done), NO_END, np.int64)
        nxt[alive] = np.maximum(last_end[alive] + step, (remaining[alive] + 1) * step)
        if self.changes is not None:  # the empty window after the last window with events, still to write
            last_full = np.zeros(len(done), np.int64)
            np.maximum.at(last_full, row_entity, np.where(counts > 0, ends, 0))
            # After its last pane, or before its next one when a gap follows (the next window
            # with events starts past the one after the last written).
            emptied = (last_full > 0) & (last_full == last_end) & (~alive | (nxt > last_end + step))
            nxt[emptied] = last_full[emptied] + step
            self.empty_end[done[emptied]] = nxt[emptied]
            alive = alive | emptied
        self.next_end[done] = nxt
        if alive.any():
            self.due.schedule(done[alive], nxt[alive])
        return block

    def flush(self, entity_ids: np.ndarray | None = None) -> WindowBlock:
        """Emit every open window (the inputs have ended), and with changes the emptied windows
        after them; of the entities `entity_ids` only, if given."""
        blocks = []
        while True:
            live = (np.flatnonzero(self.next_end[: self.capacity] != NO_END) if entity_ids is None
                    else entity_ids[self.next_end[entity_ids] != NO_END])
            if not live.size:
                break
            blocks.append(self.close(live, np.full(len(live), np.iinfo(np.int64).max // 4, np.int64)))
        if len(blocks) == 1:
            return blocks[0]
        if not blocks:
            return _empty_block(self)
        order = np.lexsort((np.concatenate([b.ends for b in blocks]), np.concatenate([b.entity_ids for b in blocks])))
        merged = WindowBlock(*(np.concatenate([getattr(b, f) for b in blocks])[order]
                               for f in ("entity_ids", "starts", "ends", "counts")),
                             {name: [v for b in blocks for v in b.values[name]] for name in blocks[0].values})
        picked = order.tolist()
        return WindowBlock(merged.entity_ids, merged.starts, merged.ends, merged.counts,
                           {name: [column[i] for i in picked] for name, column in merged.values.items()})

    def _block(self, eids: np.ndarray, ends: np.ndarray, slots: np.ndarray, valid: np.ndarray,
               counts: np.ndarray) -> WindowBlock:
        length = self.step * self.panes
        return WindowBlock(eids, ends - length, ends, counts, self.aggregates.values(slots, valid, length))


def _take(block: WindowBlock, keep: np.ndarray) -> WindowBlock:
    if keep.all():
        return block
    picked = keep.tolist()
    return WindowBlock(block.entity_ids[keep], block.starts[keep], block.ends[keep], block.counts[keep],
                       {name: [v for v, k in zip(column, picked) if k] for name, column in block.values.items()})


def _empty_block(panes: PaneWindows) -> WindowBlock:
    empty = np.zeros(0, np.int64)
    return WindowBlock(empty, empty, empty, empty, {f.name: [] for f in panes.spec.features})


def _feature_values(feature: FeatureSpec, group: _Group, state: dict[str, Any], length_ms: int | np.ndarray,
                    ) -> list[Any]:
    """One feature's values over the windows of a block, as Python values (None where undefined);
    `length_ms` is the windows' length, one for all or one per window. The same float operations
    as `features.windows.aggregates`, on whole columns."""
    n = state["n"]
    agg = feature.agg
    if agg == "count":
        return n.tolist()
    if agg == "rate":
        lengths = np.broadcast_to(np.asarray(length_ms, np.int64), n.shape)
        return _or_none(n / (np.maximum(lengths, 1) / 1000), lengths > 0)
    integer = group.integer
    if agg == "sum":
        return [int(x) for x in state["sum"].tolist()] if integer else state["sum"].tolist()
    if agg == "mean":
        return _or_none(state["sum"] / np.maximum(n, 1), n > 0)
    if agg == "std":
        return _or_none(np.sqrt(state["m2"] / np.maximum(n - 1, 1)), n > 1)
    if agg in ("min", "max"):
        side = state["lo" if agg == "min" else "hi"]
        if integer:
            return [int(x) if c else None for x, c in zip(side.tolist(), n.tolist())]
        return _or_none(side, n > 0)
    if agg in ("first", "last"):
        return state[agg].tolist()
    if agg in ("quantile", "median"):
        q = 0.5 if agg == "median" else feature.q
        ordered, starts, counts = state["sorted"]  # `quantile`'s interpolation, for every window at once
        position = q * (counts - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, counts - 1)
        has = counts > 0
        a = ordered[np.where(has, starts + low, 0)] if len(ordered) else np.zeros(len(counts))
        b = ordered[np.where(has, starts + high, 0)] if len(ordered) else np.zeros(len(counts))
        values = _or_none(a + (b - a) * (position - low), has)
        for i, merged in state.get("values", {}).items():  # windows past the exact cap: sketches
            values[i] = quantile(merged, q)
        return values
    if agg == "distinct":
        if isinstance(state["distinct"], np.ndarray):  # exact counts, from the masks
            return state["distinct"].tolist()
        return [distinct_count(v) for v in state["distinct"]]
    if agg == "share":
        eq = state["eq"][group.shares.index(feature.value)]
        return _or_none(eq / np.maximum(n, 1), n > 0)
    raise ValueError(f"unknown aggregation {agg!r}")
