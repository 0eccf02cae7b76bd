"""Decoding raw message bytes into typed events, or into a rejection with a reason.

A bad event never stops a flow: `EventDecoder.decode` returns either an `Event` or a
`Rejection` whose `reason` is one of `Reason`, and the caller sends rejections to the
dead-letter topic with the original bytes.

>>> from features.schema import parse_schema
>>> schema = parse_schema({"entity": "area", "event_time": "ts", "time_format": "epoch_ms",
...                        "fields": {"area": "string", "price": "float"}})
>>> decoder = EventDecoder(schema, DecodeLimits())
>>> decoder.decode(b'{"area": "a1", "ts": 1767225600000, "price": 12.5}', now_ms=1767225600000)
Event(entity='a1', time_ms=1767225600000, fields={'area': 'a1', 'ts': 1767225600000, 'price': 12.5}, unknown_categories=(), partition=0, offset=0)
>>> decoder.decode(b'{"area": "a1", "ts": 1767225600000, "price": "cheap"}', now_ms=1767225600000).reason
<Reason.WRONG_TYPE: 'wrong_type'>
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

import orjson

from features.schema import EventSchema, FieldSpec


class Reason(StrEnum):
    """Why an event was rejected. The values appear in dead-letter messages and metrics."""

    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NON_FINITE = "non_finite"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    OVERSIZED = "oversized"


@dataclass(frozen=True, slots=True)
class Event:
    """A valid event: its entity key, its event time (epoch ms, UTC) and all its fields.

    `unknown_categories` names the category fields whose value is outside the declared
    vocabulary (a drift signal, counted, not rejected). `partition` and `offset` say where
    it was read (a replayed file is partition 0, offset = line number).
    """

    entity: str
    time_ms: int
    fields: dict[str, Any]
    unknown_categories: tuple[str, ...] = ()
    partition: int = 0
    offset: int = 0

    def __reduce__(self) -> tuple[type[Event], tuple[Any, ...]]:
        """Pickled as a constructor call: events cross between the processes of a cluster, and the
        dataclass's own `__getstate__`/`__setstate__` cost about twice as much each way.

        >>> import pickle
        >>> pickle.loads(pickle.dumps(Event("a", 5, {"x": 1}, ("c",), 2, 9)))
        Event(entity='a', time_ms=5, fields={'x': 1}, unknown_categories=('c',), partition=2, offset=9)
        """
        return Event, (self.entity, self.time_ms, self.fields, self.unknown_categories, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event that cannot be processed, and why."""

    reason: Reason
    detail: str


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on what counts as a sane event.

    `max_event_bytes`: larger messages are rejected as oversized before parsing.
    `max_future_ms`: events stamped further ahead of the processing clock are rejected.
    """

    max_event_bytes: int = 65_536
    max_future_ms: int = 86_400_000


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_time_ms(value: Any, time_format: str) -> int:
    """Event time as epoch milliseconds (UTC) from an epoch-ms number or an ISO-8601 string.

    A naive ISO timestamp is taken as UTC. Raises ValueError when the value has the wrong form.

    >>> parse_time_ms("2026-01-01T00:00:00Z", "auto"), parse_time_ms(1767225600000, "epoch_ms")
    (1767225600000, 1767225600000)
    >>> parse_time_ms("2026-01-01T01:00:00+01:00", "iso8601")
    1767225600000
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a timestamp, found the boolean {value}")
    if time_format in ("epoch_ms", "auto") and isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"expected epoch milliseconds >= 0, found {value!r}")
        return int(value)
    if time_format in ("iso8601", "auto") and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected an ISO-8601 timestamp, found {value!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return (moment - _EPOCH) // _ONE_MS
    expected = {"epoch_ms": "epoch milliseconds", "iso8601": "an ISO-8601 string"}.get(
        time_format, "epoch milliseconds or an ISO-8601 string"
    )
    raise ValueError(f"expected {expected}, found {value!r}")


_ONE_MS = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=timezone.utc) - _EPOCH


def _describe(value: Any) -> str:
    text = repr(value)
    kind = type(value).__name__
    return f"{kind} {text[:40]}{'...' if len(text) > 40 else ''}"


# One checker per field type: returns None when the value is fine, else a (reason, detail).
Check = Callable[[str, Any], "tuple[Reason, str] | None"]


def _check_float(name: str, value: Any) -> tuple[Reason, str] | None:
    if type(value) is float:
        if value - value != 0.0:  # NaN or +-inf; faster than math.isfinite on this hot path
            return Reason.NON_FINITE, f"field {name!r} is {value}"
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return Reason.WRONG_TYPE, f"field {name!r}: expected a number, found {_describe(value)}"


def _check_int(name: str, value: Any) -> tuple[Reason, str] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return Reason.WRONG_TYPE, f"field {name!r}: expected an integer, found {_describe(value)}"


