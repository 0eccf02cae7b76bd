"""Kafka input and output for the dataflows.

`KafkaInput` is Bytewax's partitioned Kafka source reduced to what the flows need: it
yields light `RawMessage` tuples (no per-message objects beyond a tuple), keeps each
partition's next offset in the recovery snapshot (inputs are read exactly once per epoch),
and can be *bounded*: with `stop_at_end=True` each partition stops at the end offset it
had when the flow started, even while producers keep writing.

Reads favour throughput by default: each partition's `next_batch` waits up to 50 ms for a
fuller batch. Bytewax polls a worker's partitions one after the other, so with four input
partitions a message can wait about 200 ms before the flow sees it. `low_latency=True` (the
model flow with an arrival-order model) reads without waiting: `next_batch` takes what has
already been fetched, and the partition is read again `LOW_LATENCY_POLL_MS` later (at once
after a full batch: a backlog is read at full speed; Bytewax's own pace, 1 ms after an empty
batch, costs CPU for nothing). A worker's partitions then share one consumer, so one fetch
request brings every partition's new messages at once: with a consumer per partition each
partition came on its own fetch cycle, and the arrival order, which waits until every
partition has passed an event, waited for the slowest. The broker may hold a fetch
`LOW_LATENCY_FETCH_WAIT_MS` (50 ms otherwise). A Kafka broker answers as soon as there is data;
Tansu, the local broker of the tests and benches, holds every fetch that long, data or not,
so there it bounds the read delay. Shorter (5 or 10 ms) had Tansu spend its CPU on fetch
requests, and on the busy 2-core machine the producers' acknowledgements fell seconds behind.

`KafkaOutput` writes `(topic, key, value)` triples (and `MessageBatch`es of them). With
recovery on it flushes after each batch, so a batch is acknowledged by the broker before
Bytewax commits the epoch that produced it (at-least-once; consumers drop duplicates by the
message `id`). Without recovery a restart reads its input from the start again, so the
producer only waits for acknowledgements when its queue is full and at the end of the run:
the flow does not stall on a broker round trip per batch. `low_latency=True` sends what
a batch produced after `LOW_LATENCY_LINGER_MS` (`linger.ms`) instead of 20.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import NamedTuple

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from dataflows.counters import FlowCounters
from dataflows.kafka.clients import admin_client, client_config, new_client
from features.kafka_settings import KafkaSettings

READ_WAIT_S = 0.05  # how long a partition's read waits for a fuller batch (throughput reads)
LOW_LATENCY_POLL_MS = 5  # low-latency reads: the pause between two reads of a partition
# Low-latency reads: how long the broker may hold a fetch (one fetch request per worker).
LOW_LATENCY_FETCH_WAIT_MS = 20
# A produced message's wait for more to send with it, low-latency writes (at 1 ms, producing
# took ~40 us a message on the busy 2-core test machine, by py-spy: about one request each).
LOW_LATENCY_LINGER_MS = 5
FLUSH_WAIT_S = 0.2  # a flush waits for acknowledgements in waits this long (see _OutputPartition._flush)
INTERRUPTED_CLOSE_WAIT_S = 5.0  # the most a sink closed in the middle of a batch waits for deliveries


class RawMessage(NamedTuple):
    """One consumed message, as the flow sees it before decoding."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


class OutMessage(NamedTuple):
    """One message to produce."""

    topic: str
    key: bytes | None
    value: bytes


Rendered = tuple[list[bytes | None], list[bytes]]  # keys, values


def _given(keys: list[bytes | None], values: list[bytes]) -> Rendered:
    return keys, values


@dataclass(frozen=True, eq=False)
class MessageBatch:
    """Many messages to one topic, as one item: steps that make many messages emit this
    instead of one item per message, so Bytewax carries one item per batch. `render` gives
    the keys and values when the sink writes them: a step can hand over rows and let the
    sink render them, so the bytes of many batches (a flush at the end of the input) never
    exist all at once. `render` may compute what it renders (the features flow's last windows),
    so a sink calls it once (a sink that writes to two places renders first), on the worker
    that made the item (sinks are not keyed, items do not travel).

    >>> MessageBatch.of("t", [b"k"], [b"v"]).render()
    ([b'k'], [b'v'])
    """

    topic: str
    render: Callable[[], Rendered]

    @staticmethod
    def of(topic: str, keys: list[bytes | None], values: list[bytes]) -> MessageBatch:
        """A batch of messages already rendered."""
        return MessageBatch(topic, partial(_given, keys, values))


