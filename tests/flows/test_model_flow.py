"""The model flow on a real broker: a Kafka run equals a replay and a 2-worker run; every message validates."""

from __future__ import annotations

import base64
import functools
import pickle
import tempfile
from pathlib import Path

import orjson
import pytest

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.counters import FlowCounters
from dataflows.flows.registry import FLOWS, topics_for
from dataflows.synth.generator import StreamSpec
from dataflows.kafka.io import KafkaInput, KafkaOutput
from dataflows.flows.model import build_model_flow
from dataflows.synth.planted_changes import ConceptDrift
from dataflows.synth.produce import produce_to_kafka, write_jsonl
from dataflows.cli.replay import replay
from dataflows.flows.runner import Execution, run_flow
from features.config import Config, parse_config
from features.config_values import ConfigError
from tests.flow_fixtures import strip, to_toml
from tests.kafka_helpers import consume_json, produce
from tests.schemas import validate_message

pytestmark = pytest.mark.integration

BAD_LABELS = [b"not json", b'{"ride_id": "x"}', b'{"ride_id": "y", "ts": "soon", "cancelled": true}']


@functools.cache
def cancel_test_set() -> Path:
    """The fixed test set of the model `cancel`: 1,000 labelled rides of another seed, of the
    concept before the stream's drift (so challengers that learn the new one can fail it), each
    with a value for the feature input `area_1m.rides` (a file has no windows to compute it)."""
    folder = Path(tempfile.mkdtemp(prefix="driftline-test-set-"))
    events, labels = folder / "events.jsonl", folder / "labels.jsonl"
    write_jsonl(StreamSpec(events=1000, seed=99), events, labels)
    label_of = {m["ride_id"]: m["cancelled"] for m in map(orjson.loads, labels.read_bytes().splitlines())}
    rows = [{**e, "cancelled": label_of[e["ride_id"]], "area_1m.rides": 5}
            for e in map(orjson.loads, events.read_bytes().splitlines()) if e["ride_id"] in label_of]
    path = folder / "cancel_test_set.jsonl"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def config_document(prefix: str, suffix: str = "") -> dict:
    return {
        "source": {"topic": f"{prefix}rides", "lateness": "10s", "dead_letter_topic": f"{prefix}rides.dlq{suffix}"},
        "schema": {"entity": "area", "event_time": "ts", "time_format": "epoch_ms", "fields": {
            "ride_id": "string", "area": "string", "price": "float", "distance_km": "float",
            "surge": {"type": "float", "nullable": True}, "eta_min": "float",
            "payment": {"type": "category", "values": ["card", "cash", "wallet"]}}},
        # Feature-set inputs: their windows live in the model shards' state (recovery tests them too).
        "feature_sets": [
            {"name": "area_1m", "topic": f"{prefix}features.area_1m{suffix}", "window": {"type": "tumbling", "length": "1m"},
             "features": [{"name": "rides", "agg": "count"}, {"name": "mean_price", "agg": "mean", "field": "price"}]},
            {"name": "area_last5", "topic": f"{prefix}features.area_last5{suffix}",
             "window": {"type": "last_n", "n": 5, "every": "30s"},
             "features": [{"name": "median_eta", "agg": "median", "field": "eta_min"}]},
        ],
        "models": [
            {"name": "cancel", "kind": "hoeffding_tree_classifier", "params": {"grace_period": 100},
             "inputs": ["price", "distance_km", "surge", "eta_min", "payment", "area_1m.rides"],
             "preprocessing": {"one_hot": ["payment"]},
             "labels": {"topic": f"{prefix}rides.labels", "key": "ride_id", "field": "cancelled", "ttl": "2m"},
             "metrics_window": "30s", "snapshot_every": "1m", "adwin_delta": 0.9,  # alarms in a short stream
             "runbook": "docs/runbooks.md#driftlinemodelerrordrift",
             "challenger": {"kind": "hoeffding_adaptive_tree_classifier", "params": {"grace_period": 50}},
             # A challenger also may not be 2 points worse than the champion on the fixed test set.
             "promotion": {"window": 100, "margin": 0.0, "test_set": str(cancel_test_set()), "test_margin": 0.02},
             "topic": f"{prefix}predictions.cancel{suffix}", "metrics_topic": f"{prefix}model.metrics{suffix}",
             "snapshots_topic": f"{prefix}model.snapshots{suffix}", "drift_topic": f"{prefix}drift.events{suffix}"},
            {"name": "by_area", "kind": "river.linear_model.LogisticRegression", "segment_by": "area",
             "inputs": ["price", "eta_min", "area_1m.mean_price", "area_last5.median_eta"], "preprocessing": {"scale": True},
             "labels": {"topic": f"{prefix}rides.labels", "key": "ride_id", "field": "cancelled", "ttl": "2m"},
             "metrics_window": "30s", "snapshot_every": "1m",
             "topic": f"{prefix}predictions.by_area{suffix}", "metrics_topic": f"{prefix}model.metrics{suffix}",
             "snapshots_topic": f"{prefix}model.snapshots{suffix}", "drift_topic": f"{prefix}drift.events{suffix}"},
        ],
    }


