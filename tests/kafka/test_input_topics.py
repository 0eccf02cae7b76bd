"""A flow never creates its input topic: a typo fails at start naming the key and the closest topics;
an unreachable broker ends the run with the message only (the traceback with --log-level debug)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from dataflows.kafka.broker import RunningBroker, create_topics, free_port
from dataflows.kafka.topic_check import KafkaUnreachable, closest_first, existing_topics
from features.kafka_settings import KafkaSettings
from tests.flow_fixtures import make_config, to_toml


@pytest.mark.parametrize("listening", [False, True], ids=["refused", "silent"])
def test_an_unreachable_broker_is_reported_at_once_when_refused_else_after_the_timeout(listening: bool) -> None:
    """Nothing listening: no wait. A listener that never answers Kafka: the client's timeout."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        if listening:
            server.listen()
        port = server.getsockname()[1]
        timeout_s = 2.0 if listening else 120.0  # refused: far from the timeout, however busy the machine
        started = time.monotonic()
        with pytest.raises(KafkaUnreachable, match=f"cannot reach Kafka at 127.0.0.1:{port}"):
            existing_topics(f"127.0.0.1:{port}", KafkaSettings(), timeout_s=timeout_s)
        waited = time.monotonic() - started
    assert waited >= timeout_s if listening else waited < timeout_s / 2


def test_closest_first() -> None:
    assert closest_first("ridse", ["alpha", "rides.dlq", "rides", "zeta"])[:2] == ["rides", "rides.dlq"]
    assert closest_first("x", []) == []


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dataflows.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.integration
def test_a_missing_input_topic_stops_the_run_and_is_not_created(broker: RunningBroker, topic_prefix: str,
                                                                 tmp_path: Path) -> None:
    document = make_config(topic_prefix)
    real = document["source"]["topic"]
    create_topics(broker.bootstrap, [real], partitions=1)
    typo = real + "x"
    document["source"]["topic"] = typo
    path = tmp_path / "config.toml"
    path.write_text(to_toml(document))
    done = _run(["run", "features", "--config", str(path), "--bootstrap", broker.bootstrap, "--stop-at-end",
                 "--log-format", "text"])
    assert done.returncode == 2, done.stderr[-2000:]
    assert "source.topic" in done.stderr and repr(typo) in done.stderr
    assert f"existing topics, closest first: {real}" in done.stderr and "driftline topics" in done.stderr
    assert "Traceback" not in done.stderr and "finished" not in done.stderr
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert typo not in admin.list_topics(timeout=10).topics


@pytest.mark.integration
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_an_unreachable_broker_prints_the_message_and_no_traceback(tmp_path: Path, log_format: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(to_toml(make_config("gone-")))
    args = ["run", "features", "--config", str(path), "--bootstrap", f"127.0.0.1:{free_port()}", "--stop-at-end",
            "--log-format", log_format]
    done = _run(args)
    assert done.returncode == 1
    assert "cannot reach Kafka" in done.stderr and "Traceback" not in done.stderr, done.stderr
    debug = _run([*args, "--log-level", "debug"])
    assert debug.returncode == 1 and "Traceback" in debug.stderr
