"""The columnar feature engine for one shard of entities: a batch in, closed windows out.

The semantics are `features.windows.engine.ShardEngine`'s (kept as the test oracle), decided
for a whole `EventBatch` with numpy instead of one event at a time:

- an event is late when it is behind its input partition's watermark, the stream's
  watermark, or its entity's watermark (the largest event time of the entity's earlier
  non-late events, less the lateness): a grouped running maximum over the batch;
- tumbling and hopping sets with `emit = "final"` live in `PaneWindows` (numpy panes per
  entity), session sets in `SessionWindows` (a pool of open sessions), last-N sets in
  `LastNWindows` (a log of arrays); `emit = "update"` sets keep their per-event state
  classes, fed the same accepted events in the same order;
- a window closes when its entity's watermark or the stream's passes its end. Closing an
  entity's windows at the end of a batch, rather than before each of its later events,
  emits the same windows: a non-late event never falls into a window its entity's
  watermark has passed.

**Bounded state.** Entities get dense integer ids per shard. Once an entity has no open
window in any set and its own watermark is not ahead of the stream's, its id, its
watermark and its panes are released: a later event of that entity is judged against the
partition and stream watermarks, which already imply the entity's rule, so evicting
changes no result. Last-N sets hold an entity's last events until `state_ttl` of event
time without events (`LastNWindows`). Sets with per-event state (`emit = "update"`) release
an entity like the others once its windows have closed and the stream's watermark has
passed its last update by `update_every` (before that, a returning event's update could
depend on the forgotten pacing); a last-N set with updates keeps its entities' events for
the run, so its entities stay.

>>> from features.windows.config import FeatureSet, FeatureSpec, WindowSpec
>>> from features.events import Event
>>> from features.event_batch import EventBatch
>>> fs = FeatureSet("s", "area", "features.s", WindowSpec("tumbling", 60_000, 60_000),
...                 (FeatureSpec("n", "count"),))
>>> engine = ColumnarEngine((fs,), lateness_ms=10_000)
>>> out = engine.process(EventBatch.of([Event("a", 1_000, {}), Event("a", 75_000, {}), Event("a", 2_000, {})]))
>>> [(w.feature_set, w.entities, w.values) for w in out.windows], out.late.tolist()
([('s', ['a'], {'n': [1]})], [2])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from typing import Any

import numpy as np

from features.event_batch import EventBatch
from features.partition_progress import NEVER, PartitionProgress
from features.schema import EventSchema
from features.windows.config import FeatureSet
from features.windows.last_n import LastNWindows
from features.windows.ordering import distinct_ids, stable_order
from features.windows.panes import DueIndex, ObjectColumn, PaneWindows, WindowBlock, run_heads
from features.windows.sessions import SessionWindows
from features.windows.state import FeatureRow, new_window_state

_BIG = np.iinfo(np.int64).max // 4
# The layout of the engine's pickled state; a snapshot of another layout cannot be resumed.
# 2: pane pool, encoded object columns, columnar sessions. 3: pane quantile values in one log per group.
# 4: the features flow's 8 shards (not 32) under keys placed by worker (dataflows.flows.features).
STATE_LAYOUT = 4
FLUSH_CHUNK = 1 << 15  # entities whose last windows `flush_later` computes at a time


@dataclass(frozen=True, eq=False)
class FeatureWindows:
    """Closed windows of one feature set: one row per (entity, window), values by feature name."""

    feature_set: str
    entities: list[str]
    starts: np.ndarray
    ends: np.ndarray
    counts: np.ndarray
    values: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.entities)

    def rows(self, statics: Mapping[str, Mapping[str, Any]] | None = None) -> list[FeatureRow]:
        """The windows as `FeatureRow`s (with the entities' static values, if any)."""
        names = list(self.values)
        columns = [self.values[n] for n in names]
        rows = []
        for i, (entity, start, end, count) in enumerate(zip(self.entities, self.starts.tolist(), self.ends.tolist(),
                                                          self.counts.tolist())):
            values = {n: c[i] for n, c in zip(names, columns)}
            extra = statics.get(entity) if statics else None
            if extra:
                values.update(extra)
            rows.append(FeatureRow(self.feature_set, entity, start, end, values, count))
        return rows


@dataclass(eq=False)
class EngineOutput:
    """What one batch produced: closed windows (columnar sets), rows (per-event sets), and the
    late events as positions in the batch with the watermark each was behind."""

    windows: list[FeatureWindows] = field(default_factory=list)
    rows: list[FeatureRow] = field(default_factory=list)
    late: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    late_watermarks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


class EntityIds:
    """Dense integer ids for entity keys; a released id is reused.

    >>> ids = EntityIds()
    >>> ids.lookup(["a", "b", "a"]).tolist(), ids.release(np.array([0])), ids.lookup(["c", "b"]).tolist()
    ([0, 1, 0], None, [0, 1])
    """

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str | None] = []
        self.free: list[int] = []

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def capacity(self) -> int:
        return len(self.names)

    def lookup(self, keys: Sequence[str]) -> np.ndarray:
        found = np.fromiter(map(self.ids.get, keys, repeat(-1)), np.int64, len(keys))
        for i in np.flatnonzero(found < 0).tolist():
            key = keys[i]
            j = self.ids.get(key)
            if j is None:
                if self.free:
                    j = self.free.pop()
                    self.names[j] = key
                else:
                    j = len(self.names)
                    self.names.append(key)
                self.ids[key] = j
            found[i] = j
        return found

    def release(self, ids: np.ndarray) -> None:
        for j in ids.tolist():
            del self.ids[self.names[j]]  # type: ignore[index]
            self.names[j] = None
            self.free.append(j)

    def keys(self, ids: np.ndarray) -> list[str]:
        names = self.names
        return [names[j] for j in ids.tolist()]  # type: ignore[misc]


