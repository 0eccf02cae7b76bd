"""The features flow on a real broker: Kafka run == replay, 1 worker == 2 workers, late events kept."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.counters import FlowCounters
from dataflows.flows.features import build_features_flow
from dataflows.kafka.io import KafkaInput, KafkaOutput
from dataflows.cli.replay import replay
from dataflows.flows.runner import Execution, run_flow
from features.config import Config, parse_config
from tests.flow_fixtures import event_lines, make_config, strip, to_toml
from tests.kafka_helpers import consume_json, produce

pytestmark = pytest.mark.integration

def run_kafka(config: Config, bootstrap: str, workers: int) -> FlowCounters:
    counters = FlowCounters()
    source = KafkaInput(bootstrap, [config.source.topic], stop_at_end=True)
    run_flow(build_features_flow(config, source, KafkaOutput(bootstrap), counters), Execution(workers=workers))
    return counters


def test_kafka_run_equals_replay_and_two_workers_equal_one(broker: RunningBroker, topic_prefix: str,
                                                          tmp_path: Path) -> None:
    config = parse_config(make_config(topic_prefix))
    config2 = parse_config(make_config(topic_prefix, suffix="-w2"))
    lines = event_lines(6000, seed=3)
    topics = [config.source.topic, config.source.dead_letter_topic, config.source.late_topic,
              config2.source.dead_letter_topic, config2.source.late_topic,
              *(fs.topic for fs in config.feature_sets), *(fs.topic for fs in config2.feature_sets)]
    create_topics(broker.bootstrap, topics, partitions=3)
    produce(broker.bootstrap, config.source.topic, lines)

    counters = run_kafka(config, broker.bootstrap, workers=1)
    assert counters.get("events_in") == 6000
    assert counters.get("rejected.bad_timestamp") == 24
    assert counters.get("unknown_category.payment") > 0

    input_path = tmp_path / "events.jsonl"
    input_path.write_bytes(b"".join(value + b"\n" for _, value in lines))
    config_path = tmp_path / "config.toml"
    config_path.write_text(to_toml(make_config(topic_prefix)))
    replayed = replay(config_path, input_path, tmp_path / "out", quiet=True)
    assert replayed.get("late") == counters.get("late") == 60

    for fs in config.feature_sets:
        kafka = strip(consume_json(broker.bootstrap, fs.topic))
        files = strip([orjson.loads(line) for line in (tmp_path / "out" / f"{fs.topic}.jsonl").read_bytes().splitlines()])
        assert kafka and kafka == files, fs.name
    late_ids = {m["id"].split("/")[-1] for m in consume_json(broker.bootstrap, config.source.late_topic)}
    assert len(late_ids) == 60

    counters2 = run_kafka(config2, broker.bootstrap, workers=2)
    assert counters2.get("features_out") == counters.get("features_out")
    for fs, fs2 in zip(config.feature_sets, config2.feature_sets):
        one = strip(consume_json(broker.bootstrap, fs.topic))
        two = strip(consume_json(broker.bootstrap, fs2.topic))
        assert one == two, fs.name

    # Every valid event is in exactly one place: counted in a tumbling window, or late.
    tumbling = consume_json(broker.bootstrap, config.feature_sets[0].topic)
    assert sum(m["event_count"] for m in tumbling) + counters.get("late") == counters.get("valid")