def out_messages(items: Iterable[OutMessage | MessageBatch]) -> Iterator[OutMessage]:
    """Every message of a sink's items, batches flattened, in order.

    >>> [m.key for m in out_messages([OutMessage("t", b"a", b"1"), MessageBatch.of("t", [b"b", b"c"], [b"2", b"3"])])]
    [b'a', b'b', b'c']
    """
    for item in items:
        if type(item) is MessageBatch:
            for key, value in zip(*item.render()):
                yield OutMessage(item.topic, key, value)
        else:
            yield item


def list_partitions(bootstrap: str, topic: str, timeout_s: float = 10.0,
                    settings: KafkaSettings = KafkaSettings()) -> list[int]:
    """Partition ids of `topic`; raises RuntimeError naming the topic when it does not exist
    or Kafka does not answer."""
    admin = admin_client(bootstrap, settings)
    try:
        meta = admin.list_topics(topic, timeout=timeout_s).topics.get(topic)
    except KafkaException as exc:
        raise RuntimeError(f"cannot reach Kafka at {bootstrap} to read topic {topic!r}: "
                           f"{settings.redact(exc.args[0].str() if exc.args else str(exc))}. Check --bootstrap, "
                           "that the brokers run, and the Kafka security properties.") from None
    if meta is None or meta.error is not None or not meta.partitions:
        reason = meta.error.str() if meta is not None and meta.error is not None else "it does not exist"
        raise RuntimeError(
            f"cannot read topic {topic!r} at {bootstrap}: {reason}. "
            "Create it first (the demo and `driftline produce` create their topics)."
        )
    return sorted(meta.partitions)


class _PartitionReader(StatefulSourcePartition[RawMessage, int]):
    def __init__(self, consumer: Consumer | _PartitionView, topic: str, partition: int, next_offset: int,
                 end_offset: int | None, batch_size: int, counters: FlowCounters | None = None,
                 wait_s: float = READ_WAIT_S, poll_every: timedelta | None = None) -> None:
        self._consumer = consumer
        self._topic = topic
        self._partition = partition
        self._next = next_offset
        self._end = end_offset
        # Bounded runs settle their end offset from the first fetch response (see below).
        self._end_settled = end_offset is None
        self._batch_size = batch_size
        self._wait_s = wait_s
        self._poll_every = poll_every  # None: as often as Bytewax polls
        self._awake: datetime | None = None
        self._counters = counters
        self._lag_gauge = f"consumer_lag.{topic}.{partition}"

    def _settle_end(self) -> None:
        # Some brokers (Tansu 0.6) answer ListOffsets(latest) with a stale offset, while
        # every fetch response carries the true high watermark; take the larger of the two.
        low, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, self._partition), cached=True)
        if high >= 0:
            self._end = max(self._end or 0, high)
            self._end_settled = True

    def next_batch(self) -> list[RawMessage]:
        if self._end_settled and self._end is not None and self._next >= self._end:
            raise StopIteration()
        batch: list[RawMessage] = []
        messages = self._consumer.consume(self._batch_size, self._wait_s)
        if not self._end_settled:
            self._settle_end()
        new, topic, partition = tuple.__new__, self._topic, self._partition
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"error reading {self._topic}[{self._partition}]: {error}")
            offset = msg.offset()
            if self._end_settled and self._end is not None and offset >= self._end:
                break
            # tuple.__new__ skips the NamedTuple's Python-level __new__ (a third of this loop).
            batch.append(new(RawMessage, (topic, partition, offset, msg.timestamp()[1], msg.key(), msg.value())))
            self._next = offset + 1
        if self._counters is not None:
            high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1]
            if high >= 0:
                self._counters.set_gauge(self._lag_gauge, max(0, high - self._next))
        if self._poll_every is not None:
            full = len(messages) >= self._batch_size
            self._awake = None if full else datetime.now(timezone.utc) + self._poll_every
        return batch

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._next

    def close(self) -> None:
        self._consumer.close()


