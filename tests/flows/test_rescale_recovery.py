"""Rescaling from one recovery directory: a features flow stopped mid-run resumes as a cluster
of another size (1 -> 2 processes, 2 -> 1 process with 2 worker threads) from the same shared
directory, and writes exactly a clean run's output (after dropping repeats by id)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from dataflows.flows.runner import resume_epoch
from dataflows.kafka.broker import RunningBroker, create_topics, free_port
from features.config import parse_config
from tests.flow_fixtures import event_lines, make_config, to_toml
from tests.flows.test_cluster_recovery import _outputs, _written
from tests.kafka_helpers import produce

pytestmark = pytest.mark.integration

EVENTS = 120_000


def test_resume_with_more_and_with_fewer_processes(broker: RunningBroker, topic_prefix: str, tmp_path: Path) -> None:
    configs = {}
    for suffix in ("-clean", "-up", "-down"):
        document = make_config(topic_prefix, suffix)
        (tmp_path / f"config{suffix}.toml").write_text(to_toml(document))
        configs[suffix] = parse_config(document)
    topics = {configs["-clean"].source.topic}
    for config in configs.values():
        topics |= {config.source.dead_letter_topic, config.source.late_topic, *(fs.topic for fs in config.feature_sets)}
    create_topics(broker.bootstrap, sorted(topics), partitions=3)
    produce(broker.bootstrap, configs["-clean"].source.topic, event_lines(EVENTS, seed=41))
    log = tmp_path / "runs.log"
    base = [sys.executable, "-m", "dataflows.cli", "run", "features", "--bootstrap", broker.bootstrap,
            "--snapshot-interval", "500ms"]
    clean = subprocess.run([*base, "--stop-at-end", "--config", str(tmp_path / "config-clean.toml")], stdout=log.open("ab"),
                           stderr=subprocess.STDOUT, timeout=300)
    assert clean.returncode == 0, log.read_text()[-3000:]
    expected = _outputs(broker.bootstrap, configs["-clean"])
    assert expected["t"] and expected["late"] and expected["dlq"]

    def start(suffix: str, processes: int, workers: int, recovery: Path, *more: str) -> list[subprocess.Popen]:
        cluster: list[str] = []
        if processes > 1:
            cluster = ["-a", ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))]
        return [subprocess.Popen([*base, *more, "--config", str(tmp_path / f"config{suffix}.toml"), "-w", str(workers),
                                  "--recovery-dir", str(recovery), *(["-i", str(i)] if cluster else []), *cluster],
                                 stdout=log.open("ab"), stderr=subprocess.STDOUT) for i in range(processes)]

    for suffix, before, after in (("-up", (1, 1), (2, 1)), ("-down", (2, 1), (1, 2))):
        recovery = tmp_path / f"recovery{suffix}"  # one directory every process reaches
        # No --stop-at-end: the run waits for more events until SIGTERM, however fast it reads (a
        # run that finished its input as the signal came was killed by it in its teardown).
        procs = start(suffix, *before, recovery)
        first_topic = configs[suffix].feature_sets[0].topic
        deadline = time.monotonic() + 180
        # Working, and a snapshot committed (batches are large: the first epochs can take a while).
        while _written(broker.bootstrap, first_topic) == 0 or not resume_epoch(recovery):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), log.read_text()[-3000:]
            time.sleep(0.1)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        assert [p.wait(timeout=120) for p in procs] == [0] * len(procs), log.read_text()[-3000:]
        starts = log.read_text().count('"run_start"')
        procs = start(suffix, *after, recovery, "--stop-at-end")
        assert [p.wait(timeout=300) for p in procs] == [0] * len(procs), log.read_text()[-3000:]
        resumed = [orjson.loads(line) for line in log.read_text().splitlines() if '"run_start"' in line][starts:]
        assert len(resumed) == len(procs) and all(r["resumed_from_epoch"] is not None for r in resumed), resumed
        got = _outputs(broker.bootstrap, configs[suffix])
        for name in expected:
            assert got[name] == expected[name], (suffix, name)
