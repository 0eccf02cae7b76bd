"""A two-process cluster where each process keeps its own recovery directory (as each pod of a
StatefulSet keeps its own volume claim): kill -9 both mid-run, restart, and the output equals
a one-process run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from dataflows.kafka.broker import RunningBroker, create_topics, free_port
from dataflows.kafka.io import list_partitions
from features.config import parse_config
from tests.flow_fixtures import event_lines, make_config, strip, to_toml
from tests.kafka_helpers import consume_json, produce

pytestmark = pytest.mark.integration

EVENTS = 150_000


def _written(bootstrap: str, topic: str) -> int:
    """Messages in `topic` so far (the sum of its partitions' end offsets)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "driftline-tests"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in list_partitions(bootstrap, topic))
    finally:
        consumer.close()


def _outputs(bootstrap: str, config) -> dict[str, set[bytes]]:
    topics = {"dlq": config.source.dead_letter_topic, "late": config.source.late_topic,
              **{fs.name: fs.topic for fs in config.feature_sets}}
    return {name: strip(consume_json(bootstrap, topic)) for name, topic in topics.items()}


def test_two_processes_with_their_own_recovery_dirs_survive_kill_9(broker: RunningBroker, topic_prefix: str,
                                                                   tmp_path: Path) -> None:
    configs = {}
    for suffix in ("-one", "-two"):
        document = make_config(topic_prefix, suffix)
        (tmp_path / f"config{suffix}.toml").write_text(to_toml(document))
        configs[suffix] = parse_config(document)
    topics = {configs["-one"].source.topic}
    for config in configs.values():
        topics |= {config.source.dead_letter_topic, config.source.late_topic, *(fs.topic for fs in config.feature_sets)}
    create_topics(broker.bootstrap, sorted(topics), partitions=3)
    produce(broker.bootstrap, configs["-one"].source.topic, event_lines(EVENTS, seed=37))
    log = tmp_path / "runs.log"
    base = [sys.executable, "-m", "dataflows.cli", "run", "features", "--bootstrap", broker.bootstrap,
            "--stop-at-end", "--snapshot-interval", "500ms"]
    single = subprocess.run([*base, "--config", str(tmp_path / "config-one.toml")], stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, timeout=300)
    assert single.returncode == 0, log.read_text()[-3000:]

    def start_cluster() -> list[subprocess.Popen]:
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(2))
        return [subprocess.Popen([*base, "--config", str(tmp_path / "config-two.toml"), "-i", str(i), "-a", addresses,
                                  "--recovery-dir", str(tmp_path / f"recovery-{i}")],
                                 stdout=log.open("ab"), stderr=subprocess.STDOUT) for i in range(2)]

    procs = start_cluster()
    first_topic = configs["-two"].feature_sets[0].topic
    deadline = time.monotonic() + 120
    while _written(broker.bootstrap, first_topic) == 0:  # working, with snapshots being taken
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), log.read_text()[-3000:]
        time.sleep(0.2)
    time.sleep(1.0)
    assert all(p.poll() is None for p in procs), "the cluster finished before the kill; use more events"
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    assert [p.wait(timeout=60) for p in procs] == [-signal.SIGKILL] * 2

    procs = start_cluster()
    assert [p.wait(timeout=300) for p in procs] == [0, 0], log.read_text()[-3000:]
    expected, got = _outputs(broker.bootstrap, configs["-one"]), _outputs(broker.bootstrap, configs["-two"])
    assert expected["t"] and expected["late"] and expected["dlq"]
    for name in expected:
        assert got[name] == expected[name], name  # after dropping repeats by id
