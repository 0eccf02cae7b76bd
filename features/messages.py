"""Message formats shared by every output topic, and the dead-letter message.

Every message is a JSON object with a `schema` ("<name>/<version>") and a deterministic
`id`, so a consumer can drop the duplicates that at-least-once delivery produces after a
restart. JSON Schemas for each payload live under `deploy/schemas/`.

>>> iso_utc(1767225600123)
'2026-01-01T00:00:00.123Z'
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from features.events import Rejection

DEAD_LETTER_SCHEMA = "driftline.dead_letter/1"


def iso_utc(ms: int) -> str:
    """Epoch milliseconds as an ISO-8601 UTC string with millisecond precision.

    >>> iso_utc(0)
    '1970-01-01T00:00:00.000Z'
    """
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


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
    return orjson.dumps(message)
