"""The consumer client: FeatureTable (latest features per entity) and DriftSubscriber (typed drift
events), on the real broker with the real client."""

from __future__ import annotations

import random
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.client import DriftSubscriber, FeatureTable, SchemaVersionError, parse_drift_event
from dataflows.counters import FlowCounters
from dataflows.client.feature_table import Entry
from dataflows.flows.features import build_features_flow
from dataflows.kafka.io import KafkaInput, KafkaOutput
from dataflows.flows.runner import run_flow
from features.config import parse_config
from features.messages import encode, feature_message, iso_utc
from tests.flow_fixtures import event_lines, make_config
from tests.kafka_helpers import consume_json, produce

MINUTE = 60_000
T0 = 1_767_225_600_000


def features(entity: str, end_ms: int, n: int, kind: str = "final", as_of_ms: int | None = None) -> dict:
    return feature_message("area_1m", entity, end_ms - MINUTE, end_ms, {"rides": n, "mean_price": n / 2}, n, kind,
                           as_of_ms, emitted_at_ms=end_ms + 1_000)


def drift_event(column: str, end_ms: int, severity: str, test: str = "ks", **extra: object) -> dict:
    window = {"start": iso_utc(end_ms - 5 * MINUTE), "end": iso_utc(end_ms), "start_ms": end_ms - 5 * MINUTE,
              "end_ms": end_ms}
    stats = {"count": 500, "mean": 18.2, "std": 4.1, "q05": 11.0, "q25": 15.0, "q50": 18.0, "q75": 21.0,
             "q95": 26.0, "null_rate": 0.0}
    return {"schema": "driftline.drift_event/1", "id": f"inputs/{column}/{test}/5m/{end_ms}", "monitor": "inputs",
            "column": column, "kind": "covariate", "test": test, "statistic": 0.21, "p_value": 1.2e-09,
            "effect_size": 0.8, "threshold": 0.1, "scale": "5m", "scale_ms": 300_000, "window": window,
            "began": {**window, "end": iso_utc(end_ms - 4 * MINUTE), "end_ms": end_ms - 4 * MINUTE},
            "reference": stats, "current": {**stats, "mean": 23.9}, "severity": severity,
            "detail": f"{column}: KS 0.21 (p=1.2e-09) at 5m", "emitted_at": iso_utc(end_ms + 2_000), **extra}


def _send(bootstrap: str, topic: str, messages: list[dict], key: str) -> None:
    produce(bootstrap, topic, [(str(m[key]).encode(), encode(m)) for m in messages])


# ---------------------------------------------------------------- pure rules


messages = st.lists(st.tuples(st.integers(1, 5), st.sampled_from(["final", "update"]), st.integers(0, 50)),
                    min_size=1, max_size=30)


