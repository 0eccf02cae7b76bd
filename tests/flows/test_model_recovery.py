"""The model flow after kill -9: resumed from the recovery directory, its outputs equal an uninterrupted run's."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.flows.registry import FLOWS, topics_for
from dataflows.synth.generator import StreamSpec
from dataflows.synth.planted_changes import ConceptDrift
from dataflows.synth.produce import produce_to_kafka
from features.config import parse_config
from tests.flow_fixtures import strip
from tests.kafka_helpers import consume_json
from tests.flows.test_model_flow import config_document, to_toml, without_pickles

pytestmark = pytest.mark.integration


def _start(config_path: Path, bootstrap: str, recovery: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dataflows.cli", "run", "model", "--config", str(config_path), "--bootstrap",
           bootstrap, "--stop-at-end", "--recovery-dir", str(recovery), "--snapshot-interval", "300ms"]
    return subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ, "CI": "true"})


def test_kill_9_twice_then_resume_equals_an_uninterrupted_run(broker: RunningBroker, topic_prefix: str,
                                                              tmp_path: Path) -> None:
    documents = {name: config_document(topic_prefix, suffix=f"-{name}") for name in ("clean", "crash")}
    configs = {name: parse_config(doc) for name, doc in documents.items()}
    paths = {}
    for name, document in documents.items():
        paths[name] = tmp_path / f"{name}.toml"
        paths[name].write_text(to_toml(document))
    topics = {t for config in configs.values() for t in topics_for(config, ["model"])}
    create_topics(broker.bootstrap, sorted(topics), partitions=3)
    clean, crash = configs["clean"], configs["crash"]
    spec = StreamSpec(events=15_000, seed=8, label_delay_ms=20_000, changes=(ConceptDrift(start=7000),))
    produce_to_kafka(spec, broker.bootstrap, clean.source.topic, clean.models[0].labels.topic)
    log = tmp_path / "runs.log"

    started = time.monotonic()
    assert _start(paths["clean"], broker.bootstrap, tmp_path / "recovery-clean", log).wait(timeout=300) == 0
    uninterrupted_s = time.monotonic() - started

    rng = random.Random(3)
    recovery = tmp_path / "recovery-crash"
    killed = 0
    for _ in range(2):
        proc = _start(paths["crash"], broker.bootstrap, recovery, log)
        time.sleep(rng.uniform(0.5, 0.8) * uninterrupted_s)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(timeout=60)
    assert killed, "every run finished before its kill: nothing was recovered"
    assert _start(paths["crash"], broker.bootstrap, recovery, log).wait(timeout=300) == 0, log.read_text()[-3000:]

    outputs = FLOWS["model"].output_topics
    compared = 0
    for topic, topic2 in zip(outputs(clean), outputs(crash)):
        if ".dlq" in topic:  # no malformed input here
            continue
        expected = strip(without_pickles(consume_json(broker.bootstrap, topic)))
        got = strip(without_pickles(consume_json(broker.bootstrap, topic2)))
        assert expected and got == expected, topic  # repeats after a restart have the same id and content
        compared += 1
    assert compared == 5  # two prediction topics, metrics, snapshots, drift events
