"""Feature-set values as model inputs, point-in-time correct: what was known at the event's time.

A model shard feeds every event it sees, in its release order, to a `FeatureInputs`. Before
an event at time `t` is predicted, the windows of the feature sets that end at or before
`t` are closed; the event then reads its entity's latest closed window of each set, and
joins the open windows afterwards. So a prediction never sees its own event or a later one,
and a replay, a Kafka run and any number of workers give the same vectors.

Which window an event at `t` reads:

- tumbling and hopping: the window that ends at the latest step boundary `b <= t`. If the
  entity had no event in it there is no row, and the event reads the values of an empty
  window (`count`, `sum`, `distinct`, `rate` 0, the rest null and so left out of the vector), as the
  window really was, not an older window's values;
- last_n and session: the latest window that closed at or before `t`, however old (the last
  N events stay the last N until new ones come; a session's features stay those of the
  entity's previous session) within the set's `state_ttl`: a row whose window ended
  `state_ttl` or longer before `t` is no longer read. Before the first one closes: nothing.

**How.** Tumbling, hopping and last-N windows are the features flow's columnar code
(`PaneWindows`, `LastNWindows`). Window ends are multiples of the set's step (last-N: its
`every`), so what an event reads changes only when its time crosses a boundary: events
between two boundaries are buffered (up to `BUFFERED`), and when an event crosses one the
buffer goes into the windows as one numpy batch, the windows due at the boundary close (`due` by watermark), and
each entity's latest closed row is kept (the window code runs once per step, not per
event). Sessions, whose windows end anywhere, keep the per-event `SessionState`.

**Bounded state.** Entities whose windows have all closed are released from the columnar
windows (their ids are reused). A latest row is dropped once no later event can read it:
tumbling and hopping rows as soon as their end is behind the boundary of every event still
to come (in the event-time order: at the next boundary), last-N and session rows
`state_ttl` after their window's end; a last-N entity idle for `state_ttl` is forgotten
(as in the features flow), and starts afresh when it returns.

**The arrival order** releases events up to `lateness_ms` behind earlier ones (never more:
see docs/models.md). Such an event reads what the events before it closed, and joins its
windows (panes of a window already closed are made again and emitted at the next boundary);
a window emitted again does not replace the newer or equal row an entity already has.

>>> from features.windows.config import FeatureSet, FeatureSpec, WindowSpec
>>> from features.models.config import FeatureInput
>>> fs = FeatureSet("a1m", "area", "features.a1m", WindowSpec("tumbling", 60_000, 60_000),
...                 (FeatureSpec("rides", "count"), FeatureSpec("mean_price", "mean", "price")))
>>> inputs = FeatureInputs((fs,), (FeatureInput("a1m.rides", "a1m", "rides", True),
...                                FeatureInput("a1m.mean_price", "a1m", "mean_price", True)))
>>> [inputs.on_event(t, {"area": "x", "price": p}) for t, p in ((1_000, 10.0), (59_999, 20.0), (60_000, 1.0))]
[{'a1m.rides': 0}, {'a1m.rides': 0}, {'a1m.rides': 2, 'a1m.mean_price': 15.0}]
>>> inputs.on_event(180_500, {"area": "x", "price": 5.0})  # [120 s, 180 s) had no ride in x
{'a1m.rides': 0}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from features.models.config import FeatureInput
from features.partition_progress import NEVER
from features.schema import EventSchema
from features.windows.aggregates import compile_aggregates
from features.windows.columnar import EntityIds
from features.windows.config import FeatureSet
from features.windows.last_n import LastNWindows
from features.windows.panes import ColumnAggregates, ObjectColumn, PaneWindows, WindowBlock
from features.windows.state import SessionState

# Events buffered at most: adding them earlier changes no read (only closing does), and keeps
# the buffer (shard state, in every snapshot) small however many events a step holds.
BUFFERED = 4096

# entity -> (window end, its (input name, value) pairs without nulls: what an event puts in its vector)
Latest = dict[str, tuple[int, tuple[tuple[str, Any], ...]]]


def _final(feature_set: FeatureSet) -> FeatureSet:
    # Only final windows are read: no interim rows, no change filter.
    return dataclasses.replace(feature_set, emit="final", update_every_ms=0)


def _remember(latest: Latest, entity: str, end: int, names: tuple[str, ...], values: Sequence[Any]) -> None:
    row = latest.get(entity)
    if row is None or end > row[0]:  # an emitted-again window (arrival order) replaces nothing
        latest[entity] = (end, _pairs(names, values))


def _pairs(names: tuple[str, ...], values: Sequence[Any]) -> tuple[tuple[str, Any], ...]:
    return tuple((name, value) for name, value in zip(names, values) if value is not None)


def fields_read(feature_sets: Sequence[FeatureSet], inputs: Sequence[FeatureInput],
                schema: EventSchema) -> tuple[str, ...]:
    """The event fields the windows of the inputs' feature sets read, in the schema's order: a
    set's entity and its aggregations' fields and filters (`ColumnAggregates`); every field when
    one of the sets is a session (`SessionState` reads the event as a whole).

    >>> from features.schema import EventSchema, FieldSpec
    >>> from features.windows.config import FeatureSet, FeatureSpec, WindowSpec
    >>> from features.models.config import FeatureInput
    >>> schema = EventSchema("area", "ts", "epoch_ms", (FieldSpec("area", "string"), FieldSpec("price", "float"),
    ...                                                 FieldSpec("eta", "float")))
    >>> fs = FeatureSet("a1m", "area", "features.a1m", WindowSpec("tumbling", 60_000, 60_000),
    ...                 (FeatureSpec("rides", "count"), FeatureSpec("mean_price", "mean", "price")))
    >>> fields_read((fs,), (FeatureInput("a1m.rides", "a1m", "rides", True),), schema)
    ('area', 'price')
    """
    by_set = {fs.name: fs for fs in feature_sets}
    read: set[str] = set()
    for name in dict.fromkeys(i.feature_set for i in inputs):
        fs = by_set[name]
        if fs.window.type == "session":
            return schema.field_names
        aggregates = ColumnAggregates(fs, schema)
        read.update((fs.entity, *aggregates.fields, *aggregates.objects))
    return tuple(name for name in schema.field_names if name in read)


class _ColumnarInputs:
    """A tumbling, hopping or last-N set: buffered events, the columnar windows, latest rows."""

    def __init__(self, feature_set: FeatureSet, inputs: Sequence[FeatureInput], lateness_ms: int,
                 schema: EventSchema | None) -> None:
        feature_set = _final(feature_set)
        window = feature_set.window
        self.entity_field = feature_set.entity
        self.last_n = window.type == "last_n"
        self.windows = (LastNWindows(feature_set, schema, feature_set.state_ttl_ms) if self.last_n
                        else PaneWindows(feature_set, lateness_ms, schema))
        self.step = window.length_ms if window.type == "tumbling" else window.step_ms
        self.lateness = lateness_ms
        self.ttl = feature_set.state_ttl_ms
        self.names = tuple(i.name for i in inputs)
        self.features = tuple(i.feature for i in inputs)
        aggregates = compile_aggregates(feature_set.features)
        empty = aggregates.values(aggregates.new(), window.length_ms)
        self.empty = _pairs(self.names, [empty[f] for f in self.features])  # tumbling, hopping: no events
        self.ids = EntityIds()
        self.latest: Latest = {}
        self.closed = NEVER  # the boundary the windows were closed at last
        self.arrivals = 0  # orders last-N events of equal time
        # The events since the last boundary, as parallel lists (a tuple per event would be a
        # container for the garbage collector to track: a third more CPU per event).
        self.times: list[int] = []
        self.entities: list[str] = []
        self.records: list[Mapping[str, Any]] = []

    def on_event(self, t: int, fields: Mapping[str, Any], out: dict[str, Any]) -> None:
        boundary = t - t % self.step
        if boundary > self.closed:
            self._close(boundary)
        entity = str(fields[self.entity_field])
        row = self.latest.get(entity)
        if self.last_n:
            if row is not None and row[0] > t - self.ttl:
                out.update(row[1])
        elif row is not None and row[0] == boundary:
            out.update(row[1])
        else:
            out.update(self.empty)
        self.times.append(t)
        self.entities.append(entity)
        self.records.append(fields)
        if len(self.times) >= BUFFERED:
            self._add_buffered()

    def _add_buffered(self) -> None:
        times, entities, records = self.times, self.entities, self.records
        if not times:
            return
        self.times, self.entities, self.records = [], [], []
        windows = self.windows
        eids = self.ids.lookup(entities)
        windows.grow(self.ids.capacity)
        columns = {name: np.array([r.get(name) for r in records], np.float64) for name in windows.fields}
        objects = {name: ObjectColumn([r.get(name) for r in records]) for name in windows.objects}
        n = len(times)
        at = np.array(times, np.int64)
        # The release order keeps events within `lateness` of each other, so every pane has its
        # ring slot; a broken order must fail loudly, not merge two panes into one slot.
        if isinstance(windows, PaneWindows) and not windows.fits(eids, at):
            raise RuntimeError(f"feature inputs from {self.windows.spec.name!r}: events out of the release "
                               "order's bounds (a pane's ring slot is still in use); this is a bug, please report it")
        windows.add(eids, at, self.arrivals + np.arange(n), columns, objects)
        self.arrivals += n

    def _close(self, boundary: int) -> None:
        """Close every window ending at or before `boundary`; keep the latest rows; release what is done."""
        self._add_buffered()
        windows = self.windows
        due = windows.due.pop(boundary)
        if due.size:
            self._keep(windows.close(due, np.full(len(due), boundary, np.int64)))
            if not self.last_n:
                names = self.ids.names  # a stale due entry may name an id released already
                done = np.array([j for j in due[~windows.live(due)].tolist() if names[j] is not None], np.int64)
                windows.forget(done)
                self.ids.release(done)
        # Every later event is at or after `boundary - lateness` (the arrival order's bound).
        earliest = boundary - self.lateness
        if self.last_n:
            self.ids.release(windows.expire(earliest))
            keep_from = earliest - self.ttl + 1
        else:
            keep_from = earliest - earliest % self.step
        self.latest = {e: row for e, row in self.latest.items() if row[0] >= keep_from}
        self.closed = boundary

    def _keep(self, block: WindowBlock) -> None:
        latest = self.latest
        columns = [block.values[f] for f in self.features]
        for entity, end, values in zip(self.ids.keys(block.entity_ids), block.ends.tolist(), zip(*columns)):
            _remember(latest, entity, end, self.names, values)


class _SessionInputs:
    """A session set: the per-event `SessionState` (sessions end anywhere), latest rows."""

    def __init__(self, feature_set: FeatureSet, inputs: Sequence[FeatureInput], lateness_ms: int) -> None:
        self.state = SessionState(_final(feature_set))
        self.entity_field = feature_set.entity
        self.names = tuple(i.name for i in inputs)
        self.features = tuple(i.feature for i in inputs)
        self.lateness = lateness_ms
        self.ttl = feature_set.state_ttl_ms
        self.latest: Latest = {}
        self.pruned = NEVER  # when rows older than the TTL were last dropped

    def on_event(self, t: int, fields: Mapping[str, Any], out: dict[str, Any]) -> None:
        latest = self.latest
        for row in self.state.close_due(t):
            _remember(latest, row.entity, row.end_ms, self.names, [row.values.get(f) for f in self.features])
        if t - self.pruned >= self.ttl:  # once per TTL of event time: rows no later event reads
            self.latest = latest = {e: r for e, r in latest.items() if r[0] > t - self.lateness - self.ttl}
            self.pruned = t
        entity = str(fields[self.entity_field])
        row = latest.get(entity)
        if row is not None and row[0] > t - self.ttl:
            out.update(row[1])
        self.state.add(entity, t, fields)


class FeatureInputs:
    """The feature inputs of one model shard: fed every event of the shard in its release order.

    `lateness_ms` bounds how far an event may be behind an earlier one: 0 in the event-time
    order, `source.lateness` in the arrival order. The whole object is shard state (it
    pickles into Bytewax recovery snapshots).
    """

    def __init__(self, feature_sets: Sequence[FeatureSet], inputs: Sequence[FeatureInput], lateness_ms: int = 0,
                 schema: EventSchema | None = None) -> None:
        by_set = {fs.name: fs for fs in feature_sets}
        self.sets: list[_ColumnarInputs | _SessionInputs] = []
        for name in dict.fromkeys(i.feature_set for i in inputs):
            fs, mine = by_set[name], [i for i in inputs if i.feature_set == name]
            self.sets.append(_SessionInputs(fs, mine, lateness_ms) if fs.window.type == "session"
                             else _ColumnarInputs(fs, mine, lateness_ms, schema))

    def on_event(self, time_ms: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The feature inputs of an event at `time_ms` (null values left out); then the event
        joins the open windows."""
        out: dict[str, Any] = {}
        for s in self.sets:
            s.on_event(time_ms, fields, out)
        return out
