"""Producing the synthetic stream to the real broker: every message arrives, keyed and in order."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.synth.generator import StreamSpec, generate
from dataflows.kafka.io import list_partitions
from dataflows.synth.malformed_events import REJECTION_KINDS
from dataflows.synth.produce import ProduceProgress, produce_to_kafka
from dataflows.cli.produce import produce_command
from tests.synth.test_generator import produce_args

pytestmark = pytest.mark.integration


def read_topic(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[tuple[int, bytes | None, bytes]]:
    """Every (partition, key, value) in `topic`, in offset order within each partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "driftline-tests",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    partitions = list_partitions(bootstrap, topic)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    messages: list[tuple[int, bytes | None, bytes]] = []
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
                messages.append((msg.partition(), msg.key(), msg.value()))
    finally:
        consumer.close()
    return messages


def test_every_event_and_label_arrives_keyed_and_in_order(broker: RunningBroker, topic_prefix: str) -> None:
    topic, labels_topic = f"{topic_prefix}rides", f"{topic_prefix}rides.labels"
    create_topics(broker.bootstrap, [topic, labels_topic], partitions=3)
    spec = StreamSpec(events=2000, seed=13, malformed_fraction=0.05)
    reports: list[ProduceProgress] = []
    stats = produce_to_kafka(spec, broker.bootstrap, topic, labels_topic, progress=reports.append)

    expected = list(generate(spec))
    events = [m for m in expected if m.kind == "event"]
    labels = [m for m in expected if m.kind == "label"]
    assert stats.events == 2000 and stats.malformed == 100 and stats.labels == len(labels) == 1900
    assert stats.by_reason == {kind: 12 + (i < 4) for i, kind in enumerate(REJECTION_KINDS)}
    assert reports and reports[-1].events == 2000 and reports[-1].rate > 0

    for name, wanted in ((topic, events), (labels_topic, labels)):
        got = read_topic(broker.bootstrap, name)
        assert Counter((key, value) for _, key, value in got) == Counter((m.key, m.value) for m in wanted)
        by_partition: dict[int, list[bytes]] = defaultdict(list)
        partition_of: dict[bytes | None, set[int]] = defaultdict(set)
        for partition, key, value in got:
            by_partition[partition].append(value)
            partition_of[key].add(partition)
        assert all(len(parts) == 1 for parts in partition_of.values())  # one key, one partition
        for partition, values in by_partition.items():  # each partition in production order
            keys = {key for key, parts in partition_of.items() if partition in parts}
            assert values == [m.value for m in wanted if m.key in keys]
    for message in events:
        if message.expected_reason is None:
            assert message.key == orjson.loads(message.value)["area"].encode()


def test_the_produce_command_creates_the_topics_and_paces_the_stream(
        broker: RunningBroker, topic_prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    topic = f"{topic_prefix}cli"
    started = time.monotonic()
    code = produce_command(produce_args(bootstrap=broker.bootstrap, topic=topic, events=300, rate=1000.0,
                                        partitions=2, malformed_fraction=0.0))
    assert code == 0
    assert time.monotonic() - started >= 0.25  # 300 events at 1000/s
    assert f"produced 300 events (0 malformed) and 300 labels to '{topic}' and '{topic}.labels'" in \
        capsys.readouterr().out
    assert len(read_topic(broker.bootstrap, topic)) == 300
    assert len(read_topic(broker.bootstrap, f"{topic}.labels")) == 300
    assert len(list_partitions(broker.bootstrap, topic)) == 2


def test_create_topics_asks_once_for_a_topic_named_twice(broker: RunningBroker, topic_prefix: str) -> None:
    # A model flow's input topics include the labels topic the demo also names; a duplicate
    # in one CreateTopics request broke the broker's response.
    name = f"{topic_prefix}twice"
    create_topics(broker.bootstrap, [name, f"{name}.labels", name], partitions=2)
    assert len(list_partitions(broker.bootstrap, name)) == 2
    assert len(list_partitions(broker.bootstrap, f"{name}.labels")) == 2
