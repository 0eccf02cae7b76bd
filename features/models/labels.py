"""Labels from their own topic: decoded into `Label`s, or rejected with a reason.

A label message is a JSON object holding the join key, the label and its event time, e.g.
the generator's `{"ride_id": "ride-1-0", "ts": 1767225660000, "cancelled": false}`.

>>> from features.models.config import LabelSpec
>>> decoder = LabelDecoder(LabelSpec("rides.labels", "ride_id", "cancelled"))
>>> decoder.decode(b'{"ride_id": "r1", "ts": 1767225660000, "cancelled": true}', partition=2, offset=9)
Label(key='r1', time_ms=1767225660000, value=True, partition=2, offset=9)
>>> decoder.decode(b'{"ride_id": "r1", "cancelled": true}', 0, 0).reason
<Reason.MISSING_FIELD: 'missing_field'>
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import orjson

from features.events import Reason, Rejection, parse_time_ms
from features.models.config import LabelSpec


class Label(NamedTuple):
    """A decoded label: the join key, its event time (epoch ms) and the label value.

    `partition` and `offset` say where it was read; with `time_ms` they let
    `features.windows.engine.PartitionClocks` decide lateness for labels as for events.
    """

    key: str
    time_ms: int
    value: Any
    partition: int = 0
    offset: int = 0


_PLAIN = (bool, str, int)  # label values accepted as they are (a float may be NaN)


class LabelDecoder:
    """Bytes of a label message to a `Label`, or a `Rejection` for the dead-letter topic."""

    def __init__(self, spec: LabelSpec, max_bytes: int = 65_536) -> None:
        self.spec = spec
        self.max_bytes = max_bytes

    def decode(self, value: bytes | None, partition: int, offset: int) -> Label | Rejection:
        """Decode one message; never raises on bad input."""
        spec = self.spec
        if value is not None and len(value) > self.max_bytes:
            return Rejection(Reason.OVERSIZED, f"{len(value)} bytes, above the limit of {self.max_bytes}")
        try:
            doc = orjson.loads(value) if value is not None else None
        except (orjson.JSONDecodeError, RecursionError):
            return Rejection(Reason.NOT_JSON, "not valid JSON")
        if type(doc) is dict:  # the common label (a string key, epoch ms, a plain value): no more checks
            key, time_ms, label = doc.get(spec.key), doc.get(spec.time_field), doc.get(spec.field)
            if type(key) is str and type(time_ms) is int and time_ms >= 0 and type(label) in _PLAIN:
                return Label(key, time_ms, label, partition, offset)
        if doc is None:
            return Rejection(Reason.NOT_JSON, "an empty (null) message")
        if not isinstance(doc, dict):
            return Rejection(Reason.NOT_OBJECT, f"expected a JSON object, found {type(doc).__name__}")
        for name in (spec.key, spec.time_field, spec.field):
            if name not in doc:
                return Rejection(Reason.MISSING_FIELD, f"label field {name!r} is missing")
        key, label = doc[spec.key], doc[spec.field]
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            return Rejection(Reason.WRONG_TYPE, f"label field {spec.key!r}: expected a string or integer key")
        if label is None or isinstance(label, (dict, list)):
            return Rejection(Reason.WRONG_TYPE, f"label field {spec.field!r}: expected a value, found {label!r}")
        if isinstance(label, float) and not math.isfinite(label):
            return Rejection(Reason.NON_FINITE, f"label field {spec.field!r} is {label!r}")
        try:
            time_ms = parse_time_ms(doc[spec.time_field], "auto")
        except ValueError as exc:
            return Rejection(Reason.BAD_TIMESTAMP, f"label field {spec.time_field!r}: {exc}")
        return Label(str(key), time_ms, label, partition, offset)
