"""Kafka client properties (security) reach every client driftline makes; secrets never show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.kafka.clients import command_settings, new_client
from dataflows.kafka.io import KafkaInput, KafkaOutput, list_partitions
from dataflows.synth.produce import kafka_producer_config, produce_to_kafka
from dataflows.synth.generator import StreamSpec
from dataflows.kafka.tail import tail, tail_consumer_config
from features.config import parse_config
from features.config_values import ConfigError
from features.kafka_settings import KafkaSettings, parse_kafka_settings
from tests.flow_fixtures import event_lines, make_config, to_toml
from tests.kafka_helpers import consume_json, produce

SECRET = "hunter2-ops-secret"
SASL = parse_kafka_settings({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "svc"},
                            environ={"DRIFTLINE_KAFKA_SASL_PASSWORD": SECRET, "DRIFTLINE_KAFKA_CLIENT_ID": "ops"})
REFUSED = KafkaSettings((("security.protocol", "bogus"), ("sasl.password", SECRET)))


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dataflows.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CI": "true", **env})


def test_every_client_config_carries_the_settings() -> None:
    configs = {
        "consumer": KafkaInput("k:9092", ["rides"], settings=SASL).client_config,
        "sink producer": KafkaOutput("k:9092", SASL).client_config,
        "bulk producer": kafka_producer_config("k:9092", SASL),
        "tail consumer": tail_consumer_config("k:9092", SASL),
    }
    for name, config in configs.items():
        assert {k: config[k] for k in SASL.as_dict()} == SASL.as_dict(), name
        assert config["bootstrap.servers"] == "k:9092", name
    # driftline's own per-client properties stay: partitions are assigned, offsets never committed.
    assert configs["consumer"]["enable.auto.commit"] == configs["tail consumer"]["enable.auto.commit"] == "false"
    assert configs["sink producer"]["enable.idempotence"] == "true"


def test_admin_consumer_and_producer_clients_are_built_with_the_settings() -> None:
    """A property librdkafka refuses stops each kind of client at construction: proof it got there."""
    attempts = {
        "list_partitions": lambda: list_partitions("127.0.0.1:1", "rides", settings=REFUSED),
        "create_topics": lambda: create_topics("127.0.0.1:1", ["rides"], settings=REFUSED),
        "consumer": lambda: KafkaInput("127.0.0.1:1", ["rides"], settings=REFUSED).build_part("in", "0-rides", 5),
        "sink producer": lambda: KafkaOutput("127.0.0.1:1", REFUSED).build("out", 0, 1),
        "bulk producer": lambda: produce_to_kafka(StreamSpec(events=1), "127.0.0.1:1", "rides", None,
                                                  settings=REFUSED),
        "tail": lambda: tail("127.0.0.1:1", "rides", settings=REFUSED),
    }
    for name, attempt in attempts.items():
        with pytest.raises(ConfigError, match="security.protocol") as raised:
            attempt()
        assert SECRET not in str(raised.value), name


def test_client_errors_are_redacted() -> None:
    def refuse(config: dict) -> None:
        raise ValueError(f"cannot authenticate with {config['sasl.password']}")

    with pytest.raises(ConfigError) as raised:
        new_client(refuse, SASL.as_dict(), SASL)
    assert SECRET not in str(raised.value) and "<redacted>" in str(raised.value)
    assert SECRET not in repr(SASL) and SECRET not in str(SASL.shown())


def test_commands_without_a_config_read_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_KAFKA_CLIENT_ID", "from-env")
    assert command_settings(None).as_dict() == {"client.id": "from-env"}
    path = tmp_path / "c.toml"
    path.write_text(to_toml(make_config("x")) + '[kafka]\n"socket.keepalive.enable" = true\n')
    assert command_settings(path).as_dict() == {"socket.keepalive.enable": "true", "client.id": "from-env"}


@pytest.mark.integration
def test_a_refused_property_stops_each_command_without_showing_secrets(broker: RunningBroker, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(to_toml(make_config("refused-")))
    env = {"DRIFTLINE_KAFKA_SECURITY_PROTOCOL": "bogus", "DRIFTLINE_KAFKA_SASL_PASSWORD": SECRET}
    commands = {
        "run": ["run", "features", "--config", str(path), "--bootstrap", broker.bootstrap, "--stop-at-end"],
        "tail": ["tail", "refused-rides", "--bootstrap", broker.bootstrap],
        "produce": ["produce", "--bootstrap", broker.bootstrap, "--topic", "refused-rides", "--events", "10"],
    }
    for name, args in commands.items():
        done = _cli(*args, env=env)
        assert done.returncode == 2, (name, done.stderr[-2000:])
        assert "security.protocol" in done.stderr, name
        assert SECRET not in done.stdout + done.stderr, name


@pytest.mark.integration
def test_a_flow_runs_with_client_properties_from_the_environment_and_the_file(
        broker: RunningBroker, topic_prefix: str, tmp_path: Path) -> None:
    document = make_config(topic_prefix)
    config = parse_config(document)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(document) + '[kafka]\n"socket.keepalive.enable" = true\n')
    topics = [config.source.topic, config.source.dead_letter_topic, config.source.late_topic,
              *(fs.topic for fs in config.feature_sets)]
    create_topics(broker.bootstrap, topics, partitions=3)
    produce(broker.bootstrap, config.source.topic, event_lines(3_000, seed=41))
    env = {"DRIFTLINE_KAFKA_CLIENT_ID": "driftline-ops-test", "DRIFTLINE_KAFKA_SOCKET_NAGLE_DISABLE": "true"}

    run = _cli("run", "features", "--config", str(path), "--bootstrap", broker.bootstrap, "--stop-at-end", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    windows = {m["id"]: m for m in consume_json(broker.bootstrap, config.feature_sets[0].topic)}
    late = consume_json(broker.bootstrap, config.source.late_topic)
    dead = consume_json(broker.bootstrap, config.source.dead_letter_topic)
    assert sum(m["event_count"] for m in windows.values()) + len(late) + len(dead) == 3_000

    shown = _cli("tail", config.feature_sets[0].topic, "--bootstrap", broker.bootstrap, "--max", "2", "--compact",
                 "--config", str(path), env=env)
    assert shown.returncode == 0, shown.stderr[-2000:]
    lines = shown.stdout.splitlines()
    assert len(lines) == 2 and all(orjson.loads(line.split(" ", 2)[2])["id"] in windows for line in lines)

    written = _cli("produce", "--bootstrap", broker.bootstrap, "--topic", f"{topic_prefix}gen", "--events", "200",
                   env=env)
    assert written.returncode == 0, written.stderr[-2000:]
    assert len(consume_json(broker.bootstrap, f"{topic_prefix}gen")) == 200
