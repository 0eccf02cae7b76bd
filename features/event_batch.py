"""A batch of valid events as columns: decoded once per batch, read by every flow.

`BatchDecoder.decode` turns a batch of message values into an `EventBatch` of the valid
events, in arrival order, and the rejections by position. Each message is decoded on its
own into a typed msgspec `Struct` compiled from the schema (about four times faster than
`orjson.loads` followed by per-field checks); every message it refuses, and every event
time outside the fast path's bounds, goes to `EventDecoder.decode`, the one place that
decides what is valid and words the reason. So a batch accepts and rejects exactly what
single decoding does, with the same reasons (tests/test_event_batch.py checks this on
hostile input). A batch of one message per call would be unsound: joined invalid messages
can parse as valid ones.

The batch keeps the entity keys, event times, partitions and offsets as arrays, every
declared field as a column, and the decoded JSON objects only on demand (`records`: late
events, samples and the steps that still take one event at a time).

>>> from features.events import DecodeLimits, EventDecoder
>>> from features.schema import parse_schema
>>> schema = parse_schema({"entity": "area", "event_time": "ts",
...                        "fields": {"area": "string", "price": {"type": "float", "nullable": True}}})
>>> decoder = BatchDecoder(EventDecoder(schema, DecodeLimits()))
>>> values = [b'{"area": "a", "ts": 1767225600000, "price": 2.5}', b'oops',
...           b'{"area": "b", "ts": 1767225600007, "price": null}']
>>> batch, rejected = decoder.decode(values, 1767225600010, [0, 0, 1], [0, 1, 0])
>>> batch.entities, batch.times.tolist(), batch.numbers("price").tolist()
(['a', 'b'], [1767225600000, 1767225600007], [2.5, nan])
>>> [(i, r.reason.value) for i, r in rejected]
[(1, 'not_json')]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Annotated, Any

import msgspec
import numpy as np
import orjson

from features.events import Event, EventDecoder, Rejection
from features.schema import FieldSpec

_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, eq=False)
class EventBatch:
    """Valid events in arrival order: entity keys, event times (epoch ms), where each was read,
    their fields as columns (Python values, None where null or absent), and the message bytes.

    `take` gives a view: its columns and bytes are read from the batch it came from on first
    use, so splitting a batch by shard copies only what each shard reads. A view pickles
    as a plain batch.
    """

    entities: list[str]
    times: np.ndarray  # int64
    partitions: np.ndarray  # int64
    offsets: np.ndarray  # int64
    columns: dict[str, list[Any]]
    raws: list[bytes | None] | None
    unknown: dict[str, np.ndarray] = field(default_factory=dict)  # category field -> outside its vocabulary
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    _parent: EventBatch | None = field(default=None, repr=False)
    _index: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.entities)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (to cross workers, or in a snapshot) as a plain batch of its columns and bytes."""
        raws = self._raws()
        cache = {"records": self.records} if any(raw is None for raw in raws) else {}
        return EventBatch, (self.entities, self.times, self.partitions, self.offsets,
                            {name: self.values(name) for name in self._column_names()}, raws,
                            self._unknown(), cache)

    def _parts(self) -> tuple[EventBatch, ...] | None:
        """The batches this one joins (`concat`), read on demand like a view's parent."""
        return self._cache.get("parts")

    def _column_names(self) -> list[str]:
        if self._parent is not None:
            return self._parent._column_names()
        parts = self._parts()
        if parts is not None:
            return list(dict.fromkeys(name for b in parts for name in b._column_names()))
        return list(dict.fromkeys([*self.columns, *self._cache.get("getters", ())]))

    def _raws(self) -> list[bytes | None]:
        if self._parent is None:
            parts = self._parts()
            if parts is not None:
                return [raw for b in parts for raw in b._raws()]
            return self.raws if self.raws is not None else [None] * len(self)
        raws = self._parent._raws()
        return [raws[i] for i in self._index.tolist()]  # type: ignore[union-attr]

    def _unknown(self) -> dict[str, np.ndarray]:
        if self._parent is None:
            parts = self._parts()
            if parts is None:
                return self.unknown
            names = sorted({n for b in parts for n in b._unknown()})
            return {n: np.concatenate([b._unknown().get(n, np.zeros(len(b), bool)) for b in parts]) for n in names}
        return {name: mask[self._index] for name, mask in self._parent._unknown().items()}

    def values(self, name: str) -> list[Any]:
        """The field's values as decoded (None where null or absent)."""
        column = self.columns.get(name)
        if column is None:
            if self._parent is not None:
                source = self._parent.values(name)
                column = [source[i] for i in self._index.tolist()]  # type: ignore[union-attr]
            elif self._parts() is not None:
                column = [v for b in self._parts() for v in b.values(name)]  # type: ignore[union-attr]
            elif name in self._cache.get("getters", ()):
                column = self._from_rows(name)
            else:
                column = [r.get(name) for r in self.records]
            self.columns[name] = column
        return column

    def _from_rows(self, name: str) -> list[Any]:
        """A declared field's column from the decoded structs (and the fallback's events)."""
        getter = self._cache["getters"][name]
        rows, fallback = self._cache["rows"], self._cache["fallback"]
        if fallback:
            column = [getter(r) if r is not None else fallback[i].get(name) for i, r in enumerate(rows)]
        else:
            column = list(map(getter, rows))
        if name in self._cache["optional"]:  # absent optional fields read as None, like a null
            column = [None if v is msgspec.UNSET else v for v in column]
        return column

    def numbers(self, name: str) -> np.ndarray:
        """The field as float64, NaN where it is null or absent (a valid event holds no NaN).

        >>> EventBatch.of([Event("a", 1, {"x": 2}), Event("a", 2, {})]).numbers("x").tolist()
        [2.0, nan]
        """
        key = "#" + name
        column = self._cache.get(key)
        if column is None:
            if self._parent is not None:
                column = self._parent.numbers(name)[self._index]
            elif self._parts() is not None:
                column = np.concatenate([b.numbers(name) for b in self._parts()])  # type: ignore[union-attr]
            else:
                column = np.array(self.values(name), dtype=np.float64)
            self._cache[key] = column
        return column

    def keys(self, name: str) -> list[str]:
        """The field as entity keys (strings), for feature sets keyed by another field than the schema's entity."""
        return [v if type(v) is str else str(v) for v in self.values(name)]

    @property
    def records(self) -> list[dict[str, Any]]:
        """Each event's whole JSON object (parsed on first use)."""
        records = self._cache.get("records")
        if records is None:
            if self._parent is not None and "records" in self._parent._cache:
                parent = self._parent.records
                records = [parent[i] for i in self._index.tolist()]  # type: ignore[union-attr]
            elif self._parts() is not None:
                records = [r for b in self._parts() for r in b.records]  # type: ignore[union-attr]
            else:
                records = [orjson.loads(raw) for raw in self._raws()]
            self._cache["records"] = records
        return records

    def record(self, i: int) -> dict[str, Any]:
        """Event `i`'s JSON object."""
        records = self._cache.get("records")
        if records is not None:
            return records[i]
        if self._parent is not None:
            return self._parent.record(int(self._index[i]))  # type: ignore[index]
        parts = self._parts()
        if parts is not None:
            for part in parts:
                if i < len(part):
                    return part.record(i)
                i -= len(part)
        return orjson.loads(self.raws[i])  # type: ignore[index]

    def unknown_categories(self, i: int) -> tuple[str, ...]:
        """The category fields of event `i` outside their vocabulary."""
        return tuple(name for name, mask in self._unknown().items() if mask[i])

    def take(self, indices: np.ndarray) -> EventBatch:
        """The events at `indices` (in that order), as a view of this batch."""
        entities = self.entities
        return EventBatch([entities[i] for i in indices.tolist()], self.times[indices], self.partitions[indices],
                          self.offsets[indices], {}, None, {}, {}, self, indices)

    def events(self) -> list[Event]:
        """Every event as an `Event`, for the steps that still take one event at a time."""
        unknown = [self.unknown_categories(i) for i in range(len(self))] if self._unknown() else [()] * len(self)
        return [Event(e, t, r, u, p, o) for e, t, r, u, p, o in zip(
            self.entities, self.times.tolist(), self.records, unknown, self.partitions.tolist(),
            self.offsets.tolist())]

    def by_partition(self) -> list[tuple[int, EventBatch]]:
        """The batch split by input partition, each part in arrival order."""
        first = int(self.partitions[0]) if len(self) else 0
        if not len(self) or (self.partitions == first).all():
            return [(first, self)] if len(self) else []
        order = np.argsort(self.partitions, kind="stable")
        heads = np.flatnonzero(np.diff(self.partitions[order], prepend=-1) != 0)
        return [(int(self.partitions[part[0]]), self.take(part)) for part in np.split(order, heads[1:])]

    @staticmethod
    def of(events: Sequence[Event]) -> EventBatch:
        """A batch of `Event`s (tests, replays of event lists); columns are built on use."""
        names = sorted({u for e in events for u in e.unknown_categories})
        return EventBatch([e.entity for e in events], np.array([e.time_ms for e in events], dtype=np.int64),
                          np.array([e.partition for e in events], dtype=np.int64),
                          np.array([e.offset for e in events], dtype=np.int64), {}, None,
                          {n: np.array([n in e.unknown_categories for e in events], dtype=bool) for n in names},
                          {"records": [e.fields for e in events]})

    @staticmethod
    def concat(batches: Sequence[EventBatch]) -> EventBatch:
        """Batches one after the other, as one batch; columns are joined on first use.

        >>> joined = EventBatch.concat([EventBatch.of([Event("a", 1, {"x": 1})]), EventBatch.of([Event("b", 2, {})])])
        >>> joined.entities, joined.numbers("x").tolist(), joined.record(1)
        (['a', 'b'], [1.0, nan], {})
        """
        if len(batches) == 1:
            return batches[0]
        return EventBatch([e for b in batches for e in b.entities], np.concatenate([b.times for b in batches]),
                          np.concatenate([b.partitions for b in batches]),
                          np.concatenate([b.offsets for b in batches]), {}, None, {}, {"parts": tuple(batches)})