def running_max_before(groups: np.ndarray, values: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """For each position, the largest value at earlier positions of the same group (NEVER
    values do not count), or the group's `initial` value if larger; NEVER when neither exists.

    >>> running_max_before(np.array([0, 1, 0, 0]), np.array([5, 9, NEVER, 3]), np.array([NEVER, 4])).tolist() == \\
    ...     [NEVER, 4, 5, 5]
    True
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, np.int64)
    order = stable_order(groups)
    g, v = groups[order], values[order]
    real = v != NEVER
    base = int(v[real].min()) if real.any() else 0
    rel = np.where(real, v - base + 1, 0)
    span = int(rel.max()) + 1
    heads = np.zeros(n, bool)
    heads[run_heads(g)] = True
    rank = np.cumsum(heads) - 1
    if int(rank[-1]) * span < 2**62:
        key = rank * span + rel
        inclusive = np.maximum.accumulate(key) - rank * span
        before = np.empty(n, np.int64)
        before[0] = 0
        before[1:] = inclusive[:-1]
        before[heads] = 0
    else:  # a batch spanning ages over very many entities: the plain loop
        before = np.zeros(n, np.int64)
        best = 0
        for i in range(n):
            if heads[i]:
                best = 0
            before[i] = best
            best = max(best, int(rel[i]))
    result = np.where(before > 0, before + base - 1, NEVER)
    result = np.maximum(result, initial[g])
    out = np.empty(n, np.int64)
    out[order] = result
    return out


def partition_verdicts(high: dict[int, int], lateness_ms: int, partitions: np.ndarray,
                       times: np.ndarray) -> np.ndarray:
    """`PartitionClocks.behind` for a batch: each event's partition watermark if the event is
    behind it, else NEVER; `high` (largest event time read per partition) is updated.

    >>> high = {}
    >>> partition_verdicts(high, 10, np.array([0, 0, 0, 0]), np.array([100, 95, 89, 120])).tolist()[2], high
    (90, {0: 120})
    """
    if len(times) and (partitions == partitions[0]).all():  # one partition (the flow's steps): a running max
        p = int(partitions[0])
        start = high.get(p, NEVER)
        inclusive = np.maximum.accumulate(times)
        before = np.empty(len(times), np.int64)
        before[0] = start
        np.maximum(inclusive[:-1], start, out=before[1:])
        high[p] = max(start, int(inclusive[-1]))
    else:
        keys = np.unique(partitions)
        initial = np.array([high.get(int(p), NEVER) for p in keys], np.int64)
        before = running_max_before(np.searchsorted(keys, partitions), times, initial)
        for p, t in zip(keys.tolist(), np.maximum.reduceat(*_by_group(partitions, times))):
            if t > high.get(p, NEVER):
                high[p] = int(t)
    watermark = before - lateness_ms
    return np.where((before != NEVER) & (times < watermark), watermark, NEVER)


def _by_group(groups: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = stable_order(groups)
    g = groups[order]
    return values[order], run_heads(g)


class ColumnarEngine:
    """Feature sets that share one entity field, for the entities of one shard.

    The whole object is the shard's state: it pickles into Bytewax recovery snapshots, in
    size proportional to the live entities and open windows.
    """

    def __init__(self, feature_sets: Sequence[FeatureSet], lateness_ms: int,
                 statics: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None, partitions: int = 1,
                 schema: EventSchema | None = None) -> None:
        entities = {fs.entity for fs in feature_sets}
        if len(entities) != 1:
            raise ValueError(f"a shard engine serves feature sets of one entity field, got {sorted(entities)}")
        self.entity_field = entities.pop()
        self.lateness = lateness_ms
        self.statics = {name: table for name, table in (statics or {}).items()}
        self.schema = schema
        self.panes: list[tuple[str, PaneWindows | LastNWindows | SessionWindows]] = []  # the sets held in arrays
        self.legacy = []
        for fs in feature_sets:
            panes = self._array_set(fs)
            if panes is not None:
                self.panes.append((fs.name, panes))
            else:
                self.legacy.append(new_window_state(fs, (statics or {}).get(fs.name)))
        self.arrivals = 0  # events added so far: orders the last-N events of equal time
        self.ids = EntityIds()
        self.entity_max = np.zeros(0, np.int64)
        self.high: dict[int, int] = {}  # partition clocks when the caller does not decide partition lateness
        self.progress = PartitionProgress(partitions)
        self.stream_watermark = NEVER
        self.evictions = DueIndex()  # entities without windows, by the time the stream must reach to release them
        self.evicted = 0
        self.state_layout = STATE_LAYOUT

    def _array_set(self, fs: FeatureSet) -> PaneWindows | LastNWindows | SessionWindows | None:
        """An empty set held in arrays for `fs`, or None when `fs` takes the per-event state classes."""
        if fs.window.type in ("tumbling", "hopping") and fs.emit in ("final", "changes"):
            return PaneWindows(fs, self.lateness, self.schema)
        if fs.window.type == "last_n" and fs.emit in ("final", "changes"):
            return LastNWindows(fs, self.schema, fs.state_ttl_ms)
        if fs.window.type == "session" and fs.emit == "final":
            return SessionWindows(fs, self.schema)
        return None

    @property
    def entities(self) -> int:
        """Entities holding state in this shard."""
        return len(self.ids)

    # ------------------------------------------------------------------ a batch

    def process(self, batch: EventBatch, default_entity: bool = True, progress: Mapping[int, int] | None = None,
                partition_late: np.ndarray | None = None, now_ms: int | None = None) -> EngineOutput:
        """Aggregate a batch (arrival order); returns closed windows and the late events.

        As `ShardEngine.process`: `partition_late` (each event's partition watermark when it
        is behind it, else NEVER) and `progress` (largest event time per partition) come from
        the caller who sees every event of the partitions; without them the engine keeps
        its own partition clocks.
        """
        out = EngineOutput()
        n = len(batch)
        times = batch.times
        if n:
            keys = batch.entities if default_entity else batch.keys(self.entity_field)
            eids = self.ids.lookup(keys)
            self._grow(self.ids.capacity)
            if partition_late is None:
                partition_late = partition_verdicts(self.high, self.lateness, batch.partitions, times)
            stream = self.stream_watermark
            candidate = (partition_late == NEVER) & (times >= stream)
            before = running_max_before(eids, np.where(candidate, times, NEVER), self.entity_max)
            own = np.where(before != NEVER, before - self.lateness, NEVER)
            late = ~candidate | (times < own)
            if late.any():
                out.late = np.flatnonzero(late)
                out.late_watermarks = np.maximum(np.maximum(own[out.late], partition_late[out.late]), stream)
            accepted = np.flatnonzero(~late)
            if self.legacy and accepted.size:
                self._legacy_add(batch, keys, accepted, before, out)
            if self.panes and accepted.size:
                columns = {name: batch.numbers(name) for _, p in self.panes for name in p.fields}
                # Each field once, however many sets read it: encoding is the costly part.
                fields = {name for _, p in self.panes for name in p.objects}
                objects = {name: ObjectColumn(batch.values(name)) for name in fields}
                self._add(accepted, eids, times, columns, objects, out)  # updates the entities' watermarks
            elif accepted.size:
                np.maximum.at(self.entity_max, eids[accepted], times[accepted])
            if len(out.late):  # entities that came with late events only hold nothing: release them
                stateless = np.unique(eids[out.late])
                self._release_or_schedule(stateless[self.entity_max[stateless] == NEVER])
            marks = dict(zip(*_partition_maxima(batch.partitions, times)))
        else:
            marks = {}
        for p, t in (progress or {}).items():
            if t > marks.get(p, NEVER):
                marks[p] = t
        for p, t in marks.items():
            self.progress.report(p, t, now_ms)
        slowest = self.progress.slowest(now_ms)
        if slowest != NEVER and slowest - self.lateness > self.stream_watermark:
            self.stream_watermark = slowest - self.lateness
            self._close_due(out)
        return out

    def flush(self) -> EngineOutput:
        """Close every open window (the inputs have ended)."""
        out = EngineOutput()
        for name, panes in self.panes:
            self._emit(name, panes.flush(), out)
        for state in self.legacy:
            out.rows.extend(state.flush())
        return out

    def flush_later(self) -> tuple[list[tuple[str, Callable[[], FeatureWindows | None]]], list[FeatureRow]]:
        """As `flush`, but each array-held set's windows are computed when its function is called,
        so a caller can compute and write one set at a time, `FLUSH_CHUNK` entities at a time: the
        closed windows of every set and shard never exist at once (at the end of a bounded
        input, millions). Returns (set name, windows) pairs, several per set over many
        entities, and the rows of the per-event sets.

        The engine is left as after `flush` but for those sets, which are replaced by empty ones
        (the originals are flushed by the functions, whenever they run): a run resumed from a
        snapshot taken after the end of a bounded input decides lateness as before, while its
        last-N sets start without their last events and change filters without their last
        values.

        >>> from features.events import Event
        >>> from features.windows.config import FeatureSet, FeatureSpec, WindowSpec
        >>> fs = FeatureSet("s", "area", "features.s", WindowSpec("tumbling", 60_000, 60_000), (FeatureSpec("n", "count"),))
        >>> engine = ColumnarEngine((fs,), lateness_ms=10_000)
        >>> _ = engine.process(EventBatch.of([Event("a", 1_000, {})]))
        >>> later, rows = engine.flush_later()
        >>> [(name, windows().values) for name, windows in later], engine.flush().windows
        ([('s', {'n': [1]})], [])
        """
        later = []
        for i, (name, panes) in enumerate(self.panes):
            fresh = self._array_set(panes.spec)
            assert fresh is not None
            self.panes[i] = (name, fresh)
            # In chunks of entity ids: a shard of a million entities' windows would otherwise be
            # computed, and held as Python values, all at once. Over the set's own ids: a set
            # emptied by an earlier end of input holds none, while the shard still names entities.
            capacity = panes.capacity
            for lo in range(0, max(capacity, 1), FLUSH_CHUNK):
                chunk = np.arange(lo, min(lo + FLUSH_CHUNK, capacity), dtype=np.int64)
                later.append((name, partial(_flushed_windows, name, panes, self.ids, chunk)))
        return later, [row for state in self.legacy for row in state.flush()]

    # ------------------------------------------------------------------ internals

    def _grow(self, capacity: int) -> None:
        if capacity > len(self.entity_max):
            size = max(capacity, 2 * len(self.entity_max), 64)
            grown = np.full(size, NEVER, np.int64)
            grown[: len(self.entity_max)] = self.entity_max
            self.entity_max = grown
        for _, panes in self.panes:
            panes.grow(capacity)

    def _add(self, index: np.ndarray, eids: np.ndarray, times: np.ndarray, columns: Mapping[str, np.ndarray],
             objects: Mapping[str, ObjectColumn], out: EngineOutput) -> None:
        """Add accepted events (positions `index` of the batch) to the pane sets, then close what the
        entities' own watermarks passed. A piece whose panes would need a slot still in use is
        split: down to one event, whose entity's windows are closed before it is added."""
        e, t = eids[index], times[index]
        if not all(panes.fits(e, t) for _, panes in self.panes if type(panes) is PaneWindows):
            if len(index) > 1:
                half = len(index) // 2
                self._add(index[:half], eids, times, columns, objects, out)
                self._add(index[half:], eids, times, columns, objects, out)
                return
            self._close_entities(e, np.maximum(self.entity_max[e], t) - self.lateness, out)  # before it: as ShardEngine
        pick = {name: col[index] for name, col in columns.items()}
        picked = {name: column.take(index) for name, column in objects.items()}
        arrivals = self.arrivals + np.arange(len(index))
        self.arrivals += len(index)
        for _, panes in self.panes:
            panes.add(e, t, arrivals, pick, picked)
        np.maximum.at(self.entity_max, e, t)
        touched = distinct_ids(e, len(self.entity_max))
        self._close_entities(touched, self.entity_max[touched] - self.lateness, out)

    def _close_entities(self, eids: np.ndarray, watermarks: np.ndarray, out: EngineOutput) -> None:
        # No release here: an entity that has just received events keeps the window of its latest one.
        for name, panes in self.panes:
            self._emit(name, panes.close(eids, watermarks), out)

    def _close_due(self, out: EngineOutput) -> None:
        stream = self.stream_watermark
        for name, panes in self.panes:
            due = panes.due.pop(stream)
            if due.size:
                self._emit(name, panes.close(due, np.maximum(self.entity_max[due] - self.lateness, stream)), out)
                self._release_or_schedule(due)
        closed: set[str] = set()
        for state in self.legacy:
            rows = state.close_due(stream)
            out.rows.extend(rows)
            closed.update(row.entity for row in rows)
        if closed:
            ids = self.ids.ids
            self._release_or_schedule(np.array(sorted(ids[k] for k in closed if k in ids), np.int64))
        for _, panes in self.panes:
            if type(panes) is LastNWindows:
                self._release_or_schedule(panes.expire(stream))
        waiting = self.evictions.pop(stream)
        if waiting.size:
            self._release_or_schedule(waiting[self.entity_max[waiting] != NEVER])

    def _release_or_schedule(self, eids: np.ndarray) -> None:
        """Release the entities without open windows whose watermark the stream has reached;
        remember the others without windows until it does."""
        if not eids.size:
            return
        idle = np.ones(len(eids), bool)
        for _, panes in self.panes:
            idle &= ~panes.live(eids)
        eids = eids[idle]
        own = self.entity_max[eids] - self.lateness
        if self.legacy and eids.size:
            eids, own = self._legacy_idle(eids, own)
        ready = own <= self.stream_watermark
        if ready.any():
            gone = eids[ready]
            self.entity_max[gone] = NEVER
            for _, panes in self.panes:
                panes.forget(gone)
            for key in self.ids.keys(gone) if self.legacy else ():
                for state in self.legacy:
                    state.forget(key)
            self.ids.release(gone)
            self.evicted += len(gone)
        if not ready.all():
            self.evictions.schedule(eids[~ready], own[~ready])

    def _legacy_idle(self, eids: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The entities without windows in the per-event sets, with the stream time from which they
        may go: their own watermark, or later while their update pacing could still hold an update
        back (a returning event is at or after the stream's watermark, so once it passes
        `last update + update_every` a fresh entity gets the same updates)."""
        keep = []
        until = own.tolist()
        for i, key in enumerate(self.ids.keys(eids)):
            if any(state.holds(key) for state in self.legacy):
                continue
            for state in self.legacy:
                paced = state.paced_until(key)
                if paced is not None and paced > until[i]:
                    until[i] = paced
            keep.append(i)
        return eids[keep], np.array(until, np.int64)[keep]

    def _emit(self, name: str, block: WindowBlock, out: EngineOutput) -> None:
        windows = _windows(name, block, self.ids)
        if windows is not None:
            out.windows.append(windows)

    def _legacy_add(self, batch: EventBatch, keys: Sequence[str], accepted: np.ndarray, before: np.ndarray,
                    out: EngineOutput) -> None:
        """The per-event sets, event by event, exactly as `ShardEngine.process` feeds them."""
        lateness = self.lateness
        times = batch.times.tolist()
        previous = before.tolist()  # the entity's largest earlier event time (NEVER: none)
        for i in accepted.tolist():
            t = times[i]
            if previous[i] != NEVER and t > previous[i]:
                for state in self.legacy:
                    out.rows.extend(state.close_entity(keys[i], t - lateness))
            fields = batch.record(i)
            for state in self.legacy:
                rows = state.add(keys[i], t, fields)
                if rows:
                    out.rows.extend(rows)


def _windows(name: str, block: WindowBlock, ids: EntityIds) -> FeatureWindows | None:
    """A block of closed windows with its entities' keys (None when empty)."""
    return FeatureWindows(name, ids.keys(block.entity_ids), block.starts, block.ends, block.counts,
                          block.values) if len(block) else None


def _flushed_windows(name: str, panes: PaneWindows | LastNWindows | SessionWindows, ids: EntityIds,
                     chunk: np.ndarray) -> FeatureWindows | None:
    return _windows(name, panes.flush(chunk), ids)


def _partition_maxima(partitions: np.ndarray, times: np.ndarray) -> tuple[list[int], list[int]]:
    values, heads = _by_group(partitions, times)
    keys = np.sort(partitions)[heads]
    return keys.tolist(), np.maximum.reduceat(values, heads).tolist()
