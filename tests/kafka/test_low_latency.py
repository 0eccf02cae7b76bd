"""Low-latency Kafka reads and writes: used by the model flow when a model predicts in arrival
order, and only then; they change when messages are read, never which predictions are made."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from dataflows.counters import FlowCounters
from dataflows.flows.model import build_model_flow
from dataflows.flows.registry import FLOWS, topics_for
from dataflows.flows.runner import run_flow
from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.kafka.io import (
    LOW_LATENCY_FETCH_WAIT_MS,
    LOW_LATENCY_POLL_MS,
    LOW_LATENCY_LINGER_MS,
    KafkaInput,
    KafkaOutput,
    _PartitionReader,
    _SharedConsumer,
)
from dataflows.synth.generator import StreamSpec
from dataflows.synth.produce import produce_to_kafka
from features.config import parse_config
from features.kafka_settings import KafkaSettings
from tests.flow_fixtures import strip
from tests.kafka_helpers import consume_json


class FakeMessage:
    def __init__(self, offset: int, topic: str = "rides", partition: int = 0, error: str | None = None) -> None:
        self._offset = offset
        self._topic = topic
        self._partition = partition
        self._error = error

    def error(self) -> str | None:
        return self._error

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1000 + self._offset)

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"{}"


class FakeConsumer:
    """Hands out the queued batches, one per `consume`; records each call's timeout."""

    def __init__(self, batches: list[list[FakeMessage]]) -> None:
        self.batches = batches
        self.timeouts: list[float] = []

    def consume(self, num: int, timeout: float) -> list[FakeMessage]:
        self.timeouts.append(timeout)
        return self.batches.pop(0) if self.batches else []

    def get_watermark_offsets(self, partition: object, cached: bool = False) -> tuple[int, int]:
        return 0, 10

    def incremental_assign(self, partitions: list[object]) -> None:
        pass

    def incremental_unassign(self, partitions: list[object]) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def document(prefix: str, order: str) -> dict:
    return {
        "source": {"topic": f"{prefix}rides", "lateness": "10s", "dead_letter_topic": f"{prefix}rides.dlq"},
        "schema": {"entity": "area", "event_time": "ts", "time_format": "epoch_ms", "fields": {
            "ride_id": "string", "area": "string", "price": "float", "distance_km": "float",
            "surge": {"type": "float", "nullable": True}, "eta_min": "float",
            "payment": {"type": "category", "values": ["card", "cash", "wallet"]}}},
        "models": [{"name": "cancel", "kind": "hoeffding_tree_classifier", "params": {"grace_period": 50},
                    "inputs": ["price", "distance_km", "surge", "eta_min", "payment"], "order": order,
                    "labels": {"topic": f"{prefix}rides.labels", "key": "ride_id", "field": "cancelled"},
                    "metrics_window": "30s", "snapshot_every": "1m",
                    "topic": f"{prefix}predictions.cancel", "metrics_topic": f"{prefix}model.metrics",
                    "snapshots_topic": f"{prefix}model.snapshots", "drift_topic": f"{prefix}drift.events"}],
    }


@pytest.mark.parametrize("order, low_latency", [("event_time", False), ("arrival", True)])
def test_only_the_arrival_order_makes_the_model_flow_low_latency(order: str, low_latency: bool) -> None:
    config = parse_config(document("", order))
    assert FLOWS["model"].low_latency(config) is low_latency
    assert not any(FLOWS[name].low_latency(config) for name in ("ingest", "features", "drift"))


def test_low_latency_reads_do_not_wait_and_pause_unless_the_batch_was_full() -> None:
    consumer = FakeConsumer([[FakeMessage(0), FakeMessage(1)], [FakeMessage(2)], []])
    reader = _PartitionReader(consumer, "rides", 0, 0, None, 2, wait_s=0.0,
                              poll_every=timedelta(milliseconds=LOW_LATENCY_POLL_MS))
    assert [m.offset for m in reader.next_batch()] == [0, 1]
    assert reader.next_awake() is None  # a full batch: more may be waiting, read again at once
    for expected in ([2], []):
        before = datetime.now().astimezone()
        assert [m.offset for m in reader.next_batch()] == expected
        awake = reader.next_awake()
        assert awake is not None and awake.tzinfo is not None and awake > before
    assert consumer.timeouts == [0.0, 0.0, 0.0] and reader.snapshot() == 3


