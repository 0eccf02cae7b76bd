"""A model's events and labels of one batch, as columns: what the model flow's steps pass on.

Between worker processes Bytewax pickles every item. The model flow sends one item per
(destination shard, batch) whose events and labels are columns (int64 arrays for times,
lists of strings and values), so pickling costs a few C loops per batch instead of a tuple,
a dict and a string per event; the model shard turns the columns into rows only when it puts
them in order.

>>> events = EventColumns(np.array([5, 7]), np.array([5, 6]), ["r1", "r2"], ["a", "b"], ["a", "b"],
...                       (["card", None],), None)
>>> events.take([1]).keys, len(events.take([0, 1]))
(['r2'], 2)
>>> [row[3] for row in events.rows(("payment",), ())]  # (order, rank, key, item): item[4] is the payload
[(0, 5, 'r1', 'a', ('a', {'payment': 'card'}, None), 5), (0, 7, 'r2', 'b', ('b', {}, None), 6)]
>>> LabelColumns.of([(9, "r1", "a", True, 9)]).rows()[0]
(9, 1, 'r1', (1, 9, 'r1', 'a', True, 9))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.partition_progress import NEVER

EVENT, LABEL = 0, 1  # ranks: at equal times an event is predicted before a label is learned

# (order time, rank, join key, (rank, order time, join key, segment, payload, own time)): an
# entry of the model shard's ordering buffer. The order time is the event time in the
# event-time order and the sequence time in the arrival order; an event's payload is
# (entity, input vector, fields for feature inputs or None), a label's its value.
Row = tuple[int, int, str, tuple[int, int, str, Any, Any, int]]


@dataclass(frozen=True, eq=False)
class EventColumns:
    """Events of one model, in arrival order: their order and own times, join keys, segments,
    entities, the model's field inputs (one column per input, None where null) and, for a
    model with feature inputs, the columns of the fields its feature sets' windows read."""

    order: np.ndarray  # int64
    times: np.ndarray  # int64
    keys: list[str]
    segments: list[Any]
    entities: list[str]
    inputs: tuple[list[Any], ...]
    fields: tuple[list[Any], ...] | None

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, index: list[int]) -> EventColumns:
        """The events at `index` (ascending positions); all of them: this same object."""
        if len(index) == len(self.keys):
            return self
        at = np.array(index, dtype=np.int64)
        fields = self.fields
        return EventColumns(self.order[at], self.times[at], [self.keys[i] for i in index],
                            [self.segments[i] for i in index], [self.entities[i] for i in index],
                            tuple([column[i] for i in index] for column in self.inputs),
                            None if fields is None else tuple([column[i] for i in index] for column in fields))

    def rows(self, names: Sequence[str], field_names: Sequence[str]) -> list[Row]:
        """Ordering-buffer entries; `names` are the input columns' names (the vector's keys),
        `field_names` those of the field columns (each event's fields, a dict, for its feature inputs)."""
        vectors = ([{n: v for n, v in zip(names, values) if v is not None} for values in zip(*self.inputs)]
                   if self.inputs else [{} for _ in self.keys])
        fields = ([dict(zip(field_names, values)) for values in zip(*self.fields)] if self.fields is not None
                  else [None] * len(self.keys))
        return [(t, EVENT, key, (EVENT, t, key, segment, (entity, x, f), own))
                for t, own, key, segment, entity, x, f in zip(self.order.tolist(), self.times.tolist(), self.keys,
                                                              self.segments, self.entities, vectors, fields)]


@dataclass(frozen=True, eq=False)
class LabelColumns:
    """Labels of one model, in the order they were joined: order and own times, join keys,
    segments (None until a join shard found their event's) and values."""

    order: np.ndarray  # int64
    times: np.ndarray  # int64
    keys: list[str]
    segments: list[Any]
    values: list[Any]

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, index: list[int]) -> LabelColumns:
        """The labels at `index` (ascending positions); all of them: this same object."""
        if len(index) == len(self.keys):
            return self
        at = np.array(index, dtype=np.int64)
        return LabelColumns(self.order[at], self.times[at], [self.keys[i] for i in index],
                            [self.segments[i] for i in index], [self.values[i] for i in index])

    @staticmethod
    def of(rows: Sequence[tuple[int, str, Any, Any, int]]) -> LabelColumns:
        """Labels from (order time, join key, segment, value, own time) rows."""
        order, keys, segments, values, times = zip(*rows) if rows else ((), (), (), (), ())
        return LabelColumns(np.array(order, dtype=np.int64), np.array(times, dtype=np.int64), list(keys),
                            list(segments), list(values))

    def rows(self) -> list[Row]:
        """Ordering-buffer entries."""
        return [(t, LABEL, key, (LABEL, t, key, segment, value, own))
                for t, own, key, segment, value in zip(self.order.tolist(), self.times.tolist(), self.keys,
                                                       self.segments, self.values)]


def partition_order(high: int | None, lateness_ms: int, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(late, sequence times) of one partition's items, in partition order, after an item at
    `high` (None: the first): an item is late when it is more than `lateness_ms` behind the
    largest time before it (`PartitionClocks.behind`); its sequence time is the largest time
    read up to and with it.

    >>> late, seq = partition_order(100, 10, np.array([95, 89, 120, 109]))
    >>> late.tolist(), seq.tolist()
    ([False, True, False, True], [100, 100, 120, 120])
    """
    highs = np.maximum.accumulate(np.concatenate(([NEVER if high is None else high], times)))
    before = highs[:-1]
    return (before != NEVER) & (times < before - lateness_ms), highs[1:]