def _check_string(name: str, value: Any) -> tuple[Reason, str] | None:
    if isinstance(value, str):
        return None
    return Reason.WRONG_TYPE, f"field {name!r}: expected a string, found {_describe(value)}"


def _check_bool(name: str, value: Any) -> tuple[Reason, str] | None:
    if isinstance(value, bool):
        return None
    return Reason.WRONG_TYPE, f"field {name!r}: expected true or false, found {_describe(value)}"


_CHECKS: dict[str, Check] = {
    "float": _check_float,
    "int": _check_int,
    "string": _check_string,
    "bool": _check_bool,
    "category": _check_string,
}


class EventDecoder:
    """Turns message bytes into `Event` or `Rejection` according to a schema and limits.

    Built once per flow; `decode` is the hot path, so the schema is compiled into a list of
    per-field checks up front.
    """

    def __init__(self, schema: EventSchema, limits: DecodeLimits) -> None:
        self.schema = schema
        self.limits = limits
        self._fields: list[tuple[str, Check, FieldSpec]] = [(f.name, _CHECKS[f.type], f) for f in schema.fields]
        self._vocabularies = {f.name: frozenset(f.values) for f in schema.fields if f.values is not None}
        self._accept = _compile_fast_path(schema, limits, self._vocabularies, self._validate)

    def decode(self, raw: bytes | None, now_ms: int, partition: int = 0, offset: int = 0) -> Event | Rejection:
        """Decode one message; `now_ms` is the processing clock used for the future bound."""
        if raw is None:
            return Rejection(Reason.NOT_JSON, "the message has no value (a tombstone)")
        if len(raw) > self.limits.max_event_bytes:
            return Rejection(
                Reason.OVERSIZED, f"{len(raw)} bytes, more than max_event_bytes = {self.limits.max_event_bytes}"
            )
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            obj = loads_after_refusal(raw, exc)
            if type(obj) is Rejection:
                return obj
        if type(obj) is not dict:
            return Rejection(Reason.NOT_OBJECT, f"expected a JSON object, found {type(obj).__name__}")
        return self._accept(obj, now_ms, partition, offset)

    def _validate(self, obj: dict[str, Any], now_ms: int, partition: int, offset: int) -> Event | Rejection:
        unknown: tuple[str, ...] = ()
        for name, check, spec in self._fields:
            value = obj.get(name, _ABSENT)
            if value is _ABSENT:
                if spec.required:
                    return Rejection(Reason.MISSING_FIELD, f"required field {name!r} is missing")
                continue
            if value is None:
                if not spec.nullable:
                    return Rejection(Reason.WRONG_TYPE, f"field {name!r} is null but not nullable")
                continue
            problem = check(name, value)
            if problem is not None:
                return Rejection(problem[0], problem[1])
            vocabulary = self._vocabularies.get(name)
            if vocabulary is not None and value not in vocabulary:
                unknown += (name,)
        time_field = self.schema.event_time
        raw_time = obj.get(time_field, _ABSENT)
        if raw_time is _ABSENT or raw_time is None:
            return Rejection(Reason.MISSING_FIELD, f"event-time field {time_field!r} is missing")
        if type(raw_time) is int and self.schema.time_format != "iso8601" and raw_time >= 0:
            time_ms = raw_time  # the common case, without a function call
        else:
            try:
                time_ms = parse_time_ms(raw_time, self.schema.time_format)
            except ValueError as exc:
                return Rejection(Reason.BAD_TIMESTAMP, f"field {time_field!r}: {exc}")
        if time_ms < self.schema.min_event_time_ms:
            return Rejection(Reason.BAD_TIMESTAMP, _before_min_detail(time_field, raw_time, time_ms, self.schema,
                                                                     now_ms + self.limits.max_future_ms))
        if time_ms > now_ms + self.limits.max_future_ms:
            ahead_s = (time_ms - now_ms) / 1000
            return Rejection(
                Reason.FUTURE_TIMESTAMP,
                f"field {time_field!r} is {ahead_s:.0f} s ahead of the clock; the bound is "
                f"max_future = {self.limits.max_future_ms / 1000:.0f} s",
            )
        entity = obj[self.schema.entity]
        if entity == "" and not self.schema.allow_empty_entity:
            return Rejection(Reason.WRONG_TYPE, f"entity field {self.schema.entity!r} is the empty string; send an "
                                                "identifier, or set [schema] allow_empty_entity = true")
        return Event(entity if type(entity) is str else str(entity), time_ms, obj, unknown, partition, offset)


_ABSENT = object()