@given(messages, st.randoms(use_true_random=False))
def test_the_kept_entry_is_the_newest_whatever_the_arrival_order(specs: list, rng: random.Random) -> None:
    entries = [Entry.from_message(features("a", T0 + w * MINUTE, 1, kind, None if kind == "final" else
                                           T0 + (w - 1) * MINUTE + s * 1000)) for w, kind, s in specs]
    arrivals = entries + rng.sample(entries, len(entries) // 2)  # redeliveries, anywhere
    rng.shuffle(arrivals)
    kept = None
    for entry in arrivals:
        kept = Entry.merge(kept, entry)
    newest = max(entries, key=lambda e: e.key)
    assert kept.message["id"] == newest.message["id"]
    window_end = max(w for w, _, _ in specs)
    assert kept.message["window"]["end_ms"] == T0 + window_end * MINUTE
    if any(w == window_end and kind == "final" for w, kind, _ in specs):
        assert kept.message["kind"] == "final"  # a final value is never replaced by an interim one


def test_the_drift_event_contract_parses_and_other_major_versions_are_refused() -> None:
    event = parse_drift_event(drift_event("price", T0 + 10 * MINUTE, "critical"))
    assert (event.column, event.severity, event.scale_ms, event.window.end_ms) == ("price", "critical", 300_000,
                                                                                  T0 + 10 * MINUTE)
    assert event.began.end_ms == T0 + 6 * MINUTE and event.current["mean"] == 23.9
    with pytest.raises(AttributeError):
        event.severity = "info"  # frozen
    categorical = drift_event("payment", T0, "info", test="new_category", p_value=None, effect_size=None,
                              began=None, reference={"count": 10, "null_rate": 0.0, "categories": {"card": 1.0}})
    assert parse_drift_event(categorical).p_value is None
    assert parse_drift_event({**categorical, "schema": "driftline.drift_event/1.3", "new_field": 1}).began is None
    with pytest.raises(SchemaVersionError, match="major version 2.*Upgrade driftline"):
        parse_drift_event({**categorical, "schema": "driftline.drift_event/2"})
    with pytest.raises(SchemaVersionError, match="is not driftline.drift_event"):
        parse_drift_event(features("a", T0, 1))


# ---------------------------------------------------------------- FeatureTable on the broker


@pytest.mark.integration
def test_feature_table_keeps_the_newest_window_per_entity(broker: RunningBroker, topic_prefix: str) -> None:
    topic = f"{topic_prefix}features.area_1m"
    create_topics(broker.bootstrap, [topic], partitions=3)
    w = [T0 + i * MINUTE for i in range(6)]
    written = [
        features("a", w[1], 3), features("a", w[2], 5), features("a", w[3], 7),
        features("a", w[2], 5), features("a", w[3], 7),                      # redelivered after a restart
        features("a", w[1], 3),                                              # an old window replayed
        features("b", w[3], 1, "update", w[2] + 10_000), features("b", w[3], 2, "update", w[2] + 40_000),
        features("b", w[3], 4),                                              # final wins over updates
        features("b", w[3], 3, "update", w[2] + 50_000),                     # an update after the final
        features("c", w[5], 9),
    ]
    _send(broker.bootstrap, topic, written, "entity")
    produce(broker.bootstrap, topic, [(b"d", b"not json"), (b"d", b'{"schema": "driftline.features/1"}')])
    now = (w[5] + 90_000) / 1000
    with FeatureTable(broker.bootstrap, topic, clock=lambda: now) as table:
        assert table.wait_until_caught_up(timeout_s=60)
        a, b, c = table.get("a"), table.get("b"), table.get("c")
        assert (a.window_end_ms, a.values["rides"], a.kind, a.id) == (w[3], 7, "final", f"area_1m/a/{w[3]}")
        assert (b.window_end_ms, b.values["rides"], b.kind) == (w[3], 4, "final")
        assert c.freshness_s == pytest.approx(90.0) and c.window_end.timestamp() * 1000 == w[5]
        assert table.get("nobody") is None and len(table) == 3
        assert (table.stats.applied, table.stats.dropped, table.stats.skipped) == (7, 4, 2)

        _send(broker.bootstrap, topic, [features("a", w[4], 8)], "entity")  # the table follows the topic
        assert table.wait_until_caught_up(timeout_s=60)
        assert table.get("a").values == {"rides": 8, "mean_price": 4.0}


@pytest.mark.integration
def test_feature_table_over_a_real_flow_holds_each_entitys_last_window(broker: RunningBroker,
                                                                       topic_prefix: str) -> None:
    config = parse_config(make_config(topic_prefix))
    create_topics(broker.bootstrap, [config.source.topic, config.source.dead_letter_topic, config.source.late_topic,
                                     *(fs.topic for fs in config.feature_sets)], partitions=3)
    produce(broker.bootstrap, config.source.topic, event_lines(3_000, seed=47))
    source = KafkaInput(broker.bootstrap, [config.source.topic], stop_at_end=True)
    run_flow(build_features_flow(config, source, KafkaOutput(broker.bootstrap), FlowCounters()))
    topic = config.feature_sets[0].topic
    newest: dict[str, dict] = {}
    written = consume_json(broker.bootstrap, topic)
    for message in written:
        if message["entity"] not in newest or message["window"]["end_ms"] > newest[message["entity"]]["window"]["end_ms"]:
            newest[message["entity"]] = message
    with FeatureTable(broker.bootstrap, topic) as table:
        assert table.wait_until_caught_up(timeout_s=60)
        assert table.stats.applied + table.stats.dropped == len(written)  # every message read, no sleep needed
        assert len(table) == len(newest) == 12
        for entity, message in newest.items():
            row = table.get(entity)
            assert (row.id, dict(row.values), row.event_count) == (message["id"], message["values"],
                                                                   message["event_count"])


@pytest.mark.integration
def test_feature_table_refuses_an_unknown_major_version(broker: RunningBroker, topic_prefix: str) -> None:
    topic = f"{topic_prefix}features.v2"
    create_topics(broker.bootstrap, [topic], partitions=1)
    _send(broker.bootstrap, topic, [features("a", T0, 1), {**features("a", T0 + MINUTE, 2),
                                                           "schema": "driftline.features/2"}], "entity")
    with FeatureTable(broker.bootstrap, topic) as table:
        with pytest.raises(SchemaVersionError, match="major version 2"):
            table.wait_until_caught_up(timeout_s=60)
        with pytest.raises(SchemaVersionError):
            table.get("a")


# ---------------------------------------------------------------- DriftSubscriber on the broker


@pytest.mark.integration
def test_drift_subscriber_filters_and_drops_repeats(broker: RunningBroker, topic_prefix: str) -> None:
    topic = f"{topic_prefix}drift.events"
    create_topics(broker.bootstrap, [topic], partitions=3)
    events = [drift_event("price", T0 + i * MINUTE, severity)
              for i, severity in enumerate(["info", "warning", "critical", "warning"])]
    events += [drift_event("eta_min", T0, "critical"), drift_event("surge", T0, "warning")]
    _send(broker.bootstrap, topic, events + events[1:3], "column")  # two repeats
    produce(broker.bootstrap, topic, [(b"price", b"\xff garbage")])

    expected = {e["id"] for e in events if e["column"] in ("price", "eta_min") and e["severity"] != "info"}
    with DriftSubscriber(broker.bootstrap, topic, min_severity="warning", columns={"price", "eta_min"},
                         from_beginning=True) as subscriber:
        got: list = []
        deadline = time.monotonic() + 120
        # The garbage is the last message of the price partition: once it is skipped, every
        # repeat before it has been read too.
        while subscriber.skipped == 0 or len(got) < len(expected):
            assert time.monotonic() < deadline, (subscriber.skipped, got)
            got += subscriber.events(idle_timeout_s=0.5)
    assert sorted(e.id for e in got) == sorted(expected) and len(got) == 4
    price = [e.window.end_ms for e in got if e.column == "price"]
    assert price == sorted(price)  # one column, one partition: in the order written


@pytest.mark.integration
def test_drift_subscriber_yields_what_arrives_after_it_starts(broker: RunningBroker, topic_prefix: str) -> None:
    topic = f"{topic_prefix}drift.events"
    create_topics(broker.bootstrap, [topic], partitions=3)
    _send(broker.bootstrap, topic, [drift_event("price", T0, "critical")], "column")  # before: not yielded
    with DriftSubscriber(broker.bootstrap, topic) as subscriber:
        later = [drift_event("price", T0 + MINUTE, "info"), drift_event("surge", T0 + MINUTE, "critical")]
        writer = threading.Thread(target=_send, args=(broker.bootstrap, topic, later, "column"))
        writer.start()
        got = []
        for event in subscriber:
            got.append(event.id)
            if len(got) == 2:
                break
        writer.join()
    assert sorted(got) == sorted(e["id"] for e in later)

    _send(broker.bootstrap, topic, [{**drift_event("price", T0 + 2 * MINUTE, "info"),
                                     "schema": "driftline.drift_event/2"}], "column")
    with DriftSubscriber(broker.bootstrap, topic, from_beginning=True) as subscriber:
        deadline = time.monotonic() + 120
        with pytest.raises(SchemaVersionError, match="major version 2"):
            while time.monotonic() < deadline:
                list(subscriber.events(idle_timeout_s=0.5))


@pytest.mark.integration
def test_caught_up_means_every_message_written_before_the_call_was_read(broker: RunningBroker,
                                                                         topic_prefix: str) -> None:
    """Big producer batches: some brokers (Tansu) answer the end-offset query with the last
    batch's start, so the table also waits for the ends fetch responses report."""
    topic = f"{topic_prefix}features.bulk"
    create_topics(broker.bootstrap, [topic], partitions=3)
    written = [features(f"e{i % 500:03d}", T0 + (i // 500 + 1) * MINUTE, i) for i in range(5_000)]
    _send(broker.bootstrap, topic, written, "entity")
    with FeatureTable(broker.bootstrap, topic) as table:
        assert table.wait_until_caught_up(timeout_s=60)
        assert table.stats.applied == len(written) and len(table) == 500
        assert all(table.get(f"e{i:03d}").window_end_ms == T0 + 10 * MINUTE for i in range(500))
