"""How fast a service's FeatureTable loads a feature topic, against the read-and-parse floor.

Usage: .venv/bin/python bench/bench_client.py [--messages 300000] [--entities 10000]

One run, on the local broker, for the same topic of `driftline.features/1` messages
(3 partitions, each entity's windows in order, a tenth of them delivered twice):

- floor: one confluent-kafka consumer reading every partition + orjson.loads, nothing else;
- FeatureTable: from construction until `wait_until_caught_up` returns (parse, schema
  check, newest-wins merge, duplicate dropping), then a check that it holds every entity's
  last window.

It also times `FeatureTable.get` on the loaded table. Figures vary between runs on a
shared machine; compare the ratio.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from dataflows.kafka.broker import create_topics, local_broker
from dataflows.client import FeatureTable
from dataflows.kafka.io import list_partitions, producer_config
from features.messages import encode, feature_message

START_MS = 1_767_225_600_000
MINUTE = 60_000


def write(bootstrap: str, topic: str, messages: int, entities: int) -> tuple[int, dict[str, int]]:
    """Write the workload; returns the messages written and each entity's last window end."""
    rng = random.Random(3)
    producer = Producer({**producer_config(bootstrap), "linger.ms": 50, "queue.buffering.max.messages": 1_000_000})
    last: dict[str, int] = {}
    written = 0
    for i in range(messages):
        entity = f"area-{i % entities:05d}"
        end = START_MS + (i // entities + 1) * MINUTE
        value = encode(feature_message("area_1m", entity, end - MINUTE, end,
                                       {"rides": i % 50, "mean_price": 18.5, "p90_eta": 9.25}, i % 50,
                                       "final", None, end + 1_000))
        for _ in range(2 if rng.random() < 0.1 else 1):  # at-least-once repeats
            while True:
                try:
                    producer.produce(topic, value, entity.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
            written += 1
        last[entity] = end
    assert producer.flush(120) == 0
    return written, last


def floor(bootstrap: str, topic: str, total: int) -> float:
    """Seconds for one consumer to read and parse every message."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-floor", "enable.auto.commit": "false"})
    consumer.assign([TopicPartition(topic, p, 0) for p in list_partitions(bootstrap, topic)])
    started, seen = time.perf_counter(), 0
    while seen < total:
        for message in consumer.consume(2000, 1.0):
            if message.error() is None:
                orjson.loads(message.value())
                seen += 1
            elif message.error().code() != KafkaError._PARTITION_EOF:
                raise RuntimeError(str(message.error()))
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--entities", type=int, default=10_000)
    args = parser.parse_args()
    with local_broker() as broker:
        topic = "features.bench"
        create_topics(broker.bootstrap, [topic], partitions=3)
        total, last = write(broker.bootstrap, topic, args.messages, args.entities)
        floor_s = floor(broker.bootstrap, topic, total)
        started = time.perf_counter()
        with FeatureTable(broker.bootstrap, topic) as table:
            assert table.wait_until_caught_up(timeout_s=600)
            load_s = time.perf_counter() - started
            assert len(table) == len(last) and all(table.get(e).window_end_ms == end for e, end in last.items())
            keys = list(last)
            t0 = time.perf_counter()
            for _ in range(10):
                for entity in keys:
                    table.get(entity)
            get_us = (time.perf_counter() - t0) / (10 * len(keys)) * 1e6
            stats = table.stats
    print(f"{total:,} feature messages ({stats.dropped:,} repeats or older), {len(last):,} entities, "
          "3 partitions, local broker")
    print(f"{'case':<44} {'messages/s':>11} {'÷ floor':>8}")
    print(f"{'floor: consume + orjson.loads':<44} {total / floor_s:>11,.0f} {1.0:>8.2f}")
    print(f"{'FeatureTable load until caught up':<44} {total / load_s:>11,.0f} {floor_s / load_s:>8.2f}")
    print(f"FeatureTable.get on the loaded table: {get_us:.1f} µs per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