def _before_min_detail(field: str, raw: Any, time_ms: int, schema: EventSchema, latest_ms: int) -> str:
    """Why a time before `min_event_time` is refused, saying so when it looks like epoch seconds."""
    from features.messages import iso_utc

    detail = (f"field {field!r} = {raw!r} is {iso_utc(time_ms)}, before min_event_time = "
              f"{iso_utc(schema.min_event_time_ms)}")
    if isinstance(raw, (int, float)) and schema.min_event_time_ms <= time_ms * 1000 <= latest_ms:
        return f"{detail}; it looks like epoch seconds: send epoch milliseconds (x 1000)"
    return f"{detail}; send epoch milliseconds or ISO-8601, or lower [schema] min_event_time"

_FAST_TYPES = {"float": "float", "int": "int", "string": "str", "category": "str", "bool": "bool"}


def _compile_fast_path(schema: EventSchema, limits: DecodeLimits, vocabularies: dict[str, frozenset[str]],
                       validate: Callable[[dict[str, Any], int, int, int], Event | Rejection],
                       ) -> Callable[[dict[str, Any], int, int, int], Event | Rejection]:
    """Straight-line code accepting the common event: every field present with its exact type.

    Anything else (a null, an int in a float field, an ISO timestamp, a problem) goes to
    `validate`, the one place that decides rejections and words their reasons, so the
    fast path only ever says yes. It is half the decoding cost of the generic loop.
    """
    if schema.time_format == "iso8601":
        return validate
    lines = ["def accept(obj, now_ms, partition, offset):", "    get = obj.get", "    unknown = ()"]
    constants: dict[str, Any] = {"validate": validate, "Event": Event}
    for i, spec in enumerate(schema.fields):
        kind = _FAST_TYPES[spec.type]
        extra = " or v - v != 0.0" if spec.type == "float" else ""  # NaN and infinities
        if spec.name == schema.entity and kind == "str" and not schema.allow_empty_entity:
            extra = " or not v"  # an empty entity
        lines += [f"    v = get({spec.name!r})",
                  f"    if type(v) is not {kind}{extra}: return validate(obj, now_ms, partition, offset)"]
        if spec.name in vocabularies:
            constants[f"V{i}"] = vocabularies[spec.name]
            lines.append(f"    if v not in V{i}: unknown += ({spec.name!r},)")
    lines += [
        f"    t = get({schema.event_time!r})",
        f"    if type(t) is not int or t < {schema.min_event_time_ms} or t > now_ms + {limits.max_future_ms}:",
        "        return validate(obj, now_ms, partition, offset)",
        f"    e = obj[{schema.entity!r}]",
        "    return Event(e if type(e) is str else str(e), t, obj, unknown, partition, offset)",
    ]
    exec(compile("\n".join(lines) + "\n", "<driftline decoder>", "exec"), constants)  # noqa: S102 - generated here
    return constants["accept"]


_BOM = b"\xef\xbb\xbf"


def loads_after_refusal(raw: bytes, exc: Exception) -> Any:
    """What to make of bytes orjson refused: the parsed value, or the `Rejection` saying why.

    A UTF-8 byte-order mark before the JSON is accepted (stripped). orjson refuses NaN,
    Infinity and overflowing numbers: those are `non_finite`. Anything else orjson refuses
    (UTF-16, lone surrogates, bad syntax) is `not_json`, even where Python's lenient `json`
    would parse it.

    >>> loads_after_refusal(_BOM + b'{"a": 1}', ValueError("BOM"))
    {'a': 1}
    >>> loads_after_refusal('{"a": 1}'.encode("utf-16"), ValueError("not UTF-8")).reason
    <Reason.NOT_JSON: 'not_json'>
    """
    if raw[:3] == _BOM:
        try:
            return orjson.loads(raw[3:])
        except orjson.JSONDecodeError as inner:
            raw, exc = raw[3:], inner
    found: list[str] = []

    def constant(token: str) -> float:
        found.append(token)
        return float(token)

    def number(token: str) -> float:
        value = float(token)
        if not math.isfinite(value):
            found.append(token)
        return value

    def integer(token: str) -> int:
        value = int(token)
        if not -(2**63) <= value < 2**64:  # beyond what orjson reads: an overflow
            found.append("overflow")
        return value

    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=constant, parse_float=number, parse_int=integer)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: hostile nesting
        return Rejection(Reason.NOT_JSON, f"not valid JSON: {exc}")
    if not found:  # parses leniently, but not for a non-finite number (e.g. a lone surrogate)
        return Rejection(Reason.NOT_JSON, f"not valid JSON: {exc}")
    if isinstance(obj, dict):
        fields = [k for k, v in obj.items() if isinstance(v, float) and not math.isfinite(v)]
        where = f"field {fields[0]!r}" if fields else "a value"
        return Rejection(Reason.NON_FINITE, f"{where} is not a finite number ({', '.join(found)})")
    return Rejection(Reason.NON_FINITE, f"the JSON holds a non-finite number ({', '.join(found)})")

