"""Writing the synthetic ride stream (`dataflows.synth.generator`) to Kafka or to JSONL files.

Both writers consume the generator's batches of plain tuples (not `Produced` objects), so
they run at the generator's speed, and both return the same `ProduceStats`:

>>> import tempfile
>>> from dataflows.synth.generator import StreamSpec
>>> with tempfile.TemporaryDirectory() as folder:
...     write_jsonl(StreamSpec(events=1000, seed=2, malformed_fraction=0.01), Path(folder) / "rides.jsonl")
ProduceStats(events=1000, labels=0, malformed=10, by_reason={'not_json': 2, 'not_object': 2, 'missing_field': 1, 'wrong_type': 1, 'non_finite': 1, 'bad_timestamp': 1, 'future_timestamp': 1, 'oversized': 1})
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError, Producer

from dataflows.synth.generator import Row, StreamSpec, generate_batches
from dataflows.kafka.clients import new_client
from dataflows.kafka.io import producer_config
from dataflows.synth.malformed_events import REJECTION_KINDS
from features.kafka_settings import KafkaSettings


@dataclass(frozen=True)
class ProduceStats:
    """What was written: event messages (valid and malformed), labels, malformed by reason."""

    events: int
    labels: int
    malformed: int
    by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ProduceProgress:
    """Handed to a `progress` callback now and then: events so far and events/s lately."""

    events: int
    labels: int
    rate: float
    elapsed_s: float


Progress = Callable[[ProduceProgress], None]


class _Tally:
    """Counts what was written and calls `progress` at most every `interval_s`."""

    def __init__(self, progress: Progress | None, interval_s: float = 0.5) -> None:
        self.events = self.labels = 0
        self.by_reason = dict.fromkeys(REJECTION_KINDS, 0)
        self._progress = progress
        self._interval = interval_s
        self._started = self._last_t = time.monotonic()
        self._last_events = 0

    def maybe_report(self, force: bool = False) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_t < self._interval:
            return
        rate = (self.events - self._last_events) / max(now - self._last_t, 1e-9)
        if force:  # the final report: the average over the whole run
            rate = self.events / max(now - self._started, 1e-9)
        self._last_t, self._last_events = now, self.events
        self._progress(ProduceProgress(self.events, self.labels, rate, now - self._started))

    def stats(self) -> ProduceStats:
        by_reason = {reason: count for reason, count in self.by_reason.items() if count}
        return ProduceStats(self.events, self.labels, sum(by_reason.values()), by_reason)


def _split(batch: Iterable[Row], tally: _Tally) -> tuple[list[bytes], list[bytes]]:
    events: list[bytes] = []
    labels: list[bytes] = []
    for kind, _key, value, reason, _index in batch:
        if kind == "event":
            events.append(value)
            if reason is not None:
                tally.by_reason[reason] += 1
        else:
            labels.append(value)
    return events, labels


def write_jsonl(spec: StreamSpec, events_path: Path | str, labels_path: Path | str | None = None,
                progress: Progress | None = None) -> ProduceStats:
    """Write the events, one per line, to `events_path`, and the labels to `labels_path` if given.

    Malformed events are written as they are (none holds a newline), so a replay of the file
    sees exactly what a consumer of the topic would. See the module docstring for an example.
    """
    tally = _Tally(progress)
    with contextlib.ExitStack() as files:
        events_file = files.enter_context(open(events_path, "wb"))
        labels_file = files.enter_context(open(labels_path, "wb")) if labels_path is not None else None
        for batch in generate_batches(spec):
            events, labels = _split(batch, tally)
            if events:
                events_file.write(b"\n".join(events) + b"\n")
            if labels and labels_file is not None:
                labels_file.write(b"\n".join(labels) + b"\n")
                tally.labels += len(labels)
            tally.events += len(events)
            tally.maybe_report()
    tally.maybe_report(force=True)
    return tally.stats()


def kafka_producer_config(bootstrap: str, settings: KafkaSettings = KafkaSettings()) -> dict[str, object]:
    """The sinks' producer settings (idempotent, acks=all), tuned for a bulk load: larger
    batches and queue, and delivery reports only for failures, so no Python callback runs
    per message.

    >>> kafka_producer_config("127.0.0.1:9092")["delivery.report.only.error"]
    True
    """
    return producer_config(bootstrap, settings, {
        "linger.ms": 50,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 512 * 1024,
        "delivery.report.only.error": True,
    })


class _Failures:
    """Delivery and fatal client errors, collected from librdkafka's callbacks."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def on_delivery(self, err: KafkaError | None, msg: object) -> None:
        if err is not None:
            topic = getattr(msg, "topic", lambda: "?")()
            self.errors.append(f"{topic}: {err.str()}")

    def on_error(self, err: KafkaError) -> None:
        if err.fatal():  # transient errors (a broker restarting) are retried by librdkafka
            self.errors.append(f"fatal: {err.str()}")

    def check(self, bootstrap: str) -> None:
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} message(s) could not be written to {bootstrap}; "
                               f"first error: {self.errors[0]}")


