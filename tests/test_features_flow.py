"""The features flow on a real broker: Kafka run == replay, 1 worker == 2 workers, late events kept."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from dataflows.broker import RunningBroker, create_topics
from dataflows.counters import FlowCounters
from dataflows.features_flow import build_features_flow
from dataflows.kafka_io import KafkaInput, KafkaOutput
from dataflows.replay import replay
from dataflows.runner import Execution, run_flow
from features.config import Config, parse_config
from tests.kafka_helpers import consume_json, produce

pytestmark = pytest.mark.integration

START = 1_767_225_600_000


def make_config(prefix: str, suffix: str = "") -> dict:
    return {
        "source": {"topic": f"{prefix}rides", "lateness": "5s", "partitions": 3},
        "schema": {
            "entity": "area", "event_time": "ts", "time_format": "epoch_ms",
            "fields": {"area": "string", "price": "float", "payment": {"type": "category",
                                                                       "values": ["card", "cash"]}},
        },
        "feature_sets": [
            {"name": "t", "topic": f"{prefix}features.t{suffix}", "window": {"type": "tumbling", "length": "10s"},
             "features": [{"name": "n", "agg": "count"}, {"name": "avg", "agg": "mean", "field": "price"},
                          {"name": "p50", "agg": "median", "field": "price"}]},
            {"name": "h", "topic": f"{prefix}features.h{suffix}",
             "window": {"type": "hopping", "length": "30s", "step": "10s"},
             "features": [{"name": "n", "agg": "count"}, {"name": "hi", "agg": "max", "field": "price"}]},
            {"name": "s", "topic": f"{prefix}features.s{suffix}", "window": {"type": "session", "gap": "3s"},
             "features": [{"name": "n", "agg": "count"}, {"name": "cash", "agg": "share", "field": "payment",
                                                          "value": "cash"}]},
            {"name": "l", "topic": f"{prefix}features.l{suffix}",
             "window": {"type": "last_n", "n": 5, "every": "10s"},
             "features": [{"name": "last", "agg": "last", "field": "price"}]},
        ],
    }


def event_lines(count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs: ~20 events/s of event time over 12 areas, 1% far behind, a few malformed."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        area = f"area-{rng.randrange(12):02d}"
        t = START + i * 50 + rng.randint(-300, 300)
        if i % 100 == 99:
            t -= rng.randint(40_000, 90_000)
        event = {"area": area, "ts": t, "price": round(rng.uniform(3, 60), 2),
                 "payment": rng.choice(["card", "cash", "crypto"])}
        value = orjson.dumps(event if i % 250 != 3 else {**event, "ts": "soon"})
        lines.append((area.encode(), value))
    return lines


def strip(messages: list[dict]) -> set[bytes]:
    """Messages without the fields that legitimately differ between runs (emission times)."""
    out = set()
    for m in messages:
        m = {k: v for k, v in m.items() if k not in ("emitted_at", "rejected_at")}
        out.add(orjson.dumps(m, option=orjson.OPT_SORT_KEYS))
    return out


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
    config_path.write_text(_toml(make_config(topic_prefix)))
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


def _toml(document: dict) -> str:
    """Just enough TOML writing for the config dicts above."""

    def value(v: object) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, str):
            return orjson.dumps(v).decode()
        return str(v).lower() if isinstance(v, bool) else str(v)

    lines = []
    for section in ("source", "schema"):
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in document[section].items()]
    for fs in document["feature_sets"]:
        lines.append("[[feature_sets]]")
        lines += [f"{k} = {value(v)}" for k, v in fs.items()]
    return "\n".join(lines) + "\n"
