"""Sample sets in the features flow on a real broker: the Kafka run (3 partitions, 1 and 2
workers) writes the same samples as a replay, every message matches deploy/schemas/sample.json,
and the samples account for every event that is not late."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.counters import FlowCounters
from dataflows.flows.features import build_features_flow
from dataflows.flows.registry import FLOWS
from dataflows.kafka.io import KafkaInput, KafkaOutput
from dataflows.cli.replay import replay
from dataflows.flows.runner import Execution, run_flow
from features.config import Config, parse_config
from features.samples.messages import merge_samples
from tests.flow_fixtures import event_lines, make_config, strip, to_toml
from tests.kafka_helpers import consume_json, produce
from tests.schemas import schema_validator

pytestmark = pytest.mark.integration


def sampled_config(prefix: str, suffix: str = "") -> dict[str, Any]:
    document = make_config(prefix, suffix)
    document["feature_sets"] = document["feature_sets"][:1]
    document["sample_sets"] = [
        {"name": "u", "topic": f"{prefix}samples.u{suffix}", "window": {"type": "tumbling", "length": "10s"},
         "k": 5},
        {"name": "w", "topic": f"{prefix}samples.w{suffix}", "window": {"type": "hopping", "length": "30s",
                                                                         "step": "10s"},
         "k": 4, "kind": "weighted", "weight_field": "price", "fields": ["area", "price"]},
        {"name": "r", "topic": f"{prefix}samples.r{suffix}", "window": {"type": "tumbling", "length": "20s"},
         "k": 3, "kind": "weighted", "half_life": "5s", "seed": 11},
        {"name": "p", "topic": f"{prefix}samples.p{suffix}", "window": {"type": "tumbling", "length": "10s"},
         "k": 2, "kind": "stratified", "stratum_field": "payment", "max_strata": 2,
         "where": {"field": "area", "in": [f"area-{i:02d}" for i in range(8)]}},
    ]
    return document


def spread(lines: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The events keyed so that every partition gets some: windows then close as the stream
    watermark passes them (a partition without events holds it back until the end)."""
    return [(f"k{i}".encode(), value) for i, (_key, value) in enumerate(lines)]


def run_kafka(config: Config, bootstrap: str, workers: int) -> FlowCounters:
    counters = FlowCounters()
    source = KafkaInput(bootstrap, [config.source.topic], stop_at_end=True)
    run_flow(build_features_flow(config, source, KafkaOutput(bootstrap), counters), Execution(workers=workers))
    return counters


