"""`OnlineStoreSink`: the flow's sink, plus the latest feature vectors in Redis.

It wraps the sink a flow already writes to (`KafkaOutput`, or `TopicFiles` in a replay):
every batch goes to that sink first, then its feature messages go to Redis. The topic stays
the record; the store is a view of it. Both are at-least-once: after a crash the restarted
flow writes the batches since the last snapshot again, and the store's compare-and-write
keeps every entity at its newest window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from dataflows.counters import FlowCounters
from dataflows.kafka.io import MessageBatch, OutMessage, out_messages
from dataflows.serving.writer import OnlineStoreWriter
from features.online_store import OnlineStoreConfig


class _TeePartition(StatelessSinkPartition[OutMessage]):
    def __init__(self, inner: StatelessSinkPartition[OutMessage], writer: OnlineStoreWriter,
                 counters: FlowCounters | None) -> None:
        self._inner = inner
        self._writer = writer
        self._counters = counters

    def write_batch(self, items: Iterable[OutMessage | MessageBatch]) -> None:
        # A batch is rendered once (its render may compute the windows, see `MessageBatch`),
        # then written to both.
        items = [MessageBatch.of(item.topic, *item.render()) if type(item) is MessageBatch else item for item in items]
        self._inner.write_batch(items)
        items = list(out_messages(items))
        writer = self._writer
        before = writer.older
        written = writer.write(items)
        if self._counters is not None and (written or writer.older != before):
            self._counters.add({"online_store.written": written, "online_store.older": writer.older - before})

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._writer.close()


class OnlineStoreSink(DynamicSink[OutMessage]):
    """`inner`, and the feature messages of the topics in `topics` (topic -> set) to Redis."""

    def __init__(self, inner: DynamicSink[OutMessage], config: OnlineStoreConfig, topics: Mapping[str, str],
                 counters: FlowCounters | None = None) -> None:
        self._inner = inner
        self._config = config
        self._topics = dict(topics)
        self._counters = counters

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _TeePartition:
        inner = self._inner.build(step_id, worker_index, worker_count)
        return _TeePartition(inner, OnlineStoreWriter(self._config, self._topics), self._counters)
