"""Expectations in the drift flow on a real broker: violations as `expectation` events at the
planted windows, a schema-version change as one event holding that window's alerts back, the
messages valid against the schema, and the Kafka run equal to a replay of the same events."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.counters import FlowCounters
from dataflows.flows.drift import build_drift_flow
from dataflows.kafka.io import KafkaInput, KafkaOutput
from dataflows.cli.replay import replay
from dataflows.flows.runner import run_flow
from features.config import parse_config
from tests.drift_messages import comparable
from tests.flow_fixtures import START, to_toml
from tests.kafka_helpers import consume_json, produce
from tests.schemas import schema_validator
from tests.flows.test_drift_flow import drop_times, monitors_toml

pytestmark = pytest.mark.integration
MIN = 60_000


def expectation_config(prefix: str) -> dict:
    return {
        "source": {"topic": f"{prefix}rides", "lateness": "5s", "partitions": 3},
        "schema": {"entity": "area", "event_time": "ts", "time_format": "epoch_ms", "version": 1,
                   "version_field": "schema_version",
                   "fields": {"area": "string", "ride_id": "string", "price": "float", "distance_km": "float",
                              "payment": {"type": "category", "values": ["card", "cash"]},
                              "dropoff_ts": {"type": "int", "required": False}}},
        "feature_sets": [],
        "monitors": [{"name": "inputs", "numeric": ["price", "distance_km"], "categorical": ["payment"],
                      "window": "1m", "scales": ["1m"], "reference": {"type": "first_windows", "windows": 3},
                      "policy": {"consecutive": 2, "cooldown": "0s"},
                      "events_topic": f"{prefix}drift.events", "summaries_topic": f"{prefix}drift.summaries",
                      "expectations": [
                          {"column": "distance_km", "range": {"min": 0, "max": 100}, "mostly": 0.99},
                          {"column": "payment", "in": ["card", "cash"]},
                          {"column": "ride_id", "regex": "^ride-"},
                          {"compare": "dropoff_ts > ts", "mostly": 0.99}]}],
    }


def rides(seed: int) -> list[dict]:
    """10 minutes of 900 rides/min: dropoff before pickup for a fifth of minute 4, distance in
    metres in minute 6, schema version 2 from minute 8 (ride ids renamed, prices x1.5)."""
    rng = random.Random(seed)
    out = []
    for i in range(9_000):
        t = START + i * MIN // 900 + rng.randint(-100, 100)
        minute = (t - START) // MIN
        ride = {"area": f"area-{rng.randrange(30):02d}", "ts": t, "ride_id": f"ride-{i}",
                "price": round(rng.gauss(20.0, 4.0), 2), "distance_km": round(rng.lognormvariate(1.4, 0.5), 3),
                "payment": rng.choice(["card", "cash"]), "dropoff_ts": t + rng.randint(60_000, 1_800_000)}
        if minute == 4 and rng.random() < 0.2:
            ride["dropoff_ts"] = t - 1_000
        if minute == 6:
            ride["distance_km"] = round(ride["distance_km"] * 1000, 3)
        if minute >= 8:
            ride.update(schema_version=2, ride_id=f"trip-{i}", price=round(ride["price"] * 1.5, 2))
        out.append(ride)
    return out


def test_expectations_in_the_kafka_run_equal_replay(broker: RunningBroker, topic_prefix: str, tmp_path: Path) -> None:
    document = expectation_config(topic_prefix)
    config = parse_config(document)
    monitor = config.monitors[0]
    create_topics(broker.bootstrap, [config.source.topic, config.source.dead_letter_topic, config.source.late_topic,
                                     monitor.events_topic, monitor.summaries_topic], partitions=3)
    events = rides(seed=3)
    lines = [(e["area"].encode(), orjson.dumps(e)) for e in events]
    produce(broker.bootstrap, config.source.topic, lines)
    counters = FlowCounters()
    run_flow(build_drift_flow(config, KafkaInput(broker.bootstrap, [config.source.topic], stop_at_end=True),
                              KafkaOutput(broker.bootstrap), counters))
    assert counters.get("late") == 0
    found = drop_times(consume_json(broker.bootstrap, monitor.events_topic))
    at = {}
    for m in found.values():
        at.setdefault((m["window"]["end_ms"] - START) // MIN, []).append((m["kind"], m["test"], m["column"]))

    # minute 4: a fifth of the rides end before they start (critical: alerts at once)
    compare = found[f"inputs/dropoff_ts>ts/compare/1m/{START + 5 * MIN}"]
    direct = [e for e in events if START + 4 * MIN <= e["ts"] < START + 5 * MIN]
    assert compare["kind"] == "expectation" and compare["severity"] == "critical"
    assert (compare["failing"], compare["checked"]) == (sum(e["dropoff_ts"] <= e["ts"] for e in direct), len(direct))
    assert len(compare["examples"]) == 5 and compare["threshold"] == 0.99
    # minute 6: metres for kilometres, caught by the range (and the drift test)
    assert ("expectation", "range", "distance_km") in at[7]
    range_event = found[f"inputs/distance_km/range/1m/{START + 7 * MIN}"]
    assert range_event["failing"] == range_event["checked"] and "0.0% in [0, 100]" in range_event["detail"]
    # minute 8: version 2 is one schema event; the regex and price alerts wait one window
    assert at[9] == [("schema", "schema_version", "schema_version")]
    assert found[f"inputs/schema_version/schema_version/1m/{START + 9 * MIN}"]["current"]["categories"] == {"2": 1.0}
    assert ("expectation", "regex", "ride_id") in at[10]
    assert any(kind == "covariate" and column == "price" for kind, _, column in at[10])
    assert not any(test == "in" for window in at.values() for _, test, _ in window)  # payments stayed in the set

    validator = schema_validator("drift_event.json")
    for m in found.values():
        validator.validate({**m, "emitted_at": "x"})

    input_path = tmp_path / "events.jsonl"
    input_path.write_bytes(b"".join(value + b"\n" for _, value in lines))
    config_path = tmp_path / "config.toml"
    config_path.write_text(to_toml({k: v for k, v in document.items() if k != "monitors"})
                           + monitors_toml(document["monitors"]))
    replay(config_path, input_path, tmp_path / "out", quiet=True)
    replayed = drop_times([orjson.loads(x) for x in
                           (tmp_path / "out" / f"{monitor.events_topic}.jsonl").read_bytes().splitlines()])
    assert {comparable(m) for m in replayed.values()} == {comparable(m) for m in found.values()}
