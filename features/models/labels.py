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
from typing import Annotated, Any, NamedTuple, Union

import msgspec
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
# Integers within int64, which `orjson.loads` reads as integers too (beyond 2**64 - 1 it reads
# floats; the rest of uint64 takes the general path, as msgspec bounds stop at int64).
_INT = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_TIME = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_FAST_FAILED = (msgspec.DecodeError, msgspec.ValidationError)


def _fast_decoder(spec: LabelSpec) -> msgspec.json.Decoder | None:
    """A msgspec decoder of the common label: exactly the three fields, a string key, epoch ms,
    a plain value (`_PLAIN`), as the checks after `orjson.loads` accept it. Anything else fails
    it (another field, a float, an integer orjson would read as a float) and takes the general
    path, so both paths give the same `Label` or `Rejection`. None when the names coincide."""
    names = (spec.key, spec.time_field, spec.field)
    if len(set(names)) < 3:
        return None
    struct = msgspec.defstruct("FastLabel", [("key", str), ("time_ms", _TIME), ("value", Union[bool, _INT, str])],
                               rename=dict(zip(("key", "time_ms", "value"), names)), forbid_unknown_fields=True)
    return msgspec.json.Decoder(struct)


class LabelDecoder:
    """Bytes of a label message to a `Label`, or a `Rejection` for the dead-letter topic.

    >>> decoder = LabelDecoder(LabelSpec("l", "id", "y"))
    >>> decoder.decode(b'{"id": "r1", "ts": 5, "y": 18446744073709551616}', 0, 0).value  # as orjson reads it
    1.8446744073709552e+19
    >>> decoder.decode(b'{"id": 7, "ts": 5, "y": "a", "extra": null}', 0, 0)
    Label(key='7', time_ms=5, value='a', partition=0, offset=0)
    """

    def __init__(self, spec: LabelSpec, max_bytes: int = 65_536) -> None:
        self.spec = spec
        self.max_bytes = max_bytes
        self._fast = _fast_decoder(spec)

    def decode(self, value: bytes | None, partition: int, offset: int) -> Label | Rejection:
        """Decode one message; never raises on bad input. The common label goes through a typed
        msgspec decoder (a third of `orjson.loads` and the checks); the rest through `_decode`."""
        if value is not None and self._fast is not None and len(value) <= self.max_bytes:
            try:
                label = self._fast.decode(value)
            except _FAST_FAILED:
                pass
            else:
                return Label(label.key, label.time_ms, label.value, partition, offset)
        return self._decode(value, partition, offset)

    def _decode(self, value: bytes | None, partition: int, offset: int) -> Label | Rejection:
        """The general path: any JSON `orjson` reads, checked field by field."""
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
