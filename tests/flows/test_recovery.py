"""Crash recovery on the real broker: kill -9 mid-run, restart from the recovery directory, lose nothing.

Also: SIGTERM stops a flow gracefully (exit 0) and the restart resumes where it stopped.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from dataflows.kafka.broker import RunningBroker, create_topics
from features.config import parse_config
from tests.flow_fixtures import event_lines, make_config, strip, to_toml
from tests.kafka_helpers import consume_json, produce

pytestmark = pytest.mark.integration

EVENTS = 200_000


def _start(config_path: Path, bootstrap: str, recovery: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dataflows.cli", "run", "features", "--config", str(config_path),
           "--bootstrap", bootstrap, "--stop-at-end", "--recovery-dir", str(recovery), "--snapshot-interval", "500ms"]
    return subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ, "CI": "true"})


def _write_config(tmp_path: Path, prefix: str, suffix: str) -> tuple[Path, object]:
    document = make_config(prefix, suffix)
    path = tmp_path / f"config{suffix}.toml"
    path.write_text(to_toml(document))
    return path, parse_config(document)


def _start_until_outputs(config_path: Path, config, bootstrap: str, recovery: Path, log: Path) -> subprocess.Popen:
    """The flow without --stop-at-end (SIGTERM is how it stops), once it has written features."""
    cmd = [sys.executable, "-m", "dataflows.cli", "run", "features", "--config", str(config_path),
           "--bootstrap", bootstrap, "--recovery-dir", str(recovery), "--snapshot-interval", "500ms"]
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not consume_json(bootstrap, config.feature_sets[0].topic):
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    return proc


def _events_accounted(bootstrap: str, config) -> int:
    """Events counted by the first set's distinct windows, plus the late and the dead-lettered."""
    unique = {m["id"]: m for m in consume_json(bootstrap, config.feature_sets[0].topic)}
    late = {m["id"] for m in consume_json(bootstrap, config.source.late_topic)}
    dlq = {m["id"] for m in consume_json(bootstrap, config.source.dead_letter_topic)}
    return sum(m["event_count"] for m in unique.values()) + len(late) + len(dlq)


def _outputs(bootstrap: str, config) -> dict[str, set[bytes]]:
    topics = {"dlq": config.source.dead_letter_topic, "late": config.source.late_topic,
              **{fs.name: fs.topic for fs in config.feature_sets}}
    return {name: strip(consume_json(bootstrap, topic)) for name, topic in topics.items()}


def test_kill_9_three_times_then_resume_equals_an_uninterrupted_run(broker: RunningBroker, topic_prefix: str,
                                                                      tmp_path: Path) -> None:
    clean_path, clean = _write_config(tmp_path, topic_prefix, "-clean")
    crash_path, crashed = _write_config(tmp_path, topic_prefix, "-crash")
    topics = {clean.source.topic}
    for config in (clean, crashed):
        topics |= {config.source.dead_letter_topic, config.source.late_topic, *(fs.topic for fs in config.feature_sets)}
    create_topics(broker.bootstrap, sorted(topics), partitions=3)
    produce(broker.bootstrap, clean.source.topic, event_lines(EVENTS, seed=17))
    log = tmp_path / "runs.log"

    started = time.monotonic()
    assert _start(clean_path, broker.bootstrap, tmp_path / "recovery-clean", log).wait(timeout=600) == 0
    uninterrupted_s = time.monotonic() - started

    rng = random.Random(5)
    recovery = tmp_path / "recovery-crash"
    for kill in range(3):
        proc = _start(crash_path, broker.bootstrap, recovery, log)
        time.sleep(rng.uniform(0.25, 0.6) * uninterrupted_s / 2)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert _start(crash_path, broker.bootstrap, recovery, log).wait(timeout=600) == 0, log.read_text()[-3000:]

    expected, got = _outputs(broker.bootstrap, clean), _outputs(broker.bootstrap, crashed)
    assert expected["t"] and expected["late"] and expected["dlq"]
    for name in expected:
        assert got[name] == expected[name], name  # after dropping repeats by id (a set of whole messages)

    # Every event is accounted for: in one tumbling window, late, or dead-lettered.
    windows = [orjson.loads(m) for m in got["t"]]
    assert sum(m["event_count"] for m in windows) + len(got["late"]) + len(got["dlq"]) == EVENTS


