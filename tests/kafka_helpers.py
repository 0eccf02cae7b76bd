"""Small real-client helpers for integration tests: produce a list of messages, read a topic."""

from __future__ import annotations

import time

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from dataflows.kafka.io import list_partitions


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Write (key, value) pairs in order and wait until the broker has them all."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still queued after 30 s"
    assert not failures, failures[:3]


def consume_all(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[bytes]:
    """Every message value currently in `topic`, partition by partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "driftline-tests",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    partitions = list_partitions(bootstrap, topic)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    values: list[bytes] = []
    done: set[int] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while done != set(partitions):
            assert time.monotonic() < deadline, f"reading {topic} took more than {timeout_s} s"
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        done.add(msg.partition())
                        continue
                    raise RuntimeError(str(msg.error()))
                done.discard(msg.partition())
                values.append(msg.value())
    finally:
        consumer.close()
    return values


def consume_json(bootstrap: str, topic: str) -> list[dict]:
    """Every message of `topic`, parsed."""
    return [orjson.loads(v) for v in consume_all(bootstrap, topic)]
