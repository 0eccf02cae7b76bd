"""Malformed events of the synthetic ride stream (`dataflows.synth.generator`): which event indices
are malformed (`MalformedPlan`) and what each one looks like (`malformed_event`: one builder
per rejection `Reason`, so every reason the decoder gives is exercised).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from features.events import Reason

# --- which events are malformed ---------------------------------------------------------------

_BLOCK = 8192  # strata drawn per refill; it bounds memory, the positions do not depend on it


class MalformedPlan:
    """Which event indices are malformed: exactly `count` of `events`, one at a random place
    in each of `count` equal strata, so they spread over the whole stream.

    Drawn lazily in blocks, so memory does not grow with the stream.
    """

    def __init__(self, events: int, count: int, rng: np.random.Generator) -> None:
        self._events, self._count, self._rng = events, count, rng
        self._next_k = 0
        self._queue: list[tuple[int, int]] = []  # (position, ordinal), ascending

    def below(self, end: int) -> list[tuple[int, int]]:
        """The (position, ordinal) pairs with position < end not handed out yet."""
        taken: list[tuple[int, int]] = []
        while True:
            if not self._queue:
                self._refill()
                if not self._queue:
                    return taken
            cut = next((j for j, (position, _) in enumerate(self._queue) if position >= end), len(self._queue))
            taken += self._queue[:cut]
            del self._queue[:cut]
            if self._queue:
                return taken

    def _refill(self) -> None:
        k = np.arange(self._next_k, min(self._next_k + _BLOCK, self._count), dtype=np.int64)
        if len(k) == 0:
            return
        self._next_k += len(k)
        low = k * self._events // self._count  # integer strata, each at least one event wide
        high = (k + 1) * self._events // self._count
        positions = low + np.floor(self._rng.random(len(k)) * (high - low)).astype(np.int64)
        self._queue = list(zip(positions.tolist(), k.tolist()))


# --- what a malformed event looks like --------------------------------------------------------

# Every field of a valid event, in the order it is serialised.
EVENT_FIELDS = ("ride_id", "area", "ts", "price", "distance_km", "surge", "eta_min", "payment")
FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01: far beyond max_future of the wall clock and of the stream
_NON_FINITE = (("price", b"NaN"), ("eta_min", b"Infinity"), ("distance_km", b"-Infinity"), ("surge", b"1e999"))
_WRONG_TYPES: tuple[tuple[str, Any], ...] = (
    ("price", "cheap"), ("distance_km", True), ("area", 7), ("payment", 1), ("eta_min", None),
    ("ride_id", 12345), ("surge", "high"),
)
_BAD_TIMES: tuple[Any, ...] = ("not-a-time", -1000, True, {"ms": 1})


def _not_json(event: dict[str, Any], variant: int, limit: int) -> bytes:
    text = orjson.dumps(event)
    return (text[: len(text) // 2], b"\xff\xfe" + text[2:20], b"ride " + event["ride_id"].encode(),
            b"{'area': '" + event["area"].encode() + b"'}")[variant % 4]


def _not_object(event: dict[str, Any], variant: int, limit: int) -> bytes:
    return (orjson.dumps(list(event.values())), orjson.dumps(event["ride_id"]), b"42", b"null")[variant % 4]


def _missing_field(event: dict[str, Any], variant: int, limit: int) -> bytes:
    gone = EVENT_FIELDS[variant % len(EVENT_FIELDS)]
    return orjson.dumps({k: v for k, v in event.items() if k != gone})


def _wrong_type(event: dict[str, Any], variant: int, limit: int) -> bytes:
    name, value = _WRONG_TYPES[variant % len(_WRONG_TYPES)]
    return orjson.dumps({**event, name: value})


def _non_finite(event: dict[str, Any], variant: int, limit: int) -> bytes:
    # orjson cannot write NaN or Infinity: put a marker there, then the literal bytes.
    name, literal = _NON_FINITE[variant % len(_NON_FINITE)]
    return orjson.dumps({**event, name: "@NF@"}).replace(b'"@NF@"', literal)


def _bad_timestamp(event: dict[str, Any], variant: int, limit: int) -> bytes:
    return orjson.dumps({**event, "ts": _BAD_TIMES[variant % len(_BAD_TIMES)]})


def _future_timestamp(event: dict[str, Any], variant: int, limit: int) -> bytes:
    return orjson.dumps({**event, "ts": FAR_FUTURE_MS + (variant % 1000) * 86_400_000})


def _oversized(event: dict[str, Any], variant: int, limit: int) -> bytes:
    # Otherwise a valid event: only its size is wrong.
    size = len(orjson.dumps(event)) + len(b',"note":""')
    return orjson.dumps({**event, "note": "x" * max(0, limit + 1 + variant % 97 - size)})


_BUILDERS = {
    Reason.NOT_JSON: _not_json,
    Reason.NOT_OBJECT: _not_object,
    Reason.MISSING_FIELD: _missing_field,
    Reason.WRONG_TYPE: _wrong_type,
    Reason.NON_FINITE: _non_finite,
    Reason.BAD_TIMESTAMP: _bad_timestamp,
    Reason.FUTURE_TIMESTAMP: _future_timestamp,
    Reason.OVERSIZED: _oversized,
}
assert set(_BUILDERS) == set(Reason), "every rejection reason needs a malformed-event builder"
REJECTION_KINDS: tuple[str, ...] = tuple(str(reason) for reason in Reason)


def malformed_event(event: dict[str, Any], ordinal: int, max_event_bytes: int = 65_536) -> tuple[str, bytes]:
    """The `ordinal`-th malformed event, built from a valid `event`: (expected reason, bytes).

    Ordinals cycle through every `Reason`, and through a few variants of each.

    >>> event = {"ride_id": "r1", "area": "area-01", "ts": 1767225600000, "price": 9.5, "distance_km": 2.0,
    ...          "surge": 1.0, "eta_min": 4.0, "payment": "card"}
    >>> malformed_event(event, 4)
    ('non_finite', b'{"ride_id":"r1","area":"area-01","ts":1767225600000,"price":NaN,"distance_km":2.0,"surge":1.0,"eta_min":4.0,"payment":"card"}')
    """
    kind = REJECTION_KINDS[ordinal % len(REJECTION_KINDS)]
    return kind, _BUILDERS[Reason(kind)](event, ordinal // len(REJECTION_KINDS), max_event_bytes)