class _SharedConsumer:
    """One consumer for every partition a worker reads (low-latency reads): one fetch request
    carries them all, so the partitions' messages come in together. Each partition reads
    through its `_PartitionView`; messages fetched for the other partitions wait in `_pending`
    until their reader asks (Bytewax reads every partition each few milliseconds)."""

    def __init__(self, consumer: Consumer, on_closed: Callable[[], None]) -> None:
        self.consumer = consumer
        self._on_closed = on_closed
        self._pending: dict[tuple[str, int], list[Message]] = {}
        self._assigned: set[tuple[str, int]] = set()

    def add(self, topic: str, partition: int, offset: int) -> _PartitionView:
        """Start reading `topic[partition]` at `offset`."""
        self.consumer.incremental_assign([TopicPartition(topic, partition, offset)])
        self._assigned.add((topic, partition))
        return _PartitionView(self, topic, partition)

    def take(self, topic: str, partition: int, count: int) -> list[Message]:
        """At most `count` of the partition's messages fetched so far, without waiting (and
        any error that names no assigned partition: the caller raises it)."""
        pending, assigned, own = self._pending, self._assigned, (topic, partition)
        for msg in self.consumer.consume(count * len(assigned), 0):
            key = (msg.topic(), msg.partition())
            if key not in assigned:
                key = own
            if key in pending:
                pending[key].append(msg)
            else:
                pending[key] = [msg]
        mine = pending.pop(own, [])
        if len(mine) > count:
            pending[own] = mine[count:]
            mine = mine[:count]
        return mine

    def remove(self, topic: str, partition: int) -> None:
        """Stop reading `topic[partition]`; the consumer closes with the last partition."""
        self.consumer.incremental_unassign([TopicPartition(topic, partition)])
        self._pending.pop((topic, partition), None)
        self._assigned.discard((topic, partition))
        if not self._assigned:
            self.consumer.close()
            self._on_closed()


class _PartitionView:
    """One partition of a `_SharedConsumer`, with the consumer methods `_PartitionReader` uses."""

    def __init__(self, shared: _SharedConsumer, topic: str, partition: int) -> None:
        self._shared = shared
        self._topic = topic
        self._partition = partition

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        return self._shared.take(self._topic, self._partition, num_messages)

    def get_watermark_offsets(self, partition: TopicPartition, cached: bool = False) -> tuple[int, int]:
        return self._shared.consumer.get_watermark_offsets(partition, cached=cached)

    def close(self) -> None:
        self._shared.remove(self._topic, self._partition)


class KafkaInput(FixedPartitionedSource[RawMessage, int]):
    """Every partition of `topics` as a Bytewax input partition; see the module docstring
    (`low_latency`: read without waiting for fuller batches)."""

    def __init__(self, bootstrap: str, topics: Sequence[str], stop_at_end: bool = False,
                 batch_size: int = 20000, extra_config: dict[str, str] | None = None,
                 counters: FlowCounters | None = None, settings: KafkaSettings = KafkaSettings(),
                 low_latency: bool = False) -> None:
        self._bootstrap = bootstrap
        self._topics = tuple(topics)
        self._stop_at_end = stop_at_end
        self._batch_size = batch_size
        self._extra = dict(extra_config or {})
        self._counters = counters  # when given: consumer lag per partition, for the metrics endpoint
        self._settings = settings
        self._low_latency = low_latency
        self._shared: dict[int, _SharedConsumer] = {}  # low-latency reads: per worker thread

    @property
    def client_config(self) -> dict[str, object]:
        """The properties of each partition's consumer: driftline's, the settings, `extra_config`.

        >>> KafkaInput("k:9092", ["rides"], settings=KafkaSettings((("client.id", "svc"),))).client_config["client.id"]
        'svc'
        """
        return {**client_config(self._bootstrap, self._settings, {
            "group.id": "driftline-unused",  # partitions are assigned, never subscribed
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "fetch.wait.max.ms": str(LOW_LATENCY_FETCH_WAIT_MS if self._low_latency else 50),
            # Prefetch per consumer: a few batches, not librdkafka's 64 MB (a consumer per partition).
            "queued.max.messages.kbytes": "16384",
        }), **self._extra}

    def list_parts(self) -> list[str]:
        return [f"{p}-{topic}" for topic in self._topics
                for p in list_partitions(self._bootstrap, topic, settings=self._settings)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _PartitionReader:
        index, topic = for_part.split("-", 1)
        partition = int(index)
        shared = self._shared_consumer() if self._low_latency else None
        consumer = shared.consumer if shared is not None else new_client(Consumer, self.client_config, self._settings)
        start = OFFSET_BEGINNING if resume_state is None else resume_state
        end = None
        if self._stop_at_end:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10.0)
            end = high
            if resume_state is None:
                start = low
        next_offset = start if start >= 0 else 0
        if shared is not None:
            return _PartitionReader(shared.add(topic, partition, start), topic, partition, next_offset, end,
                                    self._batch_size, self._counters, 0.0, timedelta(milliseconds=LOW_LATENCY_POLL_MS))
        consumer.assign([TopicPartition(topic, partition, start)])
        return _PartitionReader(consumer, topic, partition, next_offset, end, self._batch_size, self._counters)

    def _shared_consumer(self) -> _SharedConsumer:
        """The calling worker's shared consumer (Bytewax builds and reads a worker's
        partitions on its thread)."""
        worker = threading.get_ident()
        shared = self._shared.get(worker)
        if shared is None:
            consumer = new_client(Consumer, self.client_config, self._settings)
            shared = self._shared[worker] = _SharedConsumer(consumer, lambda: self._shared.pop(worker, None))
        return shared


