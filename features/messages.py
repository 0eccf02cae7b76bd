"""Message formats shared by every output topic, and the dead-letter message.

Every message is a JSON object with a `schema` ("<name>/<version>") and a deterministic
`id`, so a consumer can drop the duplicates that at-least-once delivery produces after a
restart. JSON Schemas for each payload live under `deploy/schemas/`.

>>> iso_utc(1767225600123)
'2026-01-01T00:00:00.123Z'
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import orjson

from features.events import Rejection

try:
    from features import _rows  # compiled by `pip install` (features/_rows.c)
except ImportError:  # no C compiler where it was installed: the rows are joined in Python
    _rows = None

DEAD_LETTER_SCHEMA = "driftline.dead_letter/1"


@functools.lru_cache(maxsize=1 << 16)  # times repeat within a second and across entities
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")


def iso_utc(ms: int) -> str:
    """Epoch milliseconds as an ISO-8601 UTC string with millisecond precision.

    >>> iso_utc(0), iso_utc(-1)
    ('1970-01-01T00:00:00.000Z', '1969-12-31T23:59:59.999Z')
    """
    return f"{_iso_second(ms // 1000)}{ms % 1000:03d}Z"


def b64(data: bytes | None) -> str | None:
    """Bytes as standard base64 text (None stays None).

    >>> b64(b"hi"), b64(None)
    ('aGk=', None)
    """
    return None if data is None else base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class SourcePosition:
    """Where a message was read: enough to find it again in Kafka."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


def dead_letter(rejection: Rejection, position: SourcePosition, key: bytes | None,
                value: bytes | None, rejected_at_ms: int) -> dict[str, Any]:
    """The dead-letter message for a rejected event: the reason, where it came from, its bytes.

    >>> from features.events import Reason
    >>> msg = dead_letter(Rejection(Reason.NOT_JSON, "not valid JSON"),
    ...                   SourcePosition("rides", 2, 41, 0), b"area-1", b"{oops", 0)
    >>> msg["id"], msg["reason"], msg["value_b64"]
    ('rides/2/41', 'not_json', 'e29vcHM=')
    """
    return {
        "schema": DEAD_LETTER_SCHEMA,
        "id": f"{position.topic}/{position.partition}/{position.offset}",
        "reason": str(rejection.reason),
        "detail": rejection.detail,
        "source": {
            "topic": position.topic,
            "partition": position.partition,
            "offset": position.offset,
            "timestamp": iso_utc(position.timestamp_ms) if position.timestamp_ms > 0 else None,
        },
        "key_b64": b64(key),
        "value_b64": b64(value),
        "size_bytes": 0 if value is None else len(value),
        "rejected_at": iso_utc(rejected_at_ms),
    }


def encode(message: dict[str, Any]) -> bytes:
    """A message as compact JSON bytes (orjson).

    >>> encode({"schema": "x/1", "id": "a"})
    b'{"schema":"x/1","id":"a"}'
    """
    # orjson returns its 4 KiB working buffer as the bytes object; copying it out keeps a
    # message at its own size (a flush of 100k messages held 400 MB otherwise). `b"%b" %`
    # copies at a third of the cost of `bytes(memoryview(...))`.
    return b"%b" % orjson.dumps(message)


FEATURES_SCHEMA = "driftline.features/1"
LATE_EVENT_SCHEMA = "driftline.late_event/1"


def feature_message(feature_set: str, entity: str, start_ms: int, end_ms: int, values: dict[str, Any],
                    event_count: int, kind: str, as_of_ms: int | None, emitted_at_ms: int) -> dict[str, Any]:
    """The message for one entity's features over one window.

    `id` is `<set>/<entity>/<window end ms>` for final values; interim updates
    (`emit = "update"`) add `/u<event time>`.

    >>> msg = feature_message("area_1m", "area-001", 0, 60_000, {"rides": 3}, 3, "final", None, 61_000)
    >>> msg["id"], msg["window"]["end"]
    ('area_1m/area-001/60000', '1970-01-01T00:01:00.000Z')
    """
    message_id = f"{feature_set}/{entity}/{end_ms}"
    if kind == "update":
        message_id += f"/u{as_of_ms}"
    return {
        "schema": FEATURES_SCHEMA,
        "id": message_id,
        "feature_set": feature_set,
        "entity": entity,
        "kind": kind,
        "window": {"start": iso_utc(start_ms), "end": iso_utc(end_ms), "start_ms": start_ms, "end_ms": end_ms},
        "values": values,
        "event_count": event_count,
        "as_of": iso_utc(as_of_ms) if as_of_ms is not None else None,
        "emitted_at": iso_utc(emitted_at_ms),
    }


