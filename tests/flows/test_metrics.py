"""The Prometheus endpoint of a running flow answers over HTTP, consistent with what the flow did."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dataflows.kafka.broker import RunningBroker, create_topics, free_port
from features.config import parse_config
from features.events import Reason
from tests.flow_fixtures import event_lines, make_config, to_toml
from tests.kafka_helpers import consume_json, produce

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_endpoint_matches_the_run(broker: RunningBroker, topic_prefix: str, tmp_path: Path) -> None:
    document = make_config(topic_prefix)
    config = parse_config(document)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(document))
    create_topics(broker.bootstrap, [config.source.topic, config.source.dead_letter_topic, config.source.late_topic,
                                     *(fs.topic for fs in config.feature_sets)], partitions=3)
    lines = event_lines(5_000, seed=7)
    produce(broker.bootstrap, config.source.topic, lines)
    port = free_port()
    log = tmp_path / "run.log"
    proc = subprocess.Popen([sys.executable, "-m", "dataflows.cli", "run", "features", "--config", str(path),
                             "--bootstrap", broker.bootstrap, "--metrics-port", str(port)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)

    def written() -> dict[str, int]:
        return {topic: len(consume_json(broker.bootstrap, topic)) for topic in
                (config.source.dead_letter_topic, config.source.late_topic, *(fs.topic for fs in config.feature_sets))}

    def lags(metrics: dict) -> list[float]:
        return [v for (name, _), v in metrics.items() if name == "driftline_consumer_lag"]

    def counted(metrics: dict) -> dict[str, int]:
        by_set = {dict(labels)["feature_set"]: v for (name, labels), v in metrics.items()
                  if name == "driftline_features_out_total"}
        return {config.source.dead_letter_topic: sum(v for (name, _), v in metrics.items()
                                                     if name == "driftline_events_rejected_total"),
                config.source.late_topic: metrics.get(("driftline_late_events_total", ()), 0),
                **{fs.topic: by_set.get(fs.name, 0) for fs in config.feature_sets}}

    try:
        deadline = time.monotonic() + 120
        metrics: dict = {}
        while metrics.get(("driftline_events_in_total", ())) != 5_000:
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
            try:
                metrics = scrape(port)
            except OSError:
                continue  # not listening yet
        # Every output counted is written a little later (the sink runs after the steps that
        # count): wait until the topics hold what the endpoint counts, and until every partition
        # reader has reported lag 0 after its last read (each sets its gauge on its own poll):
        # three partitions, three gauges, all caught up, or the deadline fails the test.
        while counted(metrics) != written() or len(lags(metrics)) != 3 or sum(lags(metrics)) != 0:
            assert time.monotonic() < deadline and proc.poll() is None, (counted(metrics), written(), lags(metrics))
            time.sleep(1.0)
            metrics = scrape(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]

    rejected = {dict(labels)["reason"]: v for (name, labels), v in metrics.items()
                if name == "driftline_events_rejected_total"}
    assert {r: v for r, v in rejected.items() if v} == {"bad_timestamp": 20}  # the fixture's malformed events
    assert set(rejected) == {r.value for r in Reason}  # the others exported at 0 from the start
    assert metrics[("driftline_events_valid_total", ())] == 5_000 - 20
    assert metrics[("driftline_stage_seconds_count", (("stage", "decode"),))] >= 1
    assert metrics[("driftline_emit_lag_seconds_count", ())] >= 1


def test_drift_alerts_by_severity_and_model_metrics_are_exposed() -> None:
    from dataflows.counters import FlowCounters
    from dataflows.flows.metrics import MODEL_METRIC, FlowCollector

    counters = FlowCounters()
    counters.add({"drift_alerts.critical": 2, "drift_alerts.warning": 1, "model.predictions": 40})
    counters.set_gauge(f"{MODEL_METRIC}|cancel|-|accuracy", 0.93)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in FlowCollector(counters).collect() for s in family.samples}
    assert samples[("driftline_drift_alerts_total", (("severity", "critical"),))] == 2
    assert samples[("driftline_drift_alerts_total", (("severity", "warning"),))] == 1
    assert samples[("driftline_model_events_total", (("event", "predictions"),))] == 40
    assert samples[("driftline_model_metric", (("metric", "accuracy"), ("model", "cancel"), ("segment", "-")))] == 0.93


def test_known_label_values_are_exported_at_zero_from_the_start() -> None:
    """Labelled counters the config already knows (reasons, feature sets, monitors, severities,
    model events) are series from the first scrape, at 0, so rate() sees a first burst; each
    flow declares only what it counts (a drift flow has no feature-set series, which would
    make it look like a features flow that emits nothing)."""
    from dataflows.counters import FlowCounters
    from dataflows.flows.metrics import FlowCollector, known_counters
    from features.config import load_config
    from tests import ROOT

    config = load_config(ROOT / "deploy" / "rides.toml")

    def series(flow: str) -> dict[str, dict[str, float]]:
        counters = FlowCounters()
        counters.declare(known_counters(flow, config))
        if flow == "drift":
            counters.add({"drift_alerts.critical": 3})
        out: dict[str, dict[str, float]] = {}
        for family in FlowCollector(counters).collect():
            for s in family.samples:
                if s.labels and s.name.endswith("_total"):
                    out.setdefault(s.name, {})[next(iter(s.labels.values()))] = s.value
        return out

    features, drift, model = series("features"), series("drift"), series("model")
    for flow in (features, drift, model):
        assert flow["driftline_events_rejected_total"] == {r.value: 0 for r in Reason}
        assert flow["driftline_unknown_category_total"] == {"payment": 0}
    assert features["driftline_features_out_total"] == {fs.name: 0 for fs in config.feature_sets}
    assert features["driftline_samples_out_total"] == {"rides_by_area": 0}
    assert "driftline_drift_alerts_total" not in features and "driftline_features_out_total" not in drift
    assert drift["driftline_drift_alerts_total"] == {"info": 0, "warning": 0, "critical": 3}
    assert drift["driftline_drift_events_out_total"] == {"inputs": 0}
    assert model["driftline_model_events_total"]["error_drifts"] == 0
    assert model["driftline_drift_alerts_total"] == {"info": 0, "warning": 0, "critical": 0}
    assert "driftline_features_out_total" not in model and "driftline_model_events_total" not in drift