# The integers orjson reads as integers; beyond them it reads a float (so the fast path
# leaves such a value to the fallback, which parses with orjson).
_JSON_INT = Annotated[int, msgspec.Meta(ge=-(2**63), le=_INT64_MAX)]


def _annotation(spec: FieldSpec, exact_numbers: bool = False) -> Any:
    kind: Any = {"float": float, "int": _JSON_INT, "string": str, "category": str, "bool": bool}[spec.type]
    if exact_numbers and spec.type == "float":
        kind = _JSON_INT | float
    if spec.nullable:
        kind = kind | None
    if not spec.required:
        kind = kind | msgspec.UnsetType
    return kind


class BatchDecoder:
    """Decodes batches of message values into `EventBatch`es; see the module docstring.

    Built once per flow from the flow's `EventDecoder`, whose schema and limits it follows.
    With `exact_numbers`, every column holds what `orjson.loads` reads: a JSON integer in a
    float field stays an integer (else it becomes a float), for flows that pass values on
    (the model flow's prediction messages carry its inputs), not only compute with them.

    >>> from features.events import DecodeLimits, EventDecoder
    >>> from features.schema import parse_schema
    >>> schema = parse_schema({"entity": "a", "event_time": "ts", "fields": {"a": "string", "x": "float"}})
    >>> raw = [b'{"a": "a", "ts": 1767225600000, "x": 12}']
    >>> [BatchDecoder(EventDecoder(schema, DecodeLimits()), exact).decode(raw, 1767225600000, [0], [0])[0]
    ...  .values("x") for exact in (False, True)]
    [[12.0], [12]]
    """

    def __init__(self, decoder: EventDecoder, exact_numbers: bool = False) -> None:
        self.fallback = decoder
        schema = decoder.schema
        self._entity = schema.entity
        self._entity_is_str = schema.field(schema.entity).type in ("string", "category")
        # A category field's known values, and null (which is not outside the vocabulary).
        self._vocabularies = {f.name: frozenset([*f.values, None]) for f in schema.fields if f.values is not None}
        # Event time on the fast path only as epoch milliseconds; ISO strings take the fallback.
        self._fast_time = schema.time_format in ("epoch_ms", "auto")
        fields: list[tuple[str, Any, Any]] = []
        for i, spec in enumerate(schema.fields):
            default = msgspec.UNSET if not spec.required else msgspec.NODEFAULT
            fields.append((f"f{i}", _annotation(spec, exact_numbers), msgspec.field(name=spec.name, default=default)))
        if self._fast_time:
            fields.append(("ts", int, msgspec.field(name=schema.event_time)))
        fields.sort(key=lambda f: f[2].default is not msgspec.NODEFAULT)  # required fields first
        self._row = msgspec.defstruct("EventRow", fields, gc=False)
        self._decode = msgspec.json.Decoder(self._row).decode
        self._getters = {spec.name: attrgetter(f"f{i}") for i, spec in enumerate(schema.fields)}
        self._unset = {spec.name for spec in schema.fields if not spec.required}
        self._min_time = schema.min_event_time_ms
        self._empty_entity_ok = schema.allow_empty_entity

    def decode(self, values: Sequence[bytes | None], now_ms: int, partitions: Sequence[int],
               offsets: Sequence[int]) -> tuple[EventBatch, list[tuple[int, Rejection]]]:
        """Decode message values; returns the valid events and the rejections by position in `values`.

        `now_ms` is the processing clock (the bound on future timestamps).
        """
        limits = self.fallback.limits
        suspects: list[int] = []
        decode, max_bytes = self._decode, limits.max_event_bytes
        rows: list[Any] | None = None
        try:  # the usual batch, all valid: one C-level loop (a quarter less CPU than the loop below)
            if max(map(len, values), default=0) <= max_bytes:  # type: ignore[arg-type]
                rows = list(map(decode, values))
        except Exception:  # noqa: BLE001 - some message is refused: find which, one by one
            rows = None
        if rows is None:
            rows = []
            for i, raw in enumerate(values):
                try:
                    if len(raw) > max_bytes:  # type: ignore[arg-type]
                        raise ValueError
                    rows.append(decode(raw))
                except Exception:  # noqa: BLE001 - any refusal: the fallback decides and words it
                    rows.append(None)
                    suspects.append(i)
        n = len(values)
        if self._fast_time:
            times = np.array([r.ts if r is not None else 0 for r in rows] if suspects else
                             list(map(attrgetter("ts"), rows)), dtype=object if n and suspects else None)
            times = _as_int64(times, n)
            out_of_bounds = (times < self._min_time) | (times > now_ms + limits.max_future_ms)
            if suspects:
                out_of_bounds[suspects] = False
            more = np.flatnonzero(out_of_bounds)
            if more.size:
                suspects = sorted({*suspects, *more.tolist()})
        else:
            times = np.zeros(n, dtype=np.int64)
            suspects = list(range(n))
        entity = self._getters[self._entity]
        if not self._empty_entity_ok and "" in map(entity, filter(None, rows)):  # rare: then find which
            empty = [i for i, r in enumerate(rows) if r is not None and entity(r) == ""]
            suspects = sorted({*suspects, *empty})
        keep = np.ones(n, dtype=bool)
        rejected: list[tuple[int, Rejection]] = []
        fallback: dict[int, dict[str, Any]] = {}
        for i in suspects:
            result = self.fallback.decode(values[i], now_ms, partitions[i], offsets[i])
            if type(result) is Event:
                times[i] = result.time_ms
                fallback[i] = result.fields
            else:
                keep[i] = False
                rejected.append((i, result))  # type: ignore[arg-type]
        if rejected:
            index = np.flatnonzero(keep)
            pick = index.tolist()
            renumber = {old: new for new, old in enumerate(pick)}
            fallback = {renumber[i]: fields for i, fields in fallback.items()}
            rows = [rows[i] for i in pick]
            raws = [values[i] for i in pick]
            times, parts, offs = times[index], np.asarray(partitions, np.int64)[index], np.asarray(offsets, np.int64)[index]
        else:
            raws = list(values)
            parts, offs = np.asarray(partitions, dtype=np.int64), np.asarray(offsets, dtype=np.int64)
        batch = EventBatch([], times, parts, offs, {}, raws)
        batch._cache.update(rows=rows, fallback=fallback, getters=self._getters, optional=self._unset)
        entities = batch.values(self._entity)
        if not self._entity_is_str:
            entities = [v if type(v) is str else str(v) for v in entities]
        batch.entities.extend(entities)
        for name, known in self._vocabularies.items():
            column = batch.values(name)  # strings or None: category values are checked as strings
            outside = ~np.fromiter(map(known.__contains__, column), bool, len(column))
            if outside.any():
                batch.unknown[name] = outside
        return batch, rejected


def _as_int64(times: np.ndarray, n: int) -> np.ndarray:
    """Event times as int64; Python ints beyond int64 (hostile input) become bounds the checks refuse."""
    if times.dtype == np.int64:
        return times
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if times.dtype == object:
        return np.array([t if -_INT64_MAX <= t <= _INT64_MAX else -1 for t in times.tolist()], dtype=np.int64)
    return times.astype(np.int64)
