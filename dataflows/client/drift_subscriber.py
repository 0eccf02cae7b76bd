"""`DriftSubscriber`: typed drift events from the `drift.events` topic, filtered, without repeats.

    with DriftSubscriber("kafka:9092", min_severity="warning", columns={"price", "eta_min"}) as alerts:
        for event in alerts:                      # blocks, waiting for new events
            page(f"{event.column}: {event.detail}", urgent=event.severity == "critical",
                 runbook=event.runbook)            # the monitor's runbook (text or URL), or None

Messages follow the `driftline.drift_event/1` contract (docs/drift.md); a
message of another major version stops the subscriber with `SchemaVersionError`, while
minor versions' extra fields are ignored. Events repeated by at-least-once delivery (same
`id`) are yielded once. `parse_drift_event` is the parser on its own:

>>> e = parse_drift_event({"schema": "driftline.drift_event/1", "id": "inputs/price/ks/5m/600000",
...     "monitor": "inputs", "column": "price", "kind": "covariate", "test": "ks", "statistic": 0.21,
...     "p_value": 1e-9, "effect_size": None, "threshold": 0.1, "scale": "5m", "scale_ms": 300000,
...     "window": {"start_ms": 300000, "end_ms": 600000}, "began": None, "reference": {"count": 10},
...     "current": {"count": 12}, "severity": "warning", "detail": "price: KS 0.21",
...     "emitted_at": "2026-01-01T00:10:01.000Z"})
>>> e.column, e.statistic, e.window.end_ms, e.began, e.at_least("info"), e.at_least("critical")
('price', 0.21, 600000, None, True, False)

`runbook` (what to do, as the monitor's or model's config gave it: text or a URL) is None
for events of monitors without one, and for events written before the field existed:

>>> e.runbook is None
True
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson

from dataflows.client.contract import SchemaVersionError, require_schema
from dataflows.client.topic_reader import TopicReader
from features.kafka_settings import KafkaSettings

SCHEMA_NAME, SCHEMA_MAJOR = "driftline.drift_event", 1
SEVERITIES = ("info", "warning", "critical")  # in increasing order


@dataclass(frozen=True)
class Window:
    """A half-open event-time window [start_ms, end_ms)."""

    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class DriftEvent:
    """One drift alert, as the drift and model flows write it (see the module docstring)."""

    id: str
    monitor: str
    column: str
    kind: str
    test: str
    statistic: float | None
    p_value: float | None
    effect_size: float | None
    threshold: float | None
    scale: str
    scale_ms: int
    window: Window
    began: Window | None
    reference: Mapping[str, Any]
    current: Mapping[str, Any]
    severity: str
    detail: str
    emitted_at: str
    runbook: str | None = None  # the monitor's or model's runbook (text or URL), when it has one

    def at_least(self, severity: str) -> bool:
        """True when this event is as severe as `severity` or more."""
        return SEVERITIES.index(self.severity) >= SEVERITIES.index(severity)


def _window(table: Mapping[str, Any]) -> Window:
    return Window(int(table["start_ms"]), int(table["end_ms"]))


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def parse_drift_event(message: Mapping[str, Any]) -> DriftEvent:
    """A decoded message as a DriftEvent; SchemaVersionError for another major version,
    ValueError (or KeyError) for a message that breaks the contract."""
    require_schema(message, SCHEMA_NAME, SCHEMA_MAJOR)
    severity = message["severity"]
    if severity not in SEVERITIES:
        raise ValueError(f"drift event {message.get('id')!r}: severity {severity!r} is not one of {SEVERITIES}")
    began = message.get("began")
    return DriftEvent(
        id=message["id"], monitor=message["monitor"], column=message["column"], kind=message["kind"],
        test=message["test"], statistic=_number(message["statistic"]), p_value=_number(message.get("p_value")),
        effect_size=_number(message.get("effect_size")), threshold=_number(message.get("threshold")),
        scale=message["scale"], scale_ms=int(message["scale_ms"]),
        window=_window(message["window"]), began=None if began is None else _window(began), reference=MappingProxyType(dict(message.get("reference") or {})),
        current=MappingProxyType(dict(message.get("current") or {})), severity=severity,
        detail=message.get("detail", ""), emitted_at=message["emitted_at"], runbook=_runbook(message.get("runbook")),
    )


def _runbook(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"drift event runbook must be a string, found {value!r}")
    return value or None


class DriftSubscriber:
    """Iterates over the drift events of `topic` that pass the filters, each `id` once.

    `from_beginning=False` (the default) yields only events written after the subscriber
    started; `True` replays the topic first. `columns=None` means every column.
    Unreadable messages are skipped and counted in `skipped`.
    """

    def __init__(self, bootstrap: str, topic: str = "drift.events", min_severity: str = "info",
                 columns: Collection[str] | None = None, from_beginning: bool = False,
                 settings: KafkaSettings = KafkaSettings(), remember_ids: int = 100_000) -> None:
        if min_severity not in SEVERITIES:
            raise ValueError(f"min_severity must be one of {SEVERITIES}, found {min_severity!r}")
        self.min_severity = min_severity
        self.columns = frozenset(columns) if columns is not None else None
        self.skipped = 0
        self._seen: OrderedDict[str, None] = OrderedDict()  # recent ids; repeats arrive close together
        self._remember = remember_ids
        self._reader = TopicReader(bootstrap, topic, from_beginning=from_beginning, settings=settings)

    def events(self, idle_timeout_s: float | None = None) -> Iterator[DriftEvent]:
        """Yield events as they arrive; with `idle_timeout_s`, stop after that long without a message."""
        idle_since = None
        while True:
            batch = self._reader.read(timeout_s=0.2)
            if not batch:
                now = time.monotonic()
                idle_since = idle_since or now
                if idle_timeout_s is not None and now - idle_since >= idle_timeout_s:
                    return
                continue
            idle_since = None
            for message in batch:
                event = self._accept(message.value())
                if event is not None:
                    yield event

    def __iter__(self) -> Iterator[DriftEvent]:
        return self.events()

    def _accept(self, value: bytes | None) -> DriftEvent | None:
        try:
            decoded = orjson.loads(value or b"null")
            if not isinstance(decoded, dict):
                raise ValueError("not a JSON object")
            event = parse_drift_event(decoded)
        except SchemaVersionError:
            raise
        except (KeyError, TypeError, ValueError):  # not JSON, or not a complete drift event
            self.skipped += 1
            return None
        if event.id in self._seen:
            return None
        self._seen[event.id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        if not event.at_least(self.min_severity) or (self.columns is not None and event.column not in self.columns):
            return None
        return event

    def close(self) -> None:
        """Close the consumer."""
        self._reader.close()

    def __enter__(self) -> DriftSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