def test_kafka_run_equals_replay_and_messages_match_the_schema(broker: RunningBroker, topic_prefix: str,
                                                               tmp_path: Path) -> None:
    config = parse_config(sampled_config(topic_prefix))
    config2 = parse_config(sampled_config(topic_prefix, suffix="-w2"))
    topics = set(FLOWS["features"].output_topics(config)) | set(FLOWS["features"].output_topics(config2))
    assert {s.topic for s in config.sample_sets} <= topics
    create_topics(broker.bootstrap, [config.source.topic, *sorted(topics)], partitions=3)
    lines = spread(event_lines(4000, seed=5))
    produce(broker.bootstrap, config.source.topic, lines)

    counters = run_kafka(config, broker.bootstrap, workers=1)
    input_path = tmp_path / "events.jsonl"
    input_path.write_bytes(b"".join(value + b"\n" for _, value in lines))
    config_path = tmp_path / "config.toml"
    config_path.write_text(to_toml(sampled_config(topic_prefix)))
    replayed = replay(config_path, input_path, tmp_path / "out", quiet=True)
    assert replayed.get("samples_out") == counters.get("samples_out") > 0

    counters2 = run_kafka(config2, broker.bootstrap, workers=2)
    assert counters2.get("samples_out") == counters.get("samples_out")
    check = schema_validator("sample.json")
    for s, s2 in zip(config.sample_sets, config2.sample_sets):
        kafka = consume_json(broker.bootstrap, s.topic)
        for message in kafka:
            check.validate(message)
        files = [orjson.loads(line) for line in (tmp_path / "out" / f"{s.topic}.jsonl").read_bytes().splitlines()]
        assert kafka and strip(kafka) == strip(files), s.name
        assert strip(consume_json(broker.bootstrap, s2.topic)) == strip(kafka), s.name

    # The uniform tumbling set saw every event not behind its partition's watermark, each
    # window once (events behind an entity's watermark only are late for features, not here).
    uniform = consume_json(broker.bootstrap, config.sample_sets[0].topic)
    assert len({m["id"] for m in uniform}) == len(uniform)
    assert sum(m["seen"] for m in uniform) + counters.get("samples_late") == counters.get("valid")
    assert 0 < counters.get("samples_late") <= counters.get("late")
    # The stratified set: two strata kept per window, the third in a counted overflow.
    strata = consume_json(broker.bootstrap, config.sample_sets[3].topic)
    assert {m["stratum"] for m in strata if not m["overflow"]} <= {"card", "cash", "crypto"}
    assert any(m["overflow"] for m in strata)
    # Minute-scale merges of the 10 s windows are exact samples of the longer span.
    first = min(m["window"]["start_ms"] for m in uniform)
    (merged,) = merge_samples([m for m in uniform if m["window"]["start_ms"] < first + 60_000],
                              first, first + 60_000)
    check.validate(merged)
    assert merged["seen"] == sum(m["seen"] for m in uniform if m["window"]["start_ms"] < first + 60_000)

    # `driftline samples merge` over the topic gives the merge of the replay's file.
    from dataflows.cli.commands import main

    topic = config.sample_sets[0].topic
    out = tmp_path / "merged.jsonl"
    assert main(["samples", "merge", "--input", topic, "--bootstrap", broker.bootstrap, "--set", "u",
                 "--from", str(first), "--to", str(first + 60_000), "--output", str(out)]) == 0
    from_topic = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert main(["samples", "merge", "--input", str(tmp_path / "out"), "--set", "u", "--from", str(first),
                 "--to", str(first + 60_000), "--output", str(out)]) == 0
    from_files = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert strip(from_topic) == strip(from_files) == strip([merged])


def test_a_restart_from_the_recovery_snapshot_writes_the_same_samples(broker: RunningBroker, topic_prefix: str,
                                                                      tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    clean, crashed = sampled_config(topic_prefix, "-clean"), sampled_config(topic_prefix, "-stop")
    topics = {clean["source"]["topic"]}
    paths = []
    for document in (clean, crashed):
        topics |= set(FLOWS["features"].output_topics(parse_config(document)))
        paths.append(tmp_path / f"{len(paths)}.toml")
        paths[-1].write_text(to_toml(document))
    create_topics(broker.bootstrap, sorted(topics), partitions=3)
    produce(broker.bootstrap, clean["source"]["topic"], spread(event_lines(20_000, seed=31)))
    log = tmp_path / "run.log"

    def start(path: Path, stop_at_end: bool) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "dataflows.cli", "run", "features", "--config", str(path), "--bootstrap",
               broker.bootstrap, "--recovery-dir", str(tmp_path / f"recovery-{path.stem}"),
               "--snapshot-interval", "300ms", *(["--stop-at-end"] if stop_at_end else [])]
        return subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)

    assert start(paths[0], True).wait(timeout=300) == 0, log.read_text()[-3000:]
    proc = start(paths[1], False)  # stopped by SIGTERM once some samples are out, then resumed
    deadline = time.monotonic() + 120
    while not consume_json(broker.bootstrap, crashed["sample_sets"][0]["topic"]):
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert start(paths[1], True).wait(timeout=300) == 0, log.read_text()[-3000:]
    for one, two in zip(clean["sample_sets"], crashed["sample_sets"]):
        expected = strip(consume_json(broker.bootstrap, one["topic"]))
        assert expected and strip(consume_json(broker.bootstrap, two["topic"])) == expected, one["name"]
