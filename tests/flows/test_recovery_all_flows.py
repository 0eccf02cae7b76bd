"""kill -9 and resume, for every flow the demo config enables, on the demo config and stream.

Each flow runs twice on its own broker: once uninterrupted, once killed with SIGKILL at
three random points and resumed from its recovery directory. After dropping repeats by
message id, every output topic of the flow holds the same messages in both runs. The flows
are taken from `deploy/rides.toml`, so a flow enabled there is covered here too.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataflows.kafka.broker import RunningBroker, create_topics, local_broker
from dataflows.flows.registry import FLOWS, default_flows, topics_for
from dataflows.synth.generator import StreamSpec
from dataflows.synth.produce import produce_to_kafka
from features.config import load_config
from tests.drift_messages import comparable
from tests.flow_fixtures import strip
from tests.kafka_helpers import consume_json
from tests.flows.test_model_flow import without_pickles
from tests import ROOT

pytestmark = pytest.mark.integration

CONFIG = ROOT / "deploy" / "rides.toml"
EVENTS = 60_000
DRIFT_SCHEMAS = ("driftline.drift_event/", "driftline.window_summary/")


def _prepare(broker: RunningBroker, flow: str) -> None:
    config = load_config(CONFIG)
    labels = f"{config.source.topic}.labels"
    create_topics(broker.bootstrap, [*topics_for(config, [flow]), labels], partitions=config.source.partitions)
    produce_to_kafka(StreamSpec(events=EVENTS, seed=53, malformed_fraction=0.01), broker.bootstrap,
                     config.source.topic, labels)


def _start(flow: str, bootstrap: str, recovery: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dataflows.cli", "run", flow, "--config", str(CONFIG),
                             "--bootstrap", bootstrap, "--stop-at-end", "--recovery-dir", str(recovery),
                             "--snapshot-interval", "500ms"], stdout=log.open("ab"), stderr=subprocess.STDOUT)


@pytest.mark.parametrize("flow", [f for f in default_flows(load_config(CONFIG)) if f != "ingest"])
def test_kill_9_three_times_then_resume_equals_an_uninterrupted_run(flow: str, tmp_path: Path) -> None:
    config = load_config(CONFIG)
    log = tmp_path / "runs.log"
    with local_broker() as clean, local_broker() as crash:
        _prepare(clean, flow)
        _prepare(crash, flow)
        started = time.monotonic()
        assert _start(flow, clean.bootstrap, tmp_path / "recovery-clean", log).wait(timeout=600) == 0, \
            log.read_text()[-3000:]
        uninterrupted_s = time.monotonic() - started

        rng = random.Random(flow)
        for _ in range(3):
            proc = _start(flow, crash.bootstrap, tmp_path / "recovery-crash", log)
            time.sleep(rng.uniform(0.3, 0.7) * uninterrupted_s)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        assert _start(flow, crash.bootstrap, tmp_path / "recovery-crash", log).wait(timeout=600) == 0, \
            log.read_text()[-3000:]

        written = 0
        for topic in FLOWS[flow].output_topics(config):
            expected = _normalized(consume_json(clean.bootstrap, topic))
            assert _normalized(consume_json(crash.bootstrap, topic)) == expected, topic  # repeats dropped by id
            written += len(expected)
        assert written > 0


def _normalized(messages: list[dict]) -> set[bytes]:
    """`strip`, a dead letter without what depends on when it was handled (its source
    message's Kafka timestamp, stamped by each broker when produced, and the detail text,
    a future timestamp's distance from the clock), and drift messages in the form two runs
    must agree on (`tests.drift_messages.comparable`: KLL sketches draw unseeded bits), model
    snapshots without their pickle (River's trees pickle unused, unseeded generators; the
    models predict alike, which tests/flows/test_model_flow.py checks)."""
    drift = [m for m in messages if m.get("schema", "").startswith(DRIFT_SCHEMAS)]
    other = without_pickles([m for m in messages if not m.get("schema", "").startswith(DRIFT_SCHEMAS)])
    return strip([{**{k: v for k, v in m.items() if k != "detail"},
                   "source": {k: v for k, v in m["source"].items() if k != "timestamp"}}
                  if m.get("schema", "").startswith("driftline.dead_letter/") else m for m in other]) \
        | {comparable(m) for m in drift}
