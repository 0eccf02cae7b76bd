"""`FeatureTable`: a service's live table of the latest features per entity, from a feature topic.

A background thread reads the `features.<set>` topic (`driftline.features/1` messages) from
the beginning and keeps, per entity, the message of the newest window: a later window end
wins; for the same window a final message wins over interim updates, and a later update over
an earlier one. Redelivered duplicates (same `id`) and anything older are dropped, so
at-least-once delivery and replays after a restart never move an entry backwards.

    with FeatureTable("kafka:9092", "features.area_1m") as table:
        table.wait_until_caught_up(timeout_s=30)
        row = table.get("area-007")
        if row is not None and row.freshness_s < 120:
            price = row.values["mean_price"]

`Entry.merge` is the rule, as a pure function:

>>> old = Entry.from_message({"schema": "driftline.features/1", "id": "s/a/60000", "entity": "a",
...     "kind": "final", "window": {"start_ms": 0, "end_ms": 60000}, "values": {"n": 3},
...     "event_count": 3, "as_of": None, "emitted_at": "2026-01-01T00:01:00.000Z"})
>>> new = Entry.from_message({**old.message, "id": "s/a/120000", "window": {"start_ms": 60000, "end_ms": 120000}})
>>> Entry.merge(old, new) is new, Entry.merge(new, old) is new, Entry.merge(new, new) is new
(True, True, True)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

import orjson

from dataflows.client.contract import SchemaVersionError, require_schema
from dataflows.client.topic_reader import TopicReader
from features.kafka_settings import KafkaSettings

LOGGER = logging.getLogger("driftline.client")
SCHEMA_NAME, SCHEMA_MAJOR = "driftline.features", 1


@dataclass(frozen=True)
class Features:
    """One entity's latest features, as `FeatureTable.get` returns them."""

    entity: str
    feature_set: str
    values: Mapping[str, Any]
    window_start_ms: int
    window_end_ms: int
    kind: str  # "final", or "update" while the window is open
    event_count: int
    id: str
    freshness_s: float  # wall-clock seconds since the window's end (event time), when `get` answered

    @property
    def window_end(self) -> datetime:
        """The window's end as an aware UTC datetime."""
        return datetime.fromtimestamp(self.window_end_ms / 1000, tz=timezone.utc)


@dataclass(frozen=True)
class Entry:
    """A stored message and its order key: (window end, final over update, update time)."""

    key: tuple[int, int, int]
    message: Mapping[str, Any]

    @staticmethod
    def from_message(message: Mapping[str, Any]) -> Entry:
        """Check the schema and compute the order key; raises ValueError/KeyError on a bad message."""
        require_schema(message, SCHEMA_NAME, SCHEMA_MAJOR)
        final = message["kind"] == "final"
        as_of = 0 if final or message.get("as_of") is None else _ms(message["as_of"])
        return Entry((int(message["window"]["end_ms"]), int(final), as_of), message)

    @staticmethod
    def merge(current: Entry | None, incoming: Entry) -> Entry:
        """The entry to keep: `incoming` only when it orders after `current`."""
        return incoming if current is None or incoming.key > current.key else current


@dataclass(frozen=True)
class TableStats:
    """What the table has read: applied (became the entry), dropped (duplicate or older), skipped (unreadable)."""

    applied: int = 0
    dropped: int = 0
    skipped: int = 0


class FeatureTable:
    """The latest features per entity of one feature topic; see the module docstring.

    One table holds one feature set (a `features.<set>` topic). Partitions are listed when
    the table starts. A message of an unknown major schema version stops the table: `get`
    and `wait_until_caught_up` then raise `SchemaVersionError`.
    """

    def __init__(self, bootstrap: str, topic: str, settings: KafkaSettings = KafkaSettings(),
                 clock: Any = time.time) -> None:
        self._reader = TopicReader(bootstrap, topic, from_beginning=True, settings=settings)
        self._entries: dict[str, Entry] = {}
        self._stats = TableStats()
        self._clock = clock
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"driftline-table-{topic}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                batch = self._reader.read()
                with self._progress:
                    for message in batch:
                        self._apply(message.value())
                    self._progress.notify_all()
        except BaseException as exc:  # surfaced to the service by get() and wait_until_caught_up()
            LOGGER.error("feature table for %s stopped: %s", self._reader.topic, exc)
            with self._progress:
                self._error = exc
                self._progress.notify_all()

    def _apply(self, value: bytes | None) -> None:
        try:
            entry = Entry.from_message(orjson.loads(value or b"null"))
            entity = str(entry.message["entity"])
        except SchemaVersionError:
            raise
        except (KeyError, TypeError, ValueError):  # not JSON, or not a complete features message
            self._stats = TableStats(self._stats.applied, self._stats.dropped, self._stats.skipped + 1)
            return
        kept = Entry.merge(self._entries.get(entity), entry)
        if kept is entry:
            self._entries[entity] = entry
            self._stats = TableStats(self._stats.applied + 1, self._stats.dropped, self._stats.skipped)
        else:
            self._stats = TableStats(self._stats.applied, self._stats.dropped + 1, self._stats.skipped)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def get(self, entity: str) -> Features | None:
        """The entity's latest features, or None if the table has none (yet)."""
        with self._lock:
            self._raise_if_failed()
            entry = self._entries.get(entity)
        if entry is None:
            return None
        m = entry.message
        return Features(entity=entity, feature_set=m["feature_set"], values=MappingProxyType(dict(m["values"])),
                        window_start_ms=m["window"]["start_ms"], window_end_ms=m["window"]["end_ms"],
                        kind=m["kind"], event_count=m["event_count"], id=m["id"],
                        freshness_s=self._clock() - m["window"]["end_ms"] / 1000)

    def wait_until_caught_up(self, timeout_s: float) -> bool:
        """Block until every partition is read up to the end offset it had when this was
        called; True when it is, False when `timeout_s` passed first."""
        deadline = time.monotonic() + timeout_s
        targets = self._reader.end_offsets(timeout_s)
        if not self._wait_for(targets, deadline):
            return False
        # Reading up to the queried ends also refreshed the ends fetch responses carry: the
        # true ends where the broker's answer to the query lags (see TopicReader.end_offsets).
        fetched = self._reader.fetched_end_offsets()
        return self._wait_for({p: max(t, fetched.get(p, 0)) for p, t in targets.items()}, deadline)

    def _wait_for(self, targets: dict[int, int], deadline: float) -> bool:
        with self._progress:
            while not self._reader.reached(targets):
                self._raise_if_failed()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.5))
            self._raise_if_failed()
        return True

    @property
    def stats(self) -> TableStats:
        """Counts of messages applied, dropped as duplicates or older, and skipped as unreadable."""
        return self._stats

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        """Stop the background reader and close its consumers."""
        self._stop.set()
        self._thread.join()
        self._reader.close()

    def __enter__(self) -> FeatureTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)

