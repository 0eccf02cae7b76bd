"""A model's events and labels of one batch, as columns: what the model flow's steps pass on.

Between worker processes Bytewax pickles every item. The model flow sends one item per
(destination shard, batch) whose events and labels are columns (int64 arrays for times,
lists of strings and values), so pickling costs a few C loops per batch instead of a tuple,
a dict and a string per event; the model shard pushes the columns into its ordering buffer
(`OrderedRelease`), which makes an entry per item (in C) only then:
`(order time, rank, join key, arrival number, segment, own time, payload)`. The order time is
the event time in the event-time order and the sequence time in the arrival order; an
event's payload is (entity, input vector, fields for feature inputs or None), a label's its value.

>>> from features.stream_order import OrderedRelease
>>> events = EventColumns(np.array([5, 7]), np.array([5, 6]), ["r1", "r2"], ["a", "b"], ["a", "b"],
...                       (["card", None],), None)
>>> events.take([1]).keys, len(events.take([0, 1]))
(['r2'], 2)
>>> order = OrderedRelease(senders=1)
>>> push(order, [events, LabelColumns.of([(5, "r1", "a", True, 5)])], ("payment",), ())
>>> order.flush()  # doctest: +NORMALIZE_WHITESPACE
[(5, 0, 'r1', 1, 'a', 5, ('a', {'payment': 'card'}, None)), (5, 1, 'r1', 3, 'a', 5, True),
 (7, 0, 'r2', 2, 'b', 6, ('b', {}, None))]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from features.partition_progress import NEVER
from features.stream_order import OrderedRelease

EVENT, LABEL = 0, 1  # ranks: at equal times an event is predicted before a label is learned


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

    def payloads(self, names: Sequence[str], field_names: Sequence[str]) -> list[tuple[str, dict[str, Any], Any]]:
        """Each event's (entity, input vector, fields); `names` are the input columns' names (the
        vectors' keys), `field_names` those of the field columns (each event's fields, a dict,
        for its feature inputs; None without them)."""
        fields = (map(dict, map(zip, repeat(field_names), zip(*self.fields))) if self.fields is not None
                  else repeat(None))
        return list(zip(self.entities, self.vectors(names), fields))

    def vectors(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """Each event's input vector: its inputs by name, in `names` order, nulls left out.

        >>> EventColumns(np.array([1, 2]), np.array([1, 2]), ["r1", "r2"], [None, None], ["a", "a"],
        ...              ([1.5, None], ["card", "cash"]), None).vectors(("x", "pay"))
        [{'x': 1.5, 'pay': 'card'}, {'pay': 'cash'}]
        """
        vectors = [dict(zip(names, values)) for values in zip(*self.inputs)] if self.inputs else \
            [{} for _ in self.keys]
        for name, column in zip(names, self.inputs):
            if None in column:  # rare: the nulls' keys come out (deleting keeps the others' order)
                for i in [i for i, value in enumerate(column) if value is None]:
                    del vectors[i][name]
        return vectors


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

    def joined(self, index: list[int], segments: list[Any]) -> LabelColumns:
        """The labels at `index` (ascending positions), with their events' segments.

        >>> LabelColumns.of([(5, "r1", None, True, 5), (6, "r2", None, False, 6)]).joined([1], ["a"]).segments
        ['a']
        """
        taken = self.take(index)
        return LabelColumns(taken.order, taken.times, taken.keys, segments, taken.values)

    @staticmethod
    def of(rows: Sequence[tuple[int, str, Any, Any, int]]) -> LabelColumns:
        """Labels from (order time, join key, segment, value, own time) rows."""
        order, keys, segments, values, times = zip(*rows) if rows else ((), (), (), (), ())
        return LabelColumns(np.array(order, dtype=np.int64), np.array(times, dtype=np.int64), list(keys),
                            list(segments), list(values))


def push(order: OrderedRelease, parts: Sequence[EventColumns | LabelColumns], names: Sequence[str],
         field_names: Sequence[str]) -> None:
    """One sender's batch of events and labels into the ordering buffer, as one run of entries
    (see the module's docstring; `names`, `field_names`: `EventColumns.payloads`)."""
    times: list[int] = []
    ranks: list[int] = []
    keys: list[str] = []
    segments: list[Any] = []
    own: list[int] = []
    payloads: list[Any] = []
    for columns in parts:
        times += columns.order.tolist()
        keys += columns.keys
        segments += columns.segments
        own += columns.times.tolist()
        if type(columns) is EventColumns:
            ranks += repeat(EVENT, len(columns))
            payloads += columns.payloads(names, field_names)
        else:
            ranks += repeat(LABEL, len(columns))
            payloads += columns.values
    order.push(times, ranks, keys, segments, own, payloads)


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
