"""Reading every partition of one topic from a service: the consumer under the client classes.

A `TopicReader` assigns itself all partitions of a topic (no consumer group, nothing
committed: each service instance reads the whole topic), from the beginning or from the
end, and knows how far it has read, so a caller can wait until it has caught up with the
end offsets of a given moment. Kafka client properties (SASL/SSL) come from `settings`.

>>> with TopicReader("127.0.0.1:9092", "features.area_1m") as reader:   # doctest: +SKIP
...     batch = reader.read(timeout_s=0.5)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from dataflows.kafka.clients import client_config, new_client
from dataflows.kafka.io import list_partitions
from features.kafka_settings import KafkaSettings


class TopicReader:
    """All partitions of `topic`, read in order per partition; see the module docstring."""

    def __init__(self, bootstrap: str, topic: str, from_beginning: bool = True,
                 settings: KafkaSettings = KafkaSettings(), group_id: str = "driftline-client") -> None:
        self.topic = topic
        self._settings = settings
        self.partitions = list_partitions(bootstrap, topic, settings=settings)
        config = client_config(bootstrap, settings, {"group.id": group_id, "enable.auto.commit": "false",
                                                     "fetch.wait.max.ms": "100"})
        self._consumer = new_client(Consumer, config, settings)
        # A second handle answers end-offset queries from other threads while `read` blocks.
        self._offsets = new_client(Consumer, config, settings)
        self._offsets_lock = threading.Lock()
        # From the end: the end offsets of this moment, so every later message is read.
        starts = {p: OFFSET_BEGINNING for p in self.partitions} if from_beginning else self._highs()
        self._consumer.assign([TopicPartition(topic, p, start) for p, start in starts.items()])
        # partition -> next offset to read, once known
        self._next: dict[int, int] = {} if from_beginning else dict(starts)
        # partition -> end offset carried by the latest fetch response (see `end_offsets`)
        self._fetched_end: dict[int, int] = {}

    def read(self, max_messages: int = 500, timeout_s: float = 0.2) -> list[Message]:
        """The next messages (possibly none within `timeout_s`); raises on a broker error."""
        out = []
        for message in self._consumer.consume(max_messages, timeout_s):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"error reading {self.topic}: {self._settings.redact(str(error))}")
            self._next[message.partition()] = message.offset() + 1
            out.append(message)
        for p in self.partitions:
            high = self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), cached=True)[1]
            if high >= 0:
                self._fetched_end[p] = high
        return out

    def _watermarks(self, timeout_s: float) -> dict[int, tuple[int, int]]:
        with self._offsets_lock:
            return {p: self._offsets.get_watermark_offsets(TopicPartition(self.topic, p), timeout=timeout_s)
                    for p in self.partitions}

    def _highs(self, timeout_s: float = 10.0) -> dict[int, int]:
        return {p: high for p, (_low, high) in self._watermarks(timeout_s).items()}

    def end_offsets(self, timeout_s: float = 10.0) -> dict[int, int]:
        """Each partition's end offset now (0 where the partition holds nothing); any thread.

        Some brokers (Tansu 0.6) answer this query with the start of the last record batch
        rather than the end; `fetched_end_offsets` has the true end as of the latest fetch.
        """
        return {p: high if high > low else 0 for p, (low, high) in self._watermarks(timeout_s).items()}

    def fetched_end_offsets(self) -> dict[int, int]:
        """Each partition's end offset as the latest fetch response gave it; any thread."""
        return dict(self._fetched_end)

    def reached(self, targets: Mapping[int, int]) -> bool:
        """True once every partition has been read up to its target offset; any thread."""
        return all(self._next.get(partition, 0) >= target for partition, target in targets.items())

    def close(self) -> None:
        """Close both consumer handles."""
        self._consumer.close()
        with self._offsets_lock:
            self._offsets.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