def run_kafka(config: Config, bootstrap: str, workers: int) -> FlowCounters:
    counters = FlowCounters()
    source = KafkaInput(bootstrap, FLOWS["model"].input_topics(config), stop_at_end=True)
    run_flow(build_model_flow(config, source, KafkaOutput(bootstrap), counters), Execution(workers=workers))
    return counters


def output_topics(config: Config) -> list[str]:
    return list(FLOWS["model"].output_topics(config))


def test_kafka_run_equals_replay_and_two_workers(broker: RunningBroker, topic_prefix: str, tmp_path: Path) -> None:
    config = parse_config(config_document(topic_prefix))
    config2 = parse_config(config_document(topic_prefix, suffix="-w2"))
    spec = StreamSpec(events=8000, seed=4, malformed_fraction=0.005, label_delay_ms=20_000,
                      changes=(ConceptDrift(start=4000),))
    create_topics(broker.bootstrap, list(dict.fromkeys([*topics_for(config, ["model"]), *output_topics(config2)])),
                  partitions=3)
    labels_topic = config.models[0].labels.topic
    stats = produce_to_kafka(spec, broker.bootstrap, config.source.topic, labels_topic)
    produce(broker.bootstrap, labels_topic, [(b"bad", value) for value in BAD_LABELS])

    counters = run_kafka(config, broker.bootstrap, workers=1)
    assert counters.get("events_in") == stats.events and counters.get("model.labels_in") == stats.labels + 3
    assert counters.get("model.labels_rejected.not_json") == 1
    assert counters.get("model.labels_rejected.missing_field") == 1
    assert counters.get("model.labels_rejected.bad_timestamp") == 1
    valid = counters.get("valid")
    assert counters.get("model.predictions") == 2 * (valid - counters.get("model.late_events"))

    events_file, labels_file = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    write_jsonl(spec, events_file, labels_file)
    with labels_file.open("ab") as handle:
        handle.write(b"".join(value + b"\n" for value in BAD_LABELS))
    config_file = tmp_path / "config.toml"
    config_file.write_text(to_toml(config_document(topic_prefix)))
    replayed = replay(config_file, events_file, tmp_path / "out", flows=["model"], quiet=True, labels_path=labels_file)
    assert replayed.get("model.predictions") == counters.get("model.predictions")

    counters2 = run_kafka(config2, broker.bootstrap, workers=2)
    assert counters2.get("model.predictions") == counters.get("model.predictions")

    seen: set[str] = set()
    for topic, topic2 in zip(output_topics(config), output_topics(config2)):
        kafka = consume_json(broker.bootstrap, topic)
        files = [orjson.loads(line) for line in (tmp_path / "out" / f"{topic}.jsonl").read_bytes().splitlines()]
        if topic.endswith("rides.labels.dlq"):  # both Kafka runs read the same labels; offsets differ from the file
            assert sorted(m["reason"] for m in kafka) == sorted(m["reason"] for m in files * 2)
            continue
        for message in kafka:
            validate_message(message)
            seen.add(message["schema"])
        kafka2 = consume_json(broker.bootstrap, topic2)
        if topic == config.models[0].snapshots_topic:
            same_models(kafka, files)
            same_models(kafka, kafka2)
            kafka, files, kafka2 = (without_pickles(m) for m in (kafka, files, kafka2))
        assert kafka and strip(kafka) == strip(files), topic
        assert strip(kafka) == strip(kafka2), topic
    assert {"driftline.prediction/1", "driftline.model_metrics/1", "driftline.model_snapshot/1",
            "driftline.drift_event/1", "driftline.model_promotion/1", "driftline.model_promotion_refused/1"} <= seen
    decisions = [m for m in consume_json(broker.bootstrap, config.models[0].metrics_topic) if m["model"] == "cancel"
                 and m["schema"] != "driftline.model_metrics/1"]
    refused = [m for m in decisions if m["schema"] == "driftline.model_promotion_refused/1"]
    assert refused and counters.get("model.promotions_refused") == len(refused)
    for m in decisions:  # both scores: the recent labels', and the fixed test set's
        test = m["test_set"]
        assert test["examples"] == 1000 and test["passed"] == (m not in refused)
        assert test["passed"] == (test["challenger"] >= test["champion"] - 0.02 - 1e-12)
        assert m["challenger"] > m["champion"]
    drifts = [m for m in consume_json(broker.bootstrap, config.models[0].drift_topic) if m["kind"] == "error_rate"]
    cancel = [m for m in drifts if m["column"].startswith("cancel")]
    assert cancel and all(m["runbook"] == "docs/runbooks.md#driftlinemodelerrordrift" for m in cancel)
    assert all("runbook" not in m for m in drifts if m not in cancel)  # by_area has none
    segments = {m["segment"] for m in consume_json(broker.bootstrap, config.models[1].metrics_topic)}
    assert len(segments - {None}) > 10  # one model per area
    predictions = consume_json(broker.bootstrap, config.models[0].topic)
    assert sum(p["inputs"].get("area_1m.rides", 0) > 0 for p in predictions) > len(predictions) // 2
    predictions = consume_json(broker.bootstrap, config.models[1].topic)
    assert sum("area_last5.median_eta" in p["inputs"] for p in predictions) > len(predictions) // 2


