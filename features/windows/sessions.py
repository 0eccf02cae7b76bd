"""Session windows of one feature set as numpy arrays: the open sessions of a shard's entities.

The semantics are `features.windows.state.SessionState`'s: a session is `[first event, last
event + gap)`; an event joins every open session it touches (`first - gap < t < last +
gap`), merging them when it bridges several, or starts a new one; a session closes when its
entity's watermark (or the stream's) reaches `last + gap`. An entity's open sessions are
at least `gap` apart, sorted by time, and linked from the latest one back (`prev`).

Each session holds a slot of a pool of `ColumnAggregates` slots. An event at or after its
entity's latest session (the common case: events in time order) can only touch that
session, so a batch of such events is cut into sessions with grouped numpy operations. The
entities with an event out of order in the batch are fed event by event in Python, with
the merge rule above. A merge keeps the merged sessions' slots as parts of one session
(`parts`), folded in time order when it closes; later events go to its last part. So a
session that never merged has the per-event engine's values exactly; a merged one has the
same counts, windows, min, max, first, last, distinct, share and quantiles, and sums and
std equal up to the rounding of a different summation order (`merges` counts them).

>>> from features.windows.config import FeatureSet, FeatureSpec, WindowSpec
>>> fs = FeatureSet("s", "user", "features.s", WindowSpec("session", gap_ms=30_000),
...                 (FeatureSpec("n", "count"), FeatureSpec("m", "max", "price")))
>>> sessions = SessionWindows(fs)
>>> sessions.grow(2)
>>> price = {"price": np.array([1.0, 5.0, 2.0, 3.0])}
>>> sessions.add(np.array([0, 0, 1, 0]), np.array([1_000, 20_000, 5_000, 90_000]), None, price, {})
>>> block = sessions.close(np.array([0, 1]), np.array([60_000, 60_000]))
>>> list(zip(block.entity_ids.tolist(), block.starts.tolist(), block.ends.tolist(), block.values["m"]))
[(0, 1000, 50000, 5.0), (1, 5000, 35000, 2.0)]
>>> sessions.live(np.array([0, 1])).tolist()
[True, False]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from features.partition_progress import NEVER
from features.schema import EventSchema
from features.windows.config import FeatureSet
from features.windows.ordering import stable_order
from features.windows.panes import (
    NO_END,
    ColumnAggregates,
    DueIndex,
    FreeSlots,
    ObjectColumn,
    WindowBlock,
    grown,
    run_heads,
)

_CLOSE_ALL = np.iinfo(np.int64).max // 4


class SessionWindows:
    """The open sessions of one session feature set, for the entities of one shard."""

    def __init__(self, feature_set: FeatureSet, schema: EventSchema | None = None) -> None:
        if feature_set.window.type != "session" or feature_set.emit != "final":
            raise ValueError("session windows serve session sets with emit = final")
        self.spec = feature_set
        self.gap = feature_set.window.gap_ms
        self.aggregates = ColumnAggregates(feature_set, schema)
        self.fields, self.objects = self.aggregates.fields, self.aggregates.objects
        self.capacity = 0
        self.latest = np.zeros(0, np.int64)  # per entity: the slot of its latest open session, -1: none
        self.next_end = np.zeros(0, np.int64)  # per entity: when to look again (at or before its earliest end)
        self.due = DueIndex()
        # The pool: per slot, a session's entity, first and last event time, the slot of the
        # entity's previous session (-1: none) and the events added to the slot.
        self.entity = np.zeros(0, np.int64)
        self.first = np.zeros(0, np.int64)
        self.last = np.zeros(0, np.int64)
        self.prev = np.zeros(0, np.int64)
        self.count = np.zeros(0, np.int64)
        self.free = FreeSlots()
        self.parts: dict[int, list[int]] = {}  # a merged session's slot -> the slots merged into it, in time order
        self.merges = 0

    # ------------------------------------------------------------------ state size

    def grow(self, capacity: int) -> None:
        """Make room for entity ids below `capacity`."""
        if capacity <= self.capacity:
            return
        size = max(capacity, 2 * self.capacity, 64)
        self.latest = grown(self.latest, size, -1)
        self.next_end = grown(self.next_end, size, NO_END)
        self.capacity = size

    @property
    def slots_held(self) -> int:
        """Pool slots in use (open sessions and their merged parts)."""
        return self.free.held

    def fits(self, entity_ids: np.ndarray, times: np.ndarray) -> bool:
        """Always: the pool grows."""
        return True

    def live(self, entity_ids: np.ndarray) -> np.ndarray:
        """Whether each entity has an open session."""
        return self.latest[entity_ids] >= 0

    def forget(self, entity_ids: np.ndarray) -> None:
        """The entities' ids are being released (they hold no session): nothing to drop."""

    def _allocate(self, n: int) -> np.ndarray:
        return self.free.take(n, self._grow_pool)

    def _grow_pool(self, size: int) -> None:
        self.first, self.last = grown(self.first, size, 0), grown(self.last, size, 0)
        self.prev, self.count = grown(self.prev, size, -1), grown(self.count, size, 0)
        self.entity = grown(self.entity, size, -1)
        self.aggregates.resize(size)

    def _release(self, slots: np.ndarray) -> None:
        self.prev[slots] = -1
        self.count[slots] = 0
        self.aggregates.reset(slots)
        self.free.give(slots)

    # ------------------------------------------------------------------ adding

    def add(self, entity_ids: np.ndarray, times: np.ndarray, arrivals: np.ndarray | None,
            columns: Mapping[str, np.ndarray], objects: Mapping[str, ObjectColumn]) -> None:
        """Add non-late events in arrival order (`arrivals` is not needed here)."""
        n = len(times)
        if not n:
            return
        order = stable_order(entity_ids)
        e, t = entity_ids[order], times[order]
        heads = run_heads(e)
        head = np.zeros(n, bool)
        head[heads] = True
        latest = self.latest[e[heads]]
        # Each event's predecessor: the entity's previous event, or its latest session's last event.
        prev = np.empty(n, np.int64)
        prev[1:] = t[:-1]
        known = np.full(len(heads), NEVER, np.int64)
        known[latest >= 0] = self.last[latest[latest >= 0]]
        prev[heads] = known
        behind = np.logical_or.reduceat(t < prev, heads)  # an event out of order: the per-event path
        ordered = ~np.repeat(behind, np.diff(np.append(heads, n)))
        slot_of = np.empty(n, np.int64)
        touched = []
        if ordered.any():
            touched.append(self._add_ordered(e[ordered], t[ordered], head[ordered], prev[ordered], slot_of, ordered))
        if behind.any():
            touched.append(self._add_one_by_one(e[~ordered], t[~ordered], slot_of, ~ordered))
        slots = np.empty(n, np.int64)
        slots[order] = slot_of
        self._schedule(np.concatenate(touched))
        by_slot = stable_order(slots)
        sorted_slots = slots[by_slot]
        np.add.at(self.count, sorted_slots, 1)
        sorted_objects = {name: objects[name].take(by_slot) for name in self.objects}
        self.aggregates.add(sorted_slots, times[by_slot], {name: columns[name][by_slot] for name in self.fields},
                            sorted_objects)

    def _add_ordered(self, e: np.ndarray, t: np.ndarray, head: np.ndarray, prev: np.ndarray, slot_of: np.ndarray,
                     where: np.ndarray) -> np.ndarray:
        """Events in time order per entity, none before its latest session's last event: a new session
        wherever an event is `gap` or more after its predecessor. Returns the sessions touched."""
        starts = (prev == NEVER) | (t - prev >= self.gap)
        segment_heads = np.flatnonzero(starts | head)
        new = starts[segment_heads]
        seg_e = e[segment_heads]
        seg_slot = self.latest[seg_e]  # a first segment that is not new continues the latest session
        fresh = self._allocate(int(new.sum()))
        seg_slot[new] = fresh
        self.first[fresh] = t[segment_heads[new]]
        self.entity[fresh] = seg_e[new]
        seg_last = np.maximum.reduceat(t, segment_heads)
        self.last[seg_slot] = np.maximum(np.where(new, NEVER, self.last[seg_slot]), seg_last)
        # Link each new session to the entity's one before it.
        before = np.empty(len(seg_slot), np.int64)
        before[1:] = seg_slot[:-1]
        entity_head = head[segment_heads]
        before[entity_head] = self.latest[seg_e[entity_head]]
        self.prev[seg_slot[new]] = before[new]
        last_of_entity = np.append(entity_head[1:], True)
        self.latest[seg_e[last_of_entity]] = seg_slot[last_of_entity]
        slot_of[where] = np.repeat(seg_slot, np.diff(np.append(segment_heads, len(t))))
        return seg_slot

    def _add_one_by_one(self, e: np.ndarray, t: np.ndarray, slot_of: np.ndarray, where: np.ndarray) -> np.ndarray:
        """Events of entities with an event out of order, one at a time as `SessionState.add` does
        (sorted by entity, arrival order within). Returns the sessions touched."""
        gap = self.gap
        chosen = []
        touched = []
        for entity, heads in _runs(e):
            sessions = self._sessions_of(entity)  # [first, last, slot], by time
            for time in t[heads[0]: heads[1]].tolist():
                touching = [s for s in sessions if s[0] - gap < time < s[1] + gap]
                if touching:
                    session = touching[0]
                    for other in touching[1:]:
                        session[0], session[1] = min(session[0], other[0]), max(session[1], other[1])
                        self.parts.setdefault(session[2], []).extend([other[2], *self.parts.pop(other[2], [])])
                        sessions.remove(other)
                        self.merges += 1
                    session[0], session[1] = min(session[0], time), max(session[1], time)
                else:
                    session = [time, time, int(self._allocate(1)[0])]
                    self.entity[session[2]] = entity
                    sessions.append(session)
                    sessions.sort(key=lambda s: s[0])
                parts = self.parts.get(session[2])
                chosen.append(parts[-1] if parts else session[2])
            previous = -1
            for first, last, slot in sessions:
                self.first[slot], self.last[slot], self.prev[slot] = first, last, previous
                previous = slot
                touched.append(slot)
            self.latest[entity] = previous
        slot_of[where] = chosen
        return np.array(touched, np.int64)

    def _sessions_of(self, entity: int) -> list[list[int]]:
        sessions = []
        slot = int(self.latest[entity])
        while slot >= 0:
            sessions.append([int(self.first[slot]), int(self.last[slot]), slot])
            slot = int(self.prev[slot])
        return sessions[::-1]

    def _schedule(self, sessions: np.ndarray) -> None:
        """Look at the sessions' entities again when the earliest of their ends is due."""
        entities = self.entity[sessions]
        ends = self.last[sessions] + self.gap
        earlier = ends < self.next_end[entities]
        if earlier.any():
            entities, ends = entities[earlier], ends[earlier]
            np.minimum.at(self.next_end, entities, ends)
            self.due.schedule(entities, ends)

    # ------------------------------------------------------------------ closing

    def close(self, entity_ids: np.ndarray, watermarks: np.ndarray) -> WindowBlock:
        """Emit, for each entity, its sessions ending at or before its watermark; rows by entity, then time."""
        due = self.next_end[entity_ids] <= watermarks
        entity_ids, watermarks = entity_ids[due], watermarks[due]
        if not len(entity_ids):
            return self._empty()
        # Every open session of these entities, walking back from the latest.
        owners, slots = [], []
        frontier, who = self.latest[entity_ids], np.arange(len(entity_ids))
        while True:
            held = frontier >= 0
            frontier, who = frontier[held], who[held]
            if not len(frontier):
                break
            owners.append(who)
            slots.append(frontier)
            frontier = self.prev[frontier]
        owner, slot = np.concatenate(owners), np.concatenate(slots)
        ends = self.last[slot] + self.gap
        closing = ends <= watermarks[owner]
        # The entity's sessions left open: its earliest end is when to look again; the oldest of
        # them now has none before it (the closed ones were the oldest).
        earliest = np.full(len(entity_ids), NO_END, np.int64)
        np.minimum.at(earliest, owner[~closing], ends[~closing])
        open_slots = slot[~closing]
        self.prev[open_slots[np.isin(self.prev[open_slots], slot[closing])]] = -1
        self.latest[entity_ids[earliest == NO_END]] = -1
        self.next_end[entity_ids] = earliest
        again = earliest != NO_END
        if again.any():
            self.due.schedule(entity_ids[again], earliest[again])
        if not closing.any():
            return self._empty()
        owner, slot = owner[closing], slot[closing]
        order = np.lexsort((self.first[slot], owner))
        owner, slot = owner[order], slot[order]
        block = self._block(entity_ids[owner], slot)
        self._release(np.concatenate([slot, np.array([p for s in slot.tolist() for p in self.parts.pop(s, ())],
                                                      np.int64)]))
        return block

    def _block(self, eids: np.ndarray, heads: np.ndarray) -> WindowBlock:
        width = 1 + max((len(self.parts.get(s, ())) for s in heads.tolist()), default=0)
        matrix = np.repeat(heads[:, None], width, axis=1)
        valid = np.zeros((len(heads), width), bool)
        valid[:, 0] = True
        if width > 1:
            for i, s in enumerate(heads.tolist()):
                parts = self.parts.get(s, ())
                matrix[i, 1: 1 + len(parts)] = parts
                valid[i, 1: 1 + len(parts)] = True
        starts, ends = self.first[heads], self.last[heads] + self.gap
        counts = np.where(valid, self.count[matrix], 0).sum(axis=1)
        return WindowBlock(eids, starts, ends, counts, self.aggregates.values(matrix, valid, ends - starts))

    def flush(self, entity_ids: np.ndarray | None = None) -> WindowBlock:
        """Emit every open session (the inputs have ended); of the entities `entity_ids` only, if given."""
        live = (np.flatnonzero(self.latest[: self.capacity] >= 0) if entity_ids is None
                else entity_ids[self.latest[entity_ids] >= 0])
        return self.close(live, np.full(len(live), _CLOSE_ALL, np.int64))

    def _empty(self) -> WindowBlock:
        empty = np.zeros(0, np.int64)
        return WindowBlock(empty, empty, empty, empty, {f.name: [] for f in self.spec.features})


def _runs(keys: np.ndarray) -> list[tuple[int, tuple[int, int]]]:
    heads = run_heads(keys)
    ends = np.append(heads[1:], len(keys))
    return [(k, (a, b)) for k, a, b in zip(keys[heads].tolist(), heads.tolist(), ends.tolist())]