def test_throughput_reads_wait_for_a_batch_and_leave_polling_to_bytewax() -> None:
    consumer = FakeConsumer([[]])
    reader = _PartitionReader(consumer, "rides", 0, 0, None, 100)
    assert reader.next_batch() == [] and reader.next_awake() is None
    assert consumer.timeouts == [0.05]


def test_partitions_sharing_a_consumer_each_get_their_own_messages() -> None:
    """Low-latency reads: one consumer for a worker's partitions; a read takes what was fetched
    for every partition and keeps the others' messages for their reads."""
    consumer = FakeConsumer([[FakeMessage(0, "rides", 0), FakeMessage(0, "rides", 1), FakeMessage(1, "rides", 0),
                              FakeMessage(2, "rides", 0)],
                             [], [], [FakeMessage(-1, "", -1, error="all brokers down")]])
    closed = []
    shared = _SharedConsumer(consumer, lambda: closed.append(True))
    first, second = shared.add("rides", 0, 0), shared.add("rides", 1, 0)
    assert [m.offset() for m in first.consume(2, 0.0)] == [0, 1]  # at most the batch size
    assert [(m.partition(), m.offset()) for m in second.consume(2, 0.0)] == [(1, 0)]
    assert [m.offset() for m in first.consume(2, 0.0)] == [2]
    assert [m.error() for m in second.consume(2, 0.0)] == ["all brokers down"]  # for the reader to raise
    first.close()
    assert not closed
    second.close()
    assert closed == [True] and consumer.closed


def test_client_properties_per_mode_and_the_users_settings_win() -> None:
    fast, default = KafkaInput("k:9092", ["rides"], low_latency=True).client_config, KafkaInput("k:9092", ["rides"]).client_config
    assert fast.pop("fetch.wait.max.ms") == str(LOW_LATENCY_FETCH_WAIT_MS) and default.pop("fetch.wait.max.ms") == "50"
    assert fast == default
    assert KafkaOutput("k:9092").client_config["linger.ms"] == 20
    assert KafkaOutput("k:9092", low_latency=True).client_config["linger.ms"] == LOW_LATENCY_LINGER_MS
    mine = KafkaSettings((("linger.ms", "7"),))
    assert KafkaOutput("k:9092", mine, low_latency=True).client_config["linger.ms"] == "7"


@pytest.mark.integration
def test_arrival_order_predictions_do_not_depend_on_the_read_mode(broker: RunningBroker, topic_prefix: str) -> None:
    """Low-latency reads cut the stream into many small batches, throughput reads into a few
    large ones: the arrival order, which depends only on each partition's sequence, is the same."""
    runs = []
    for mode, low_latency in (("small", True), ("large", False)):
        config = parse_config(document(f"{topic_prefix}-{mode}-", "arrival"))
        create_topics(broker.bootstrap, list(topics_for(config, ["model"])), partitions=2)
        produce_to_kafka(StreamSpec(events=3000, seed=9, label_delay_ms=5_000), broker.bootstrap,
                         config.source.topic, config.models[0].labels.topic)
        counters = FlowCounters()
        source = KafkaInput(broker.bootstrap, FLOWS["model"].input_topics(config), stop_at_end=True,
                            batch_size=20000 if not low_latency else 100, low_latency=low_latency)
        run_flow(build_model_flow(config, source, KafkaOutput(broker.bootstrap, low_latency=low_latency), counters))
        assert counters.get("model.predictions") > 0 and counters.get("model.labels_used") > 0
        runs.append({"predictions": strip(consume_json(broker.bootstrap, config.models[0].topic)),
                     "metrics": strip(consume_json(broker.bootstrap, config.models[0].metrics_topic)),
                     "labels_used": counters.get("model.labels_used")})
    assert runs[0] == runs[1]