def _json_tokens(column: list[Any]) -> list[str]:
    """Each value's JSON text, from one orjson call when no value is a string, list or object
    (nothing to split wrongly)."""
    text = orjson.dumps(column).decode()
    if '"' not in text and "[" not in text[1:] and "{" not in text:
        return text[1:-1].split(",") if len(text) > 2 else []
    return [orjson.dumps(v).decode() for v in column]


class _TextCache(dict):
    """Texts computed once per key (entity JSON strings, ISO times): the same few recur in every batch."""

    def __init__(self, make: Any, limit: int = 1 << 17) -> None:
        super().__init__()
        self.make, self.limit = make, limit

    def __missing__(self, key: Any) -> str:
        if len(self) >= self.limit:
            self.clear()
        value = self[key] = self.make(key)
        return value


_QUOTED = _TextCache(lambda text: orjson.dumps(text).decode())
_QUOTED_NAMES = _TextCache(lambda name: orjson.dumps(name) + b":")  # a value's key, as bytes
_ISO = _TextCache(iso_utc)


def feature_messages(feature_set: str, entities: list[str], starts: Sequence[int] | np.ndarray,
                     ends: Sequence[int] | np.ndarray, values: dict[str, list[Any]],
                     event_counts: Sequence[int] | np.ndarray, emitted_at_ms: int,
                     extra: Mapping[str, Mapping[str, Any]] | None = None) -> list[bytes]:
    """The final `driftline.features/1` messages of many windows of one feature set, rendered
    column by column: the same bytes as `encode(feature_message(...))` for each row, at a
    fraction of the cost. `extra` adds an entity's static values after its features.

    Each value column is one orjson call; the rows are joined by the compiled `features._rows`
    (built by `pip install`), or in Python where it could not be built.

    >>> one = feature_messages("s", ["a"], [0], [60_000], {"n": [3], "m": [1.5]}, [3], 61_000)[0]
    >>> one == encode(feature_message("s", "a", 0, 60_000, {"n": 3, "m": 1.5}, 3, "final", None, 61_000))
    True
    """
    if not entities:
        return []
    if _rows is not None:
        try:
            return _joined_in_c(feature_set, entities, starts, ends, values, event_counts, emitted_at_ms, extra)
        except OverflowError:  # a window outside the years 1000..9999: Python's dates write those
            pass
    return _joined_in_python(feature_set, entities, _as_list(starts), _as_list(ends), values,
                             _as_list(event_counts), emitted_at_ms, extra)


def _as_list(column: Sequence[int] | np.ndarray) -> list[int]:
    return column.tolist() if isinstance(column, np.ndarray) else list(column)


def _joined_in_c(feature_set: str, entities: list[str], starts: Sequence[int] | np.ndarray,
                 ends: Sequence[int] | np.ndarray, values: dict[str, list[Any]], event_counts: Sequence[int] | np.ndarray,
                 emitted_at_ms: int, extra: Mapping[str, Mapping[str, Any]] | None) -> list[bytes]:
    """`feature_messages` by `features._rows.render`: the same parts in the same order as
    `_joined_in_python`'s f-strings."""
    assert _rows is not None
    set_json = _QUOTED[feature_set].encode()
    names = _QUOTED_NAMES
    ids = (_rows.INNER, orjson.dumps(entities))
    starts, ends = np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64)
    parts: list[Any] = [
        b'{"schema":"' + FEATURES_SCHEMA.encode() + b'","id":"' + set_json[1:-1] + b"/", ids, b"/",
        (_rows.INT, ends), b'","feature_set":' + set_json + b',"entity":"', ids,
        b'","kind":"final","window":{"start":"', (_rows.ISO, starts), b'","end":"', (_rows.ISO, ends),
        b'","start_ms":', (_rows.INT, starts), b',"end_ms":', (_rows.INT, ends), b'},"values":{']
    for k, (name, column) in enumerate(values.items()):
        parts += [b"," + names[name] if k else names[name], (_rows.TOKENS, orjson.dumps(column))]
    if extra:
        comma = b"," if values else b""
        statics = [extra.get(e) for e in entities]
        parts.append((_rows.RAW, [comma + orjson.dumps(s)[1:-1] if s else b"" for s in statics]))
    parts += [b'},"event_count":', (_rows.INT, np.ascontiguousarray(event_counts, np.int64)),
              f',"as_of":null,"emitted_at":"{iso_utc(emitted_at_ms)}"}}'.encode()]
    return _rows.render(len(entities), parts)


