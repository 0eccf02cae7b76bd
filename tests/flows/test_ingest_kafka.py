"""Ingestion on the real broker: nothing lost, every malformed event dead-lettered with its reason."""

from __future__ import annotations

import base64
import tomllib
from collections import Counter

import pytest

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.counters import FlowCounters
from dataflows.synth.generator import StreamSpec, generate
from dataflows.flows.ingest import build_ingest_flow
from dataflows.kafka.io import KafkaInput, KafkaOutput
from dataflows.synth.malformed_events import REJECTION_KINDS
from dataflows.flows.runner import run_flow
from features.config import Config, parse_config
from features.events import Reason
from tests.kafka_helpers import consume_json, produce
from tests import ROOT

pytestmark = pytest.mark.integration

EVENTS = 10_000


def rides_config(prefix: str) -> Config:
    """The demo config (deploy/rides.toml) on this test's own topics, ingestion only."""
    raw = tomllib.loads((ROOT / "deploy" / "rides.toml").read_text())
    raw["source"]["topic"] = f"{prefix}rides"
    del raw["feature_sets"], raw["models"]  # the model reads feature sets
    return parse_config(raw)


def test_every_event_is_counted_and_every_malformed_one_dead_lettered(broker: RunningBroker, topic_prefix: str):
    config = rides_config(topic_prefix)
    create_topics(broker.bootstrap, [config.source.topic, config.source.dead_letter_topic], partitions=3)
    produced = [m for m in generate(StreamSpec(events=EVENTS, seed=11, malformed_fraction=0.05))
                if m.kind == "event"]
    assert len(produced) == EVENTS
    expected = Counter((m.value, m.expected_reason) for m in produced if m.expected_reason is not None)
    assert {reason for _, reason in expected} == {str(r) for r in Reason} == set(REJECTION_KINDS)
    produce(broker.bootstrap, config.source.topic, [(m.key, m.value) for m in produced])

    counters = FlowCounters()
    source = KafkaInput(broker.bootstrap, [config.source.topic], stop_at_end=True)
    run_flow(build_ingest_flow(config, source, KafkaOutput(broker.bootstrap), counters))

    letters = consume_json(broker.bootstrap, config.source.dead_letter_topic)
    got = Counter((base64.b64decode(d["value_b64"]), d["reason"]) for d in letters)
    assert got == expected  # every malformed event, with its own reason, and nothing else
    assert all(d["source"]["topic"] == config.source.topic for d in letters)
    assert len({d["id"] for d in letters}) == len(letters)
    valid = sum(1 for m in produced if m.expected_reason is None)
    assert counters.get("valid") == valid
    assert counters.get("valid") + counters.total("rejected.") == counters.get("events_in") == EVENTS
    assert counters.with_prefix("rejected.") == dict(Counter(reason for _, reason in expected.elements()))
