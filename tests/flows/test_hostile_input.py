"""100,000 hostile messages among valid events: no crash, each dead-lettered with a reason, features unaffected."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import orjson
import pytest

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.counters import FlowCounters
from dataflows.flows.features import build_features_flow
from dataflows.kafka.io import KafkaInput, KafkaOutput
from dataflows.flows.runner import run_flow
from features.config import parse_config
from features.events import Reason
from tests.flow_fixtures import START, event_lines, make_config, strip
from tests.kafka_helpers import consume_json, produce

pytestmark = pytest.mark.integration

HOSTILE = 100_000


def hostile_message(rng: random.Random, i: int) -> bytes:
    """One message no decoder should accept, of a kind chosen by i."""
    valid = {"area": "area-01", "ts": START + i, "price": 10.0, "payment": "card"}
    kind = i % 10
    if kind == 0:
        return rng.randbytes(rng.randint(0, 300))
    if kind == 1:
        depth = rng.randint(500, 20_000)
        return b"[" * depth + b"]" * depth if rng.random() < 0.5 else b'{"a":' * depth + b"1" + b"}" * depth
    if kind == 2 and i % 100 == 2:  # oversized (1% of the messages: they are heavy to carry)
        return orjson.dumps({**valid, "area": "x" * rng.randint(70_000, 200_000)})
    if kind == 2:  # a huge string where a number belongs
        return orjson.dumps({**valid, "price": "9" * rng.randint(1_000, 30_000)})
    if kind == 3:
        return orjson.dumps({**valid, "price": rng.choice(["10", [1], {"v": 1}, True])})
    if kind == 4:
        return orjson.dumps(valid).replace(b"10.0", rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999"]))
    if kind == 5:
        ts = rng.choice([b"%d" % (START + 10**12), b"%d" % 2**62, b"%d" % 10**30])
        return orjson.dumps(valid).replace(b"%d" % valid["ts"], ts, 1)
    if kind == 6:
        return orjson.dumps({**valid, "ts": rng.choice([-1, -(10**12), "yesterday", None, 1.5e300])})
    if kind == 7:
        return orjson.dumps(rng.choice([[valid], "rides", 42, None, True]))
    if kind == 8:
        missing = rng.choice(["area", "ts", "price"])
        return orjson.dumps({k: v for k, v in valid.items() if k != missing})
    return orjson.dumps(valid)[: rng.randint(1, 40)]  # truncated


def test_hostile_messages_are_dead_lettered_and_features_unaffected(broker: RunningBroker, topic_prefix: str,
                                                                     tmp_path: Path) -> None:
    clean = parse_config(make_config(f"{topic_prefix}c-"))
    mixed = parse_config(make_config(f"{topic_prefix}m-"))
    topics = []
    for config in (clean, mixed):
        topics += [config.source.topic, config.source.dead_letter_topic, config.source.late_topic,
                   *(fs.topic for fs in config.feature_sets)]
    create_topics(broker.bootstrap, topics, partitions=3)
    # Valid events only (the fixture's few malformed events dropped), keyed by area.
    good = [(k, v) for k, v in event_lines(10_000, seed=41) if b'"soon"' not in v]
    rng = random.Random(41)
    hostile = [hostile_message(rng, i) for i in range(HOSTILE)]
    mixed_messages: list[tuple[bytes | None, bytes]] = [(None, h) for h in hostile]
    for n, message in enumerate(good):  # valid events spread evenly through the hostile ones, in order
        mixed_messages.insert(n * (HOSTILE // len(good)) + n, message)
    produce(broker.bootstrap, clean.source.topic, good)
    produce(broker.bootstrap, mixed.source.topic, mixed_messages)

    runs = {}
    for name, config in (("clean", clean), ("mixed", mixed)):
        counters = FlowCounters()
        source = KafkaInput(broker.bootstrap, [config.source.topic], stop_at_end=True)
        run_flow(build_features_flow(config, source, KafkaOutput(broker.bootstrap), counters))
        runs[name] = counters

    assert runs["mixed"].get("events_in") == HOSTILE + len(good)
    assert runs["mixed"].get("valid") == runs["clean"].get("valid") == len(good)
    letters = consume_json(broker.bootstrap, mixed.source.dead_letter_topic)
    assert len(letters) == HOSTILE == len({d["id"] for d in letters})
    reasons = Counter(d["reason"] for d in letters)
    assert set(reasons) <= {str(r) for r in Reason} and all(d["detail"] for d in letters)
    assert {"not_json", "not_object", "missing_field", "wrong_type", "non_finite", "bad_timestamp",
            "future_timestamp", "oversized"} <= set(reasons)
    for fs_clean, fs_mixed in zip(clean.feature_sets, mixed.feature_sets):
        assert strip(consume_json(broker.bootstrap, fs_clean.topic)) == \
            strip(consume_json(broker.bootstrap, fs_mixed.topic)), fs_clean.name