def _joined_in_python(feature_set: str, entities: list[str], starts: list[int], ends: list[int],
                      values: dict[str, list[Any]], event_counts: list[int], emitted_at_ms: int,
                      extra: Mapping[str, Mapping[str, Any]] | None) -> list[bytes]:
    """`feature_messages` in Python: a %-format of each row's values and an f-string per row."""
    quoted, iso = _QUOTED, _ISO
    set_json = quoted[feature_set]
    head = f'{{"schema":"{FEATURES_SCHEMA}","id":"{set_json[1:-1]}/'
    tail = f',"as_of":null,"emitted_at":"{iso_utc(emitted_at_ms)}"}}'
    # What follows the entity in the id, and what follows it in "entity", by window end: few
    # distinct ends per block, so each is rendered once.
    after_id = {end: f'/{end}","feature_set":{set_json},"entity":"' for end in set(ends)}
    # Each row's "values" object body: one %-format of the row's JSON tokens (names may hold a %).
    body = ",".join(quoted[name].replace("%", "%%") + ":%s" for name in values)
    columns = [_json_tokens(column) for column in values.values()]
    bodies = [body % row for row in zip(*columns)] if columns else [""] * len(entities)
    if extra:
        for i, entity in enumerate(entities):
            static = extra.get(entity)
            if static:
                bodies[i] = ",".join(filter(None, (bodies[i], orjson.dumps(static).decode()[1:-1])))
    # Entity keys as JSON string contents: as they are, unless some key needs escaping.
    text = orjson.dumps(entities).decode()
    plain = len(text) == sum(map(len, entities)) + 3 * len(entities) + 1
    inner = entities if plain else [quoted[e][1:-1] for e in entities]
    # One f-string and one encode per row: cheaper than str.format, and than joining all rows
    # into one text to encode and split.
    pairs = set(zip(starts, ends))
    if len(pairs) * 8 <= len(entities):  # tumbling and hopping blocks: each window rendered once
        window = {(start, end): f'","kind":"final","window":{{"start":"{iso[start]}","end":"{iso[end]}",'
                                f'"start_ms":{start},"end_ms":{end}}},"values":{{' for start, end in pairs}
        return [f'{head}{e}{after_id[end]}{e}{window[start, end]}{b}}},"event_count":{count}{tail}'.encode()
                for e, start, end, b, count in zip(inner, starts, ends, bodies, event_counts)]
    # Last-N and session blocks: a start per row (its oldest event), rendered in the row's
    # f-string (a third of the cost of a text per window, each a miss of the cache of texts).
    return [f'{head}{e}{after_id[end]}{e}","kind":"final","window":{{"start":"{iso_utc(start)}'
            f'","end":"{iso[end]}","start_ms":{start},"end_ms":{end}}},"values":{{'
            f'{b}}},"event_count":{count}{tail}'.encode()
            for e, start, end, b, count in zip(inner, starts, ends, bodies, event_counts)]


def late_event_message(topic: str, partition: int, offset: int, entity: str, time_ms: int,
                       watermark_ms: int, fields: dict[str, Any], emitted_at_ms: int) -> dict[str, Any]:
    """The message for an event that arrived behind the watermark (kept, not aggregated).

    >>> late_event_message("rides", 1, 9, "a", 1_000, 5_000, {"ts": 1_000}, 6_000)["behind_ms"]
    4000
    """
    return {
        "schema": LATE_EVENT_SCHEMA,
        "id": f"{topic}/{partition}/{offset}",
        "entity": entity,
        "event_time": iso_utc(time_ms),
        "watermark": iso_utc(watermark_ms),
        "behind_ms": watermark_ms - time_ms,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "event": fields,
        "emitted_at": iso_utc(emitted_at_ms),
    }