def test_sigterm_stops_gracefully_and_the_restart_finishes_the_work(broker: RunningBroker, topic_prefix: str,
                                                                     tmp_path: Path) -> None:
    path, config = _write_config(tmp_path, topic_prefix, "")
    create_topics(broker.bootstrap, [config.source.topic, config.source.dead_letter_topic, config.source.late_topic,
                                     *(fs.topic for fs in config.feature_sets)], partitions=3)
    produce(broker.bootstrap, config.source.topic, event_lines(20_000, seed=23))
    log = tmp_path / "run.log"
    recovery = tmp_path / "recovery"
    proc = _start_until_outputs(path, config, broker.bootstrap, recovery, log)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert "stopped by SIGTERM" in log.read_text()

    assert _start(path, broker.bootstrap, recovery, log).wait(timeout=300) == 0
    assert _events_accounted(broker.bootstrap, config) == 20_000


def test_two_processes_on_loopback_equal_one(broker: RunningBroker, topic_prefix: str, tmp_path: Path) -> None:
    from dataflows.kafka.broker import free_port

    one_path, one = _write_config(tmp_path, topic_prefix, "-one")
    two_path, two = _write_config(tmp_path, topic_prefix, "-two")
    topics = {one.source.topic}
    for config in (one, two):
        topics |= {config.source.dead_letter_topic, config.source.late_topic, *(fs.topic for fs in config.feature_sets)}
    create_topics(broker.bootstrap, sorted(topics), partitions=3)
    produce(broker.bootstrap, one.source.topic, event_lines(20_000, seed=29))
    log = tmp_path / "runs.log"

    base = [sys.executable, "-m", "dataflows.cli", "run", "features", "--bootstrap", broker.bootstrap, "--stop-at-end"]
    single = subprocess.run([*base, "--config", str(one_path)], stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            timeout=300)
    assert single.returncode == 0, log.read_text()[-3000:]
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(2))
    procs = [subprocess.Popen([*base, "--config", str(two_path), "-i", str(i), "-a", addresses],
                              stdout=log.open("ab"), stderr=subprocess.STDOUT) for i in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0], log.read_text()[-3000:]

    expected, got = _outputs(broker.bootstrap, one), _outputs(broker.bootstrap, two)
    assert expected["t"] and expected["late"]
    for name in expected:
        assert got[name] == expected[name], name


def test_broker_frozen_for_20_s_mid_run_loses_nothing(tmp_path: Path) -> None:
    """SIGSTOP the broker while the flow runs, SIGCONT after 20 s: no crash, nothing lost, it catches up."""
    from dataflows.kafka.broker import local_broker

    with local_broker() as own:  # its own broker: freezing the shared one would stall other tests
        path, config = _write_config(tmp_path, "stall-", "")
        create_topics(own.bootstrap, [config.source.topic, config.source.dead_letter_topic, config.source.late_topic,
                                      *(fs.topic for fs in config.feature_sets)], partitions=3)
        produce(own.bootstrap, config.source.topic, event_lines(100_000, seed=31))
        log = tmp_path / "run.log"
        proc = _start(path, own.bootstrap, tmp_path / "recovery", log)
        # Freeze mid-run, not during start-up (a loaded machine can take seconds to import and
        # list the partitions; a broker frozen then is a start-up failure, tested elsewhere).
        deadline = time.monotonic() + 120
        while b'"run_start"' not in log.read_bytes() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        assert proc.poll() is None, "the flow finished before the broker could be frozen; use more events"
        os.kill(own.pid, signal.SIGSTOP)
        try:
            time.sleep(20)
            assert proc.poll() is None, log.read_text()[-3000:]  # waiting, not crashed
        finally:
            os.kill(own.pid, signal.SIGCONT)
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
        assert _events_accounted(own.bootstrap, config) == 100_000


def test_sigterm_while_the_broker_is_frozen_stops_now_and_the_restart_loses_nothing(tmp_path: Path) -> None:
    """With recovery every batch waits for its acknowledgement; a SIGTERM during that wait
    stops the flow at once (it waited out librdkafka's 5-minute delivery timeout, then
    aborted), and the restart writes the unacknowledged batch again."""
    from dataflows.kafka.broker import local_broker

    with local_broker() as own:
        path, config = _write_config(tmp_path, "term-", "")
        create_topics(own.bootstrap, [config.source.topic, config.source.dead_letter_topic, config.source.late_topic,
                                      *(fs.topic for fs in config.feature_sets)], partitions=3)
        produce(own.bootstrap, config.source.topic, event_lines(100_000, seed=37))
        log, recovery = tmp_path / "run.log", tmp_path / "recovery"
        proc = _start_until_outputs(path, config, own.bootstrap, recovery, log)
        os.kill(own.pid, signal.SIGSTOP)
        try:
            time.sleep(2.0)  # the flow is now waiting for acknowledgements that cannot come
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
        finally:
            os.kill(own.pid, signal.SIGCONT)
        assert "stopped by SIGTERM" in log.read_text()
        assert _start(path, own.bootstrap, recovery, log).wait(timeout=300) == 0, log.read_text()[-3000:]
        assert _events_accounted(own.bootstrap, config) == 100_000
