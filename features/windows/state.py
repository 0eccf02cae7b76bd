"""Open windows of one feature set for the entities of one shard, and when they close.

One class per window type, all with the same surface:

- `add(entity, t, fields)` adds an event (the caller has already decided it is not late)
  and returns the update rows that `emit = "update"` asks for;
- `close_entity(entity, watermark)` emits the entity's windows that end at or before the
  watermark; `close_due(watermark)` does so for every entity (an index by window end keeps
  it proportional to what closes, not to the number of entities);
- `flush()` emits everything still open (the end of a bounded run).

Windows are half-open `[start, end)` in event-time milliseconds. Hopping windows are
kept as panes of one step, so each event touches one pane and a window is the merge of
its `length / step` panes. Last-N keeps the entity's N most recent events and emits, at
each `every` boundary b that follows new events, the features of the last N events
before b.

>>> from features.windows.config import FeatureSet, FeatureSpec, WindowSpec
>>> fs = FeatureSet("s", "area", "features.s", WindowSpec("tumbling", 60_000, 60_000),
...                 (FeatureSpec("n", "count"),))
>>> state = TumblingState(fs)
>>> _ = state.add("a1", 1_000, {}), state.add("a1", 2_000, {})
>>> [(r.entity, r.end_ms, r.values, r.event_count) for r in state.close_due(60_000)]
[('a1', 60000, {'n': 2}, 2)]
"""

from __future__ import annotations

import bisect
import heapq
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from features.windows.aggregates import Aggregates, compile_aggregates
from features.windows.config import FeatureSet


@dataclass(frozen=True)
class FeatureRow:
    """The features of one entity over one window (kind "final"), or an interim "update"."""

    feature_set: str
    entity: str
    start_ms: int
    end_ms: int
    values: dict[str, Any]
    event_count: int
    kind: str = "final"
    as_of_ms: int | None = None  # for updates: the event time they were computed at


@dataclass
class _DueIndex:
    """Entities to visit when the watermark passes a window end (lazy: stale entries are skipped)."""

    ends: list[int] = field(default_factory=list)
    entities: dict[int, set[str]] = field(default_factory=dict)

    def add(self, end: int, entity: str) -> None:
        bucket = self.entities.get(end)
        if bucket is None:
            self.entities[end] = bucket = set()
            heapq.heappush(self.ends, end)
        bucket.add(entity)

    def pop_until(self, watermark: int) -> list[str]:
        due: list[str] = []
        while self.ends and self.ends[0] <= watermark:
            end = heapq.heappop(self.ends)
            due.extend(sorted(self.entities.pop(end)))
        return due