def _wait_for_room(producer: Producer, topic: str, key: bytes | None, value: bytes) -> None:
    """The local queue is full: let deliveries drain, then send."""
    while True:
        producer.poll(0.05)
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            continue


class _Pacer:
    """Holds production to `rate` events per wall-clock second, serving callbacks while it waits."""

    def __init__(self, rate: float, producer: Producer, tally: _Tally) -> None:
        self._rate, self._producer, self._tally = rate, producer, tally
        self._started = time.monotonic()

    def wait(self, sent: int) -> None:
        due = self._started + sent / self._rate
        while (now := time.monotonic()) < due:
            self._producer.poll(min(due - now, 0.1))
            self._tally.maybe_report()


def produce_to_kafka(spec: StreamSpec, bootstrap: str, topic: str, labels_topic: str | None,
                     rate: float | None = None, progress: Progress | None = None,
                     flush_timeout_s: float = 120.0, settings: KafkaSettings = KafkaSettings()) -> ProduceStats:
    """Write the events to `topic` (keyed by area) and the labels to `labels_topic` (keyed by
    ride id; None: skip them), in the generator's order, and wait until the broker has them.

    `rate` caps the events written per wall-clock second (default: as fast as possible).
    Raises RuntimeError when a message cannot be delivered. The topics must exist
    (`dataflows.kafka.broker.create_topics`).

    >>> produce_to_kafka(StreamSpec(events=1000), "127.0.0.1:9092", "rides", "rides.labels")  # doctest: +SKIP
    ProduceStats(events=1000, labels=1000, malformed=0, by_reason={})
    """
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be a positive number of events per second, found {rate!r}")
    failures = _Failures()
    producer = new_client(Producer, {**kafka_producer_config(bootstrap, settings), "on_delivery": failures.on_delivery,
                                     "error_cb": failures.on_error}, settings)
    tally = _Tally(progress)
    pacer = _Pacer(rate, producer, tally) if rate is not None else None
    produce = producer.produce
    for batch in generate_batches(spec):
        for kind, key, value, reason, _index in batch:
            if kind == "event":
                if pacer is not None:
                    pacer.wait(tally.events)
                target = topic
                tally.events += 1
                if reason is not None:
                    tally.by_reason[reason] += 1
            elif labels_topic is not None:
                target = labels_topic
                tally.labels += 1
            else:
                continue
            try:
                produce(target, value, key)
            except BufferError:
                _wait_for_room(producer, target, key, value)
        producer.poll(0)
        failures.check(bootstrap)
        tally.maybe_report()
    _flush(producer, bootstrap, failures, flush_timeout_s)
    tally.maybe_report(force=True)
    return tally.stats()


def _flush(producer: Producer, bootstrap: str, failures: _Failures, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (queued := producer.flush(1.0)) > 0:
        failures.check(bootstrap)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{queued} message(s) still unacknowledged after {timeout_s:.0f} s; "
                               f"is the broker at {bootstrap} reachable?")
    failures.check(bootstrap)