def test_a_bad_test_set_stops_the_flow_at_start(tmp_path: Path) -> None:
    document = config_document("x")
    document["models"][0]["promotion"]["test_set"] = str(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match=r"models\[0\]\.promotion\.test_set.*missing\.jsonl.*Fix: check the path"):
        build_model_flow(parse_config(document), KafkaInput("localhost:1", ["xrides"]), KafkaOutput("localhost:1"),
                         FlowCounters())


def without_pickles(messages: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in ("pickle_b64", "pickle_bytes")} for m in messages]


def pickles(messages: list[dict]) -> dict[str, bytes]:
    """The whole pickle of each snapshot of the model `cancel`, by snapshot (id without the part)."""
    parts: dict[str, dict[int, bytes]] = {}
    for m in messages:
        if m["model"] == "cancel":
            parts.setdefault(m["id"].rsplit("/", 1)[0], {})[m["part"]] = base64.b64decode(m["pickle_b64"])
    return {key: b"".join(found[i] for i in range(len(found))) for key, found in parts.items()}


def same_models(one: list[dict], other: list[dict]) -> None:
    """Each snapshot's model predicts alike in both runs. The pickles' bytes may differ: River's
    Gaussian distributions in the tree's splitters hold unseeded random generators they never
    use to predict."""
    first, second = pickles(one), pickles(other)
    probes = [{"price": p, "distance_km": p / 3, "surge": 1.0 + p / 100, "eta_min": 30 - p, "payment": pay,
               "area_1m.rides": 3 * p}
              for p in range(1, 30, 2) for pay in ("card", "cash", "wallet")]
    assert first.keys() == second.keys() and len(first) >= 3
    for key in first:
        a, b = pickle.loads(first[key]), pickle.loads(second[key])
        assert [a.predict_proba_one(x) for x in probes] == [b.predict_proba_one(x) for x in probes]