class _WindowState(ABC):
    """What every window type shares: the compiled aggregates, static values, update pacing, the due index."""

    def __init__(self, feature_set: FeatureSet, static: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.spec = feature_set
        self.agg: Aggregates = compile_aggregates(feature_set.features)
        self.agg_add, self.agg_new = self.agg.add, self.agg.new  # bound once: the per-event path
        self.updates = feature_set.emit == "update"
        self.static = static or {}
        self.due = _DueIndex()
        self.last_update: dict[str, int] = {}

    # The compiled functions do not pickle (Bytewax snapshots pickle the state): drop them
    # and compile again from the spec on restore.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("agg", "agg_add", "agg_new"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.agg = compile_aggregates(self.spec.features)
        self.agg_add, self.agg_new = self.agg.add, self.agg.new

    def _row(self, entity: str, start: int, end: int, acc: list[Any], kind: str = "final",
             as_of: int | None = None) -> FeatureRow:
        values = self.agg.values(acc, end - start)
        extra = self.static.get(entity)
        if extra:
            values.update(extra)
        return FeatureRow(self.spec.name, entity, start, end, values, acc[0], kind, as_of)

    def empty_row(self, entity: str, start: int, end: int) -> FeatureRow:
        """The row of a window `[start, end)` without events: `count`, `sum`, `distinct` and
        `rate` 0, the rest null (and the entity's static values).

        >>> from features.windows.config import FeatureSet, FeatureSpec, WindowSpec
        >>> fs = FeatureSet("s", "area", "features.s", WindowSpec("tumbling", 60_000, 60_000),
        ...                 (FeatureSpec("n", "count"), FeatureSpec("m", "mean", "price")))
        >>> TumblingState(fs).empty_row("a1", 0, 60_000).values
        {'n': 0, 'm': None}
        """
        return self._row(entity, start, end, self.agg_new())

    def _wants_update(self, entity: str, t: int) -> bool:
        last = self.last_update.get(entity)
        if last is not None and t - last < self.spec.update_every_ms:
            return False
        self.last_update[entity] = t
        return True

    def paced_until(self, entity: str) -> int | None:
        """With updates: the event time from which the entity's next event gets an update whatever
        came before (so its pacing can be forgotten once the stream's watermark is there)."""
        last = self.last_update.get(entity)
        return None if last is None else last + self.spec.update_every_ms

    def forget(self, entity: str) -> None:
        """Drop what is left of an entity that holds no window (its update pacing)."""
        self.last_update.pop(entity, None)

    @abstractmethod
    def holds(self, entity: str) -> bool:
        """Whether the entity has open windows here (last-N: events)."""

    def close_due(self, watermark: int) -> list[FeatureRow]:
        rows: list[FeatureRow] = []
        for entity in self.due.pop_until(watermark):
            rows.extend(self.close_entity(entity, watermark))
        return rows

    @abstractmethod
    def add(self, entity: str, t: int, fields: Mapping[str, Any]) -> list[FeatureRow] | None:
        """Add a non-late event; returns update rows when `emit = "update"` asks for them, else None."""

    @abstractmethod
    def close_entity(self, entity: str, watermark: int) -> list[FeatureRow]:
        """Emit the entity's windows that end at or before the watermark."""

    @abstractmethod
    def flush(self) -> list[FeatureRow]:
        """Emit every open window (the end of a bounded run)."""


class TumblingState(_WindowState):
    """Fixed, non-overlapping windows of `length`."""

    def __init__(self, feature_set: FeatureSet, static: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(feature_set, static)
        self.length = feature_set.window.length_ms
        self.open: dict[str, dict[int, list[Any]]] = {}
        self.earliest_end: dict[str, int] = {}

    def add(self, entity: str, t: int, fields: Mapping[str, Any]) -> list[FeatureRow] | None:
        start = t - t % self.length
        windows = self.open.get(entity)
        if windows is None:
            self.open[entity] = windows = {}
        accs = windows.get(start)
        if accs is None:
            windows[start] = accs = self.agg_new()
            end = start + self.length
            self.due.add(end, entity)
            if end < self.earliest_end.get(entity, end + 1):
                self.earliest_end[entity] = end
        self.agg_add(accs, t, fields)
        if self.updates and self._wants_update(entity, t):
            return [self._row(entity, start, start + self.length, accs, "update", t)]
        return None

    def holds(self, entity: str) -> bool:
        return entity in self.open

    def close_entity(self, entity: str, watermark: int) -> list[FeatureRow]:
        if self.earliest_end.get(entity, watermark + 1) > watermark:
            return []
        windows = self.open[entity]
        rows = [self._row(entity, s, s + self.length, windows.pop(s))
                for s in sorted(windows) if s + self.length <= watermark]
        if windows:
            self.earliest_end[entity] = min(windows) + self.length
        else:
            del self.open[entity], self.earliest_end[entity]
        return rows

    def flush(self) -> list[FeatureRow]:
        return [row for entity in sorted(self.open) for row in self.close_entity(entity, 2**62)]


class HoppingState(_WindowState):
    """Windows of `length` every `step`, merged from panes of one step."""

    def __init__(self, feature_set: FeatureSet, static: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(feature_set, static)
        self.step = feature_set.window.step_ms
        self.panes_per_window = feature_set.window.length_ms // self.step
        self.panes: dict[str, dict[int, list[Any]]] = {}
        self.next_end: dict[str, int] = {}

    def add(self, entity: str, t: int, fields: Mapping[str, Any]) -> list[FeatureRow] | None:
        k = t // self.step
        panes = self.panes.get(entity)
        if panes is None:
            self.panes[entity] = panes = {}
        accs = panes.get(k)
        if accs is None:
            panes[k] = accs = self.agg_new()
            end = (k + 1) * self.step
            if end < self.next_end.get(entity, end + 1):
                self.next_end[entity] = end
                self.due.add(end, entity)
        self.agg_add(accs, t, fields)
        if self.updates and self._wants_update(entity, t):
            end = (k + 1) * self.step
            return [self._merged_row(entity, end, panes, "update", t)]
        return None

    def _merged_row(self, entity: str, end: int, panes: dict[int, list[Any]], kind: str = "final",
                    as_of: int | None = None) -> FeatureRow:
        last_pane = end // self.step - 1
        first_pane = last_pane - self.panes_per_window + 1
        merged = self.agg_new()
        merge = self.agg.merge
        for k in range(first_pane, last_pane + 1):
            accs = panes.get(k)
            if accs is not None:
                merge(merged, accs)
        return self._row(entity, end - self.step * self.panes_per_window, end, merged, kind, as_of)

    def holds(self, entity: str) -> bool:
        return entity in self.panes

    def close_entity(self, entity: str, watermark: int) -> list[FeatureRow]:
        end = self.next_end.get(entity)
        if end is None or end > watermark:
            return []
        panes = self.panes[entity]
        rows: list[FeatureRow] = []
        n = self.panes_per_window
        while end is not None and end <= watermark:
            rows.append(self._merged_row(entity, end, panes))
            # Panes no later window will read are dropped: the window ending at `end`
            # was the last to include pane end/step - n.
            for k in [k for k in panes if (k + n) * self.step <= end]:
                del panes[k]
            if not panes:
                end = None
                break
            end = max(end + self.step, (min(panes) + 1) * self.step)
        if end is None:
            del self.panes[entity], self.next_end[entity]
        else:
            self.next_end[entity] = end
            self.due.add(end, entity)
        return rows

    def flush(self) -> list[FeatureRow]:
        return [row for entity in sorted(self.panes) for row in self.close_entity(entity, 2**62)]


class SessionState(_WindowState):
    """Sessions of activity separated by at least `gap` of inactivity: `[first, last + gap)`."""

    def __init__(self, feature_set: FeatureSet, static: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(feature_set, static)
        self.gap = feature_set.window.gap_ms
        # Per entity, open sessions as [first_t, last_t, accs], sorted by first_t.
        self.sessions: dict[str, list[list[Any]]] = {}

    def add(self, entity: str, t: int, fields: Mapping[str, Any]) -> list[FeatureRow] | None:
        gap = self.gap
        sessions = self.sessions.setdefault(entity, [])
        touching = [s for s in sessions if s[0] - gap < t < s[1] + gap]
        if touching:
            session = touching[0]
            for other in touching[1:]:  # the event bridges sessions: merge them
                session[0], session[1] = min(session[0], other[0]), max(session[1], other[1])
                self.agg.merge(session[2], other[2])
                sessions.remove(other)
            session[0], session[1] = min(session[0], t), max(session[1], t)
        else:
            session = [t, t, self.agg_new()]
            sessions.append(session)
            sessions.sort(key=lambda s: s[0])
        self.agg_add(session[2], t, fields)
        self.due.add(session[1] + gap, entity)
        if self.updates and self._wants_update(entity, t):
            return [self._row(entity, session[0], session[1] + gap, session[2], "update", t)]
        return None

    def holds(self, entity: str) -> bool:
        return entity in self.sessions

    def close_entity(self, entity: str, watermark: int) -> list[FeatureRow]:
        sessions = self.sessions.get(entity)
        if not sessions:
            return []
        gap = self.gap
        rows = [self._row(entity, s[0], s[1] + gap, s[2]) for s in sessions if s[1] + gap <= watermark]
        if rows:
            remaining = [s for s in sessions if s[1] + gap > watermark]
            if remaining:
                self.sessions[entity] = remaining
            else:
                del self.sessions[entity]
        return rows

    def flush(self) -> list[FeatureRow]:
        return [row for entity in sorted(self.sessions) for row in self.close_entity(entity, 2**62)]


def _event_time(item: tuple[int, int, Mapping[str, Any]]) -> int:
    return item[0]


class LastNState(_WindowState):
    """The last N events of each entity, emitted at each `every` boundary after new events."""

    def __init__(self, feature_set: FeatureSet, static: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(feature_set, static)
        self.n = feature_set.window.n
        self.every = feature_set.window.step_ms
        # Per entity: events as (t, arrival, fields) sorted by (t, arrival); the boundary
        # emitted last; the boundaries that have new events before them.
        self.events: dict[str, list[tuple[int, int, Mapping[str, Any]]]] = {}
        self.emitted: dict[str, int] = {}
        self.pending: dict[str, set[int]] = {}
        self.arrivals = 0
        self.fields_used = self.agg.fields_used

    def add(self, entity: str, t: int, fields: Mapping[str, Any]) -> list[FeatureRow] | None:
        self.arrivals += 1
        events = self.events.get(entity)
        if events is None:
            self.events[entity] = events = []
        # Keep only what the features read: the state holds N events of every entity.
        item = (t, self.arrivals, {name: fields.get(name) for name in self.fields_used})
        if not events or events[-1][0] <= t:  # in order: the common case
            events.append(item)
        else:  # after every event of the same time: arrivals only grow
            events.insert(bisect.bisect_right(events, t, key=_event_time), item)
        boundary = (t // self.every + 1) * self.every
        pending = self.pending.get(entity)
        if pending is None:
            self.pending[entity] = pending = set()
        if boundary not in pending:
            pending.add(boundary)
            self.due.add(boundary, entity)
        if self.updates and self._wants_update(entity, t):
            return [self._last_n_row(entity, events, t + 1, "update", t)]
        return None

    def _last_n_row(self, entity: str, events: list[tuple[int, int, Mapping[str, Any]]], end: int,
                    kind: str = "final", as_of: int | None = None) -> FeatureRow:
        cut = bisect.bisect_left(events, end, key=_event_time)
        chosen = events[max(0, cut - self.n):cut]
        accs = self.agg_new()
        add = self.agg.add
        for t, _, fields in chosen:
            add(accs, t, fields)
        return self._row(entity, chosen[0][0], end, accs, kind, as_of)

    def holds(self, entity: str) -> bool:
        return entity in self.events  # kept for the run: the per-event last-N state has no TTL

    def close_entity(self, entity: str, watermark: int) -> list[FeatureRow]:
        pending = self.pending.get(entity)
        if not pending or min(pending) > watermark:
            return []
        events = self.events[entity]
        rows = []
        for boundary in sorted(b for b in pending if b <= watermark):
            rows.append(self._last_n_row(entity, events, boundary))
            pending.discard(boundary)
            self.emitted[entity] = boundary
        # Keep the N newest events before the last emitted boundary, and everything after it.
        cut = bisect.bisect_left(events, self.emitted[entity], key=_event_time)
        if cut > self.n:
            del events[:cut - self.n]
        if not pending:
            del self.pending[entity]
        return rows

    def flush(self) -> list[FeatureRow]:
        return [row for entity in sorted(self.pending) for row in self.close_entity(entity, 2**62)]


WINDOW_STATES = {"tumbling": TumblingState, "hopping": HoppingState, "session": SessionState, "last_n": LastNState}


def new_window_state(feature_set: FeatureSet, static: Mapping[str, Mapping[str, Any]] | None = None) -> _WindowState:
    """The state class for the feature set's window type."""
    return WINDOW_STATES[feature_set.window.type](feature_set, static)
