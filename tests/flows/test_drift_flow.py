"""The drift flow on a real broker: planted shifts detected and localised; Kafka run == replay."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.counters import FlowCounters
from dataflows.flows.drift import build_drift_flow
from dataflows.kafka.io import KafkaInput, KafkaOutput
from dataflows.cli.replay import replay
from dataflows.flows.runner import Execution, run_flow
from features.config import parse_config
from tests.drift_messages import comparable
from tests.flow_fixtures import START, to_toml
from tests.kafka_helpers import consume_json, produce
from tests.schemas import validate_message

pytestmark = pytest.mark.integration
MIN = 60_000


def drift_config(prefix: str, suffix: str = "") -> dict:
    return {
        "source": {"topic": f"{prefix}rides", "lateness": "5s", "partitions": 3,
                   "dead_letter_topic": f"{prefix}rides.dlq{suffix}", "late_topic": f"{prefix}rides.late{suffix}"},
        "schema": {"entity": "area", "event_time": "ts", "time_format": "epoch_ms",
                   "fields": {"area": "string", "price": "float", "eta": {"type": "float", "nullable": True},
                              "payment": {"type": "category", "values": ["card", "cash"]}}},
        "feature_sets": [],
        "monitors": [{"name": "inputs", "numeric": ["price", "eta"], "categorical": ["payment"],
                      "window": "1m", "scales": ["1m", "3m"], "reference": {"type": "first_windows", "windows": 4},
                      "events_topic": f"{prefix}drift.events{suffix}",
                      "summaries_topic": f"{prefix}drift.summaries{suffix}"}],
    }


def drift_lines(seed: int) -> list[tuple[bytes, bytes]]:
    """12 minutes of ~1,500 events/min over 40 areas: price +20% from minute 8, a new payment
    category from minute 9:30; 1% of events far behind (late), a few malformed."""
    rng = random.Random(seed)
    lines = []
    for i in range(18_000):
        t = START + i * 40 + rng.randint(-200, 200)
        if i % 100 == 99:
            t -= rng.randint(30_000, 60_000)
        minute = (t - START) / MIN
        price = rng.gauss(20.0, 5.0) * (1.2 if minute >= 8 else 1.0)
        payments = ["card", "cash", "crypto"] if minute >= 9.5 else ["card", "cash"]
        event = {"area": f"area-{rng.randrange(40):02d}", "ts": t, "price": round(price, 2),
                 "eta": None if rng.random() < 0.05 else round(rng.uniform(2, 12), 1),
                 "payment": rng.choice(payments)}
        value = orjson.dumps(event if i % 500 != 7 else {**event, "price": "free"})
        lines.append((event["area"].encode(), value))
    return lines


def drop_times(messages: list[dict]) -> dict[str, dict]:
    return {m["id"]: {k: v for k, v in m.items() if k != "emitted_at"} for m in messages}


def test_kafka_run_detects_the_planted_shifts_and_equals_replay(broker: RunningBroker, topic_prefix: str,
                                                               tmp_path: Path) -> None:
    document = drift_config(topic_prefix)
    config = parse_config(document)
    monitor = config.monitors[0]
    create_topics(broker.bootstrap, [config.source.topic, config.source.dead_letter_topic, config.source.late_topic,
                                     monitor.events_topic, monitor.summaries_topic], partitions=3)
    lines = drift_lines(seed=4)
    produce(broker.bootstrap, config.source.topic, lines)

    counters = FlowCounters()
    source = KafkaInput(broker.bootstrap, [config.source.topic], stop_at_end=True)
    run_flow(build_drift_flow(config, source, KafkaOutput(broker.bootstrap), counters))
    assert counters.get("events_in") == 18_000 and counters.get("rejected.wrong_type") == 36
    assert counters.get("late") == counters.get("drift.late") == 180  # the drift flow owns late events here
    events = drop_times(consume_json(broker.bootstrap, monitor.events_topic))
    summaries = drop_times(consume_json(broker.bootstrap, monitor.summaries_topic))

    first = {}
    for e in sorted(events.values(), key=lambda e: e["window"]["end_ms"]):
        first.setdefault((e["column"], e["kind"]), e)
    price, crypto = first[("price", "covariate")], first[("payment", "schema")]
    assert price["began"]["start_ms"] == START + 8 * MIN and price["window"]["end_ms"] <= START + 10 * MIN
    assert crypto["test"] == "new_category" and crypto["began"]["start_ms"] == START + 9 * MIN
    assert not any(e["column"] == "eta" for e in events.values())  # no drift there: no alert
    # Every valid, non-late event is in exactly one base window.
    price_windows = [s for s in summaries.values() if s["column"] == "price"]
    assert sum(s["event_count"] for s in price_windows) == counters.get("valid") - counters.get("late")

    for message in [*events.values(), *summaries.values()]:
        validate_message({**message, "emitted_at": "x"})

    input_path = tmp_path / "events.jsonl"
    input_path.write_bytes(b"".join(value + b"\n" for _, value in lines))
    config_path = tmp_path / "config.toml"
    config_path.write_text(to_toml({k: v for k, v in document.items() if k != "monitors"})
                           + monitors_toml(document["monitors"]))
    replay(config_path, input_path, tmp_path / "out", quiet=True)
    replayed_events = drop_times([orjson.loads(x) for x in (tmp_path / "out" / f"{monitor.events_topic}.jsonl")
                                  .read_bytes().splitlines()])
    replayed_summaries = drop_times([orjson.loads(x) for x in (tmp_path / "out" / f"{monitor.summaries_topic}.jsonl")
                                     .read_bytes().splitlines()])
    # The same alerts, at the same windows, with the same localisation and the same exact
    # statistics; sketch-based ones within the sketches' error (KLL compaction is randomised).
    assert {comparable(m) for m in replayed_events.values()} == {comparable(m) for m in events.values()}
    assert {comparable(m) for m in replayed_summaries.values()} == {comparable(m) for m in summaries.values()}
    for key, e in events.items():
        assert replayed_events[key]["statistic"] == pytest.approx(e["statistic"], rel=0.1, abs=0.03)


def test_two_workers_with_snapshots_give_the_same_alerts(broker: RunningBroker, topic_prefix: str,
                                                         tmp_path: Path) -> None:
    one, two = parse_config(drift_config(topic_prefix)), parse_config(drift_config(topic_prefix, "-w2"))
    topics = {one.source.topic}
    for config in (one, two):
        m = config.monitors[0]
        topics |= {config.source.dead_letter_topic, config.source.late_topic, m.events_topic, m.summaries_topic}
    create_topics(broker.bootstrap, sorted(topics), partitions=3)
    produce(broker.bootstrap, one.source.topic, drift_lines(seed=9))
    for config, execution in ((one, Execution()),
                              (two, Execution(workers=2, epoch_interval_s=0.05, recovery_dir=tmp_path / "rec"))):
        source = KafkaInput(broker.bootstrap, [config.source.topic], stop_at_end=True)
        run_flow(build_drift_flow(config, source, KafkaOutput(broker.bootstrap), FlowCounters()), execution)
    ids = [{m["id"]: (m["severity"], m["began"]) for m in consume_json(broker.bootstrap, c.monitors[0].events_topic)}
           for c in (one, two)]
    assert ids[0] and ids[0] == ids[1]
    assert any((tmp_path / "rec").glob("part-*.sqlite3"))


def test_sigterm_then_restart_from_the_recovery_dir_equals_an_uninterrupted_run(
        broker: RunningBroker, topic_prefix: str, tmp_path: Path) -> None:
    documents = {name: drift_config(topic_prefix, f"-{name}") for name in ("clean", "stopped")}
    paths = {}
    topics = {documents["clean"]["source"]["topic"]}
    for name, document in documents.items():
        paths[name] = tmp_path / f"{name}.toml"
        paths[name].write_text(to_toml({k: v for k, v in document.items() if k != "monitors"})
                               + monitors_toml(document["monitors"]))
        config = parse_config(document)
        topics |= {config.source.dead_letter_topic, config.source.late_topic,
                   config.monitors[0].events_topic, config.monitors[0].summaries_topic}
    create_topics(broker.bootstrap, sorted(topics), partitions=3)
    produce(broker.bootstrap, documents["clean"]["source"]["topic"], drift_lines(seed=13))
    log = tmp_path / "runs.log"

    def run(name: str, *extra: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "dataflows.cli", "run", "drift", "--config", str(paths[name]),
               "--bootstrap", broker.bootstrap, *extra]
        return subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)

    assert run("clean", "--stop-at-end").wait(timeout=300) == 0, log.read_text()[-3000:]
    recovery = ["--recovery-dir", str(tmp_path / "recovery"), "--snapshot-interval", "200ms"]
    stopped = parse_config(documents["stopped"]).monitors[0]
    live = run("stopped", *recovery)  # no --stop-at-end: it waits for more events until SIGTERM
    deadline = time.monotonic() + 120
    while not consume_json(broker.bootstrap, stopped.summaries_topic):
        assert time.monotonic() < deadline and live.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    time.sleep(1.0)
    live.send_signal(signal.SIGTERM)
    assert live.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert run("stopped", "--stop-at-end", *recovery).wait(timeout=300) == 0, log.read_text()[-3000:]

    clean = parse_config(documents["clean"]).monitors[0]
    for a, b in ((clean.events_topic, stopped.events_topic), (clean.summaries_topic, stopped.summaries_topic)):
        expected = {comparable(m) for m in consume_json(broker.bootstrap, a)}  # repeats collapse: same id, same form
        assert expected and {comparable(m) for m in consume_json(broker.bootstrap, b)} == expected, b


def monitors_toml(monitors: list[dict]) -> str:
    out = []
    for m in monitors:
        out.append("[[monitors]]")
        for key, value in m.items():
            out.append(f"{key} = {_toml(value)}")
    return "\n".join(out) + "\n"


def _toml(v: object) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return orjson.dumps(v).decode() if isinstance(v, str) else str(v)
