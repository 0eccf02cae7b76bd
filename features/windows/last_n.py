"""Last-N sets as numpy arrays: "the median price of the last 10 rides in this area", every minute.

The semantics are `features.windows.state.LastNState`'s: at each `every` boundary b that
follows new events of an entity, once the watermark passes b, the features of the entity's
last N events before b (by event time, then arrival), over `[time of the oldest of them, b)`.
An entity keeps its N newest events before the last boundary written and every event after
it.

The events of a shard are one log of arrays (entity id, event time, arrival number, the
fields the features read). Closing sorts only the log rows of the entities that emit,
finds each row's N events with one `searchsorted`, and computes every row's features at
once with the same `ColumnAggregates` as the pane windows, each row a slot.

**State TTL.** An entity without events for `state_ttl` of event time (measured against
the stream's watermark) and without a boundary to write is forgotten; it starts afresh if
it returns, so its rows then differ from a run that kept it. Within the TTL its rows are
those of a run that keeps everything.

>>> from features.windows.config import FeatureSet, FeatureSpec, WindowSpec
>>> fs = FeatureSet("s", "area", "features.s", WindowSpec("last_n", step_ms=60_000, n=2),
...                 (FeatureSpec("m", "median", "price"),))
>>> last = LastNWindows(fs)
>>> last.grow(1)
>>> last.add(np.zeros(3, np.int64), np.array([1_000, 2_000, 3_000]), np.arange(3), {"price": np.array([1.0, 5.0, 2.0])}, {})
>>> block = last.close(np.array([0]), np.array([60_000]))
>>> block.starts.tolist(), block.ends.tolist(), block.counts.tolist(), block.values["m"]
([2000], [60000], [2], [3.5])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from features.partition_progress import NEVER
from features.schema import EventSchema
from features.windows.config import FeatureSet
from features.windows.ordering import among, lex_order, spans, stable_order
from features.windows.panes import (
    ChangeFilter,
    ColumnAggregates,
    DueIndex,
    ObjectColumn,
    WindowBlock,
    _take,
    run_ends,
    run_heads,
)

DEFAULT_STATE_TTL_MS = 86_400_000  # a day of event time


class LastNWindows:
    """The last-N state of one feature set, for the entities of one shard."""

    def __init__(self, feature_set: FeatureSet, schema: EventSchema | None = None,
                 state_ttl_ms: int = DEFAULT_STATE_TTL_MS) -> None:
        if feature_set.window.type != "last_n" or feature_set.emit not in ("final", "changes"):
            raise ValueError("last-N windows serve last_n sets with emit = final or changes")
        self.changes = ChangeFilter() if feature_set.emit == "changes" else None
        self.spec = feature_set
        self.schema = schema
        self.n = feature_set.window.n
        self.every = feature_set.window.step_ms
        self.ttl = state_ttl_ms
        probe = ColumnAggregates(feature_set, schema)
        self.fields, self.objects = probe.fields, probe.objects
        self.capacity = 0
        self.emitted = np.zeros(0, np.int64)  # last boundary written, per entity (NEVER: none)
        self.latest = np.zeros(0, np.int64)  # largest event time, per entity (NEVER: no state)
        self.pending_last = np.zeros(0, np.int64)  # latest boundary made pending, per entity
        self._log: list[dict[str, np.ndarray]] = []  # chunks; merged when a close needs them
        # Boundaries to write, (entity, boundary) pairs; a pair may be held twice (an event older
        # than its entity's latest boundary adds its own without a lookup): `close` writes it once.
        self._pending: dict[str, np.ndarray] = {"e": np.zeros(0, np.int64), "b": np.zeros(0, np.int64)}
        self.due = DueIndex()  # entities by their pending boundaries

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Snapshots of layout 4 made before the pending pairs lost their set carry it: drop it.
        state.pop("_pending_keys", None)
        self.__dict__.update(state)

    def grow(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        size = max(capacity, 2 * self.capacity, 64)
        for name in ("emitted", "latest", "pending_last"):
            grown = np.full(size, NEVER, np.int64)
            old = getattr(self, name)
            grown[: len(old)] = old
            setattr(self, name, grown)
        if self.changes is not None:
            self.changes.grow(size)
        self.capacity = size

    def live(self, entity_ids: np.ndarray) -> np.ndarray:
        """Whether each entity holds state (events or a boundary to write)."""
        return self.latest[entity_ids] != NEVER

    # ------------------------------------------------------------------ adding

    def add(self, entity_ids: np.ndarray, times: np.ndarray, arrivals: np.ndarray,
            columns: Mapping[str, np.ndarray], objects: Mapping[str, ObjectColumn]) -> None:
        """Add non-late events; `arrivals` orders events of equal time (increasing over the stream)."""
        if not len(times):
            return
        chunk = {"e": entity_ids, "t": times, "a": arrivals}
        chunk.update({f"#{name}": columns[name] for name in self.fields})
        chunk.update({f"@{name}": objects[name].source for name in self.objects})
        self._log.append(chunk)
        np.maximum.at(self.latest, entity_ids, times)
        boundaries = (times // self.every + 1) * self.every
        # Most events fall before the boundary their entity already waits for: skip those.
        new = boundaries != self.pending_last[entity_ids]
        if not new.any():
            return
        order = np.lexsort((boundaries[new], entity_ids[new]))
        e, b = entity_ids[new][order], boundaries[new][order]
        heads = _pair_heads(e, b)
        e, b = e[heads], b[heads]
        np.maximum.at(self.pending_last, e, b)
        self._pending = {"e": np.concatenate([self._pending["e"], e]), "b": np.concatenate([self._pending["b"], b])}
        self.due.schedule(e, b)

    def _merged_log(self) -> dict[str, np.ndarray]:
        if len(self._log) != 1:
            if not self._log:
                return {}
            names = self._log[0].keys()
            self._log = [{name: np.concatenate([c[name] for c in self._log]) for name in names}]
        return self._log[0]

    # ------------------------------------------------------------------ closing

    def close(self, entity_ids: np.ndarray, watermarks: np.ndarray) -> WindowBlock:
        """Write each entity's pending boundaries up to its watermark; rows by entity, then boundary."""
        pending = self._pending
        # Each pending boundary's entity watermark (NEVER for entities not closing now).
        ids, marks = entity_ids, watermarks
        if len(ids) > 1 and np.any(ids[1:] < ids[:-1]):  # the engine passes them sorted already
            order = stable_order(ids)
            ids, marks = ids[order], marks[order]
        at = np.minimum(np.searchsorted(ids, pending["e"]), max(len(ids) - 1, 0))
        limit = np.where(ids[at] == pending["e"], marks[at], NEVER) if len(ids) else np.full(len(pending["e"]), NEVER)
        due = pending["b"] <= limit
        if not due.any():
            return _empty(self.spec)
        rows_e, rows_b = pending["e"][due], pending["b"][due]
        self._pending = {"e": pending["e"][~due], "b": pending["b"][~due]}
        order = np.lexsort((rows_b, rows_e))
        rows_e, rows_b = rows_e[order], rows_b[order]
        once = _pair_heads(rows_e, rows_b)  # a pair pending twice is written once
        rows_e, rows_b = rows_e[once], rows_b[once]
        np.maximum.at(self.emitted, rows_e, rows_b)

        log = self._merged_log()
        involved = rows_e[run_heads(rows_e)]  # sorted by entity already
        mine = among(log["e"], involved, self.capacity)
        sub = {name: column[mine] for name, column in log.items()}
        by_time = lex_order(sub["e"], sub["t"], sub["a"])
        sub = {name: column[by_time] for name, column in sub.items()}
        e_sorted, t_sorted = sub["e"], sub["t"]
        # Each row's cut: the first of its entity's events at or after the boundary.
        lo = np.searchsorted(e_sorted, rows_e, "left")
        within = _TimeSearch(e_sorted, t_sorted)
        cut = within(rows_e, rows_b)
        first = np.maximum(lo, cut - self.n)
        counts = cut - first
        starts = t_sorted[np.minimum(first, len(t_sorted) - 1)] if len(t_sorted) else np.zeros(len(first), np.int64)
        # Every row's events, as slots of one aggregation.
        slots = np.repeat(np.arange(len(rows_e)), counts)
        index = spans(first, counts)
        aggregates = ColumnAggregates(self.spec, self.schema, len(rows_e))
        columns = {name: sub[f"#{name}"][index] for name in self.fields}
        objects = {name: ObjectColumn(sub[f"@{name}"][index]) for name in self.objects}
        aggregates.add(slots, t_sorted[index], columns, objects)
        values = aggregates.values(np.arange(len(rows_e))[:, None], np.ones((len(rows_e), 1), bool), rows_b - starts)
        block = WindowBlock(rows_e, starts, rows_b, counts, values)
        if self.changes is not None:
            block = _take(block, self.changes.keep(rows_e, values))

        # Keep, per entity, the N newest events before its last written boundary and all after.
        e_lo = np.searchsorted(e_sorted, involved, "left")
        e_cut = within(involved, self.emitted[involved])
        keep_from = np.maximum(e_lo, e_cut - self.n)
        keep = np.arange(len(e_sorted)) >= np.repeat(keep_from, run_ends(e_lo, len(e_sorted)) - e_lo)
        rest = {name: column[~mine] for name, column in log.items()}
        self._log = [{name: np.concatenate([rest[name], sub[name][keep]]) for name in log}]
        return block

    def expire(self, stream_watermark: int) -> np.ndarray:
        """Forget entities idle for the state TTL with nothing to write; returns their ids."""
        if stream_watermark == NEVER:
            return np.zeros(0, np.int64)
        held = np.flatnonzero((self.latest != NEVER) & (self.latest < stream_watermark - self.ttl))
        if held.size:
            held = held[~among(held, self._pending["e"], self.capacity)]
        if held.size:
            self.forget(held)
        return held

    def forget(self, entity_ids: np.ndarray) -> None:
        """Drop the entities' events and marks (their ids are being released)."""
        log = self._merged_log()
        if log:
            keep = ~among(log["e"], entity_ids, self.capacity)
            self._log = [{name: column[keep] for name, column in log.items()}]
        self.latest[entity_ids] = NEVER
        self.emitted[entity_ids] = NEVER
        self.pending_last[entity_ids] = NEVER
        if self.changes is not None:
            self.changes.forget(entity_ids)

    def flush(self, entity_ids: np.ndarray | None = None) -> WindowBlock:
        """Write every pending boundary (the inputs have ended); of the entities `entity_ids` only, if given."""
        entities = np.unique(self._pending["e"])
        if entity_ids is not None:
            entities = entities[among(entities, entity_ids, self.capacity)]
        return self.close(entities, np.full(len(entities), np.iinfo(np.int64).max // 4, np.int64))

    @property
    def log_size(self) -> int:
        """Events held."""
        return sum(len(c["e"]) for c in self._log)


def _pair_heads(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where each run of equal (a, b) pairs starts, in arrays sorted by (a, b).

    >>> _pair_heads(np.array([1, 1, 1, 2]), np.array([5, 5, 6, 5])).tolist()
    [0, 2, 3]
    """
    if not len(a):
        return np.zeros(0, np.int64)
    change = np.empty(len(a), bool)
    change[0] = True
    change[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return np.flatnonzero(change)


class _TimeSearch:
    """Positions in a log sorted by entity, then time: for each (entity, time), the entity's first
    event at or after `time`. One composite key serves every search of a close.

    >>> within = _TimeSearch(np.array([1, 1, 1, 4]), np.array([10, 20, 30, 5]))
    >>> within(np.array([1, 1, 4, 4]), np.array([20, 99, 0, 6])).tolist()
    [1, 3, 3, 4]
    """

    def __init__(self, e_sorted: np.ndarray, t_sorted: np.ndarray) -> None:
        self.e, self.t = e_sorted, t_sorted
        self.composite = None
        if len(e_sorted):
            self.t_min, t_max = int(t_sorted.min()), int(t_sorted.max())
            self.span = t_max - self.t_min + 3
            heads = run_heads(e_sorted)  # sorted already: no np.unique
            self.keys = e_sorted[heads]
            if len(self.keys) * self.span < 2**62:
                rank_e = np.repeat(np.arange(len(heads)), run_ends(heads, len(e_sorted)) - heads)
                self.composite = rank_e * self.span + (t_sorted - (self.t_min - 1))

    def __call__(self, entities: np.ndarray, times: np.ndarray) -> np.ndarray:
        e_sorted, t_sorted = self.e, self.t
        if not len(e_sorted):
            return np.zeros(len(entities), np.int64)
        if self.composite is not None:
            clipped = np.clip(times, self.t_min - 1, self.t_min + self.span - 2) - (self.t_min - 1)
            return np.searchsorted(self.composite, np.searchsorted(self.keys, entities) * self.span + clipped, "left")
        lo = np.searchsorted(e_sorted, entities, "left")
        hi = np.searchsorted(e_sorted, entities, "right")
        return np.array([a + np.searchsorted(t_sorted[a:b], t, "left") for a, b, t in
                         zip(lo.tolist(), hi.tolist(), times.tolist())], np.int64)


def _empty(spec: FeatureSet) -> WindowBlock:
    empty = np.zeros(0, np.int64)
    return WindowBlock(empty, empty, empty, empty, {f.name: [] for f in spec.features})