def producer_config(bootstrap: str, settings: KafkaSettings = KafkaSettings(),
                    tuning: dict[str, object] | None = None) -> dict[str, object]:
    """Producer properties shared by every sink: batched, idempotent, acknowledged by all
    replicas; `tuning` changes driftline's defaults, `settings` (the user's) win over both.

    >>> producer_config("k:9092", KafkaSettings((("acks", "1"),)), {"linger.ms": 50})["acks"]
    '1'
    """
    return client_config(bootstrap, settings, {
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "enable.idempotence": "true",
        "acks": "all",
        # Delivery callbacks only for failures: no Python call per delivered message.
        "delivery.report.only.error": True,
        **(tuning or {}),
    })


class _OutputPartition(StatelessSinkPartition[OutMessage]):
    """One worker's producer. Its delivery callback is set in the producer's config, not per
    `produce` call: a call without keyword arguments costs about 30% less."""

    def __init__(self, config: dict[str, object], settings: KafkaSettings, flush_each_batch: bool) -> None:
        self._errors: list[str] = []
        self._producer = new_client(Producer, {**config, "on_delivery": self._on_delivery}, settings)
        self._flush_each_batch = flush_each_batch
        self._interrupted = False  # a batch stopped half-way (SIGTERM, an error)

    def _on_delivery(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self._errors.append(str(err))

    def _produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key)
                return
            except BufferError:  # the local queue is full: let deliveries drain
                self._producer.poll(0.05)

    def write_batch(self, items: Iterable[OutMessage | MessageBatch]) -> None:
        try:
            self._write(items)
        except BaseException:
            self._interrupted = True
            raise

    def _write(self, items: Iterable[OutMessage | MessageBatch]) -> None:
        produce, retry = self._producer.produce, self._produce
        for item in items:
            if type(item) is MessageBatch:
                topic = item.topic
                for key, value in zip(*item.render()):
                    try:
                        produce(topic, value, key)
                    except BufferError:
                        retry(topic, key, value)
            else:
                try:
                    produce(item[0], item[2], item[1])
                except BufferError:
                    retry(*item)
        if self._flush_each_batch:
            self._flush()
        else:
            self._producer.poll(0)  # serve delivery reports (errors only) without waiting
        self._raise_errors()

    def _raise_errors(self) -> None:
        if self._errors:
            first, count = self._errors[0], len(self._errors)
            self._errors.clear()
            raise RuntimeError(f"{count} message(s) could not be delivered; first error: {first}")

    def _flush(self) -> None:
        # In short waits, not one: Python runs signal handlers only between calls, so a SIGTERM
        # while the broker is unreachable stops the flow now (the unacknowledged batch is not in
        # a snapshot: a restart writes it again), not after the delivery timeout (5 min).
        while self._producer.flush(FLUSH_WAIT_S):
            pass

    def close(self) -> None:
        if self._interrupted:
            # The flow is stopping in the middle of a batch, which no snapshot covers (a restart
            # writes it again): what is queued gets a bounded chance, not a wait on a broker
            # that may be gone (a SIGTERM during a frozen broker's flush waited 5 minutes here).
            self._producer.flush(INTERRUPTED_CLOSE_WAIT_S)
            return
        self._flush()
        self._raise_errors()


class KafkaOutput(DynamicSink[OutMessage]):
    """Writes `OutMessage`s to their topics; each worker has its own producer.

    `flush_each_batch`: wait for the broker's acknowledgement of every batch (needed with
    recovery, see the module docstring); the default is the safe choice. `low_latency`:
    send after `LOW_LATENCY_LINGER_MS` rather than waiting 20 ms for fuller requests.
    """

    def __init__(self, bootstrap: str, settings: KafkaSettings = KafkaSettings(), flush_each_batch: bool = True,
                 low_latency: bool = False) -> None:
        self._bootstrap = bootstrap
        self._settings = settings
        self._flush_each_batch = flush_each_batch
        self._low_latency = low_latency

    @property
    def client_config(self) -> dict[str, object]:
        """The properties of each worker's producer.

        >>> KafkaOutput("k:9092", KafkaSettings((("client.id", "svc"),))).client_config["client.id"]
        'svc'
        >>> KafkaOutput("k:9092", low_latency=True).client_config["linger.ms"]
        5
        """
        tuning = {"linger.ms": LOW_LATENCY_LINGER_MS} if self._low_latency else None
        return producer_config(self._bootstrap, self._settings, tuning)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _OutputPartition:
        return _OutputPartition(self.client_config, self._settings, self._flush_each_batch)
