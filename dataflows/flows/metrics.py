"""The Prometheus endpoint of a running flow (`driftline run ... --metrics-port N`).

A collector reads the flow's `FlowCounters` at every scrape, so the endpoint and the
progress lines can never disagree. Each flow gets its own registry: several flows (or
tests) in one process do not collide. The labelled counters whose label values are known at
start (`known_counters`: rejection reasons, the config's feature sets, monitors, severities,
model events) are exported at 0 from the first scrape, so `rate()` and `increase()` see their
first burst; label values known only when counted (e.g. a segment) appear then.

| metric | type | labels |
|---|---|---|
| `driftline_events_in_total` | counter | |
| `driftline_events_valid_total` | counter | |
| `driftline_events_rejected_total` | counter | `reason` |
| `driftline_late_events_total` | counter | |
| `driftline_unknown_category_total` | counter | `field` |
| `driftline_features_out_total` | counter | `feature_set` |
| `driftline_samples_out_total` | counter | `sample_set` (sample messages written) |
| `driftline_drift_summaries_out_total` | counter | |
| `driftline_drift_events_out_total` | counter | `monitor` |
| `driftline_drift_alerts_total` | counter | `severity` (drift, expectation and model error-drift events) |
| `driftline_model_events_total` | counter | `event` (`predictions`, `labels_used`, `expired`, `promotions`, `promotions_refused`, `error_drifts`, ...) |
| `driftline_model_metric` | gauge | `model`, `segment`, `metric` (the last metrics window's value, e.g. accuracy) |
| `driftline_stage_seconds` | histogram | `stage` (time to process one batch) |
| `driftline_emit_lag_seconds` | histogram | (wall clock at emit - window end, event time) |
| `driftline_consumer_lag` | gauge | `topic`, `partition` (messages behind the end) |
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from dataflows.counters import FlowCounters, Histogram
from features.config import Config
from features.events import Reason

_PLAIN = {"events_in": ("driftline_events_in", "Messages read from the events topic."),
          "valid": ("driftline_events_valid", "Events that decoded and passed the schema."),
          "late": ("driftline_late_events", "Events behind the watermark, written to the late topic."),
          "drift_summaries_out": ("driftline_drift_summaries_out", "Base-window column summaries written.")}
_LABELLED = {"rejected.": ("driftline_events_rejected", "Events dead-lettered, by reason.", "reason"),
             "unknown_category.": ("driftline_unknown_category",
                                   "Values outside a declared vocabulary (kept; a drift signal).", "field"),
             "features_out.": ("driftline_features_out", "Feature messages written, by feature set.", "feature_set"),
             "samples_out.": ("driftline_samples_out", "Sample messages written, by sample set.", "sample_set"),
             "drift_events_out.": ("driftline_drift_events_out", "Drift events written, by monitor.", "monitor"),
             "drift_alerts.": ("driftline_drift_alerts", "Drift events written, by severity.", "severity"),
             "model.": ("driftline_model_events", "Online-model counts (predictions, labels, expiries, ...).",
                        "event")}
MODEL_METRIC = "model_metric"  # gauge names: model_metric|<model>|<segment or ->|<metric>
SEVERITIES = ("info", "warning", "critical")
# What the model flow counts under `model.<event>` (dataflows/flows/model.py, model_inputs.py).
MODEL_EVENTS = ("predictions", "labels_in", "labels_used", "labels_unmatched", "expired", "late_events",
                "late_labels", "windows", "snapshots", "snapshot_errors", "promotions", "promotions_refused",
                "error_drifts")


def known_counters(flow: str, config: Config) -> list[str]:
    """The labelled counters `flow` may count whose label values the config already says, to
    export at 0 from the start (`FlowCounters.declare`).

    >>> from features.config import parse_config
    >>> config = parse_config({"source": {"topic": "rides"}, "schema": {"entity": "a", "event_time": "ts",
    ...     "fields": {"a": "string", "x": "float", "p": "category"}},
    ...     "monitors": [{"name": "inputs", "numeric": ["x"]}]})
    >>> [n for n in known_counters("drift", config) if not n.startswith("rejected.")]
    ['unknown_category.p', 'drift_events_out.inputs', 'drift_alerts.info', 'drift_alerts.warning', 'drift_alerts.critical']
    """
    names = [f"rejected.{reason.value}" for reason in Reason]  # every flow decodes the events
    names += [f"unknown_category.{name}" for name in config.schema.field_names
              if config.schema.field(name).type == "category"]
    if flow == "features":
        names += [f"features_out.{fs.name}" for fs in config.feature_sets]
        names += [f"samples_out.{s.name}" for s in config.sample_sets]
    elif flow == "drift":
        names += [f"drift_events_out.{m.name}" for m in config.monitors]
        names += [f"drift_alerts.{severity}" for severity in SEVERITIES]
    elif flow == "model":
        names += [f"drift_alerts.{severity}" for severity in SEVERITIES]  # error drift
        names += [f"model.{event}" for event in MODEL_EVENTS]
    return names


class FlowCollector(Collector):
    """Exposes a FlowCounters in the Prometheus data model.

    >>> counters = FlowCounters()
    >>> counters.add({"events_in": 5, "rejected.not_json": 2})
    >>> [(s.name, s.labels, s.value) for m in FlowCollector(counters).collect()
    ...  if m.name == "driftline_events_rejected" for s in m.samples]
    [('driftline_events_rejected_total', {'reason': 'not_json'}, 2)]

    Declared counters (`FlowCounters.declare`) are exported at 0 until counted:

    >>> counters.declare(["rejected.oversized", "rejected.not_json"])
    >>> [(s.labels["reason"], s.value) for m in FlowCollector(counters).collect()
    ...  if m.name == "driftline_events_rejected" for s in m.samples]
    [('not_json', 2), ('oversized', 0)]
    """

    def __init__(self, counters: FlowCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        counts = self.counters.snapshot()
        for key in self.counters.declared():
            counts.setdefault(key, 0)
        counts = dict(sorted(counts.items()))
        for key, (name, doc) in _PLAIN.items():
            yield CounterMetricFamily(name, doc, value=counts.get(key, 0))
        for prefix, (name, doc, label) in _LABELLED.items():
            family = CounterMetricFamily(name, doc, labels=[label])
            for key, value in counts.items():
                if key.startswith(prefix):
                    family.add_metric([key[len(prefix):]], value)
            yield family
        histograms = self.counters.histograms()
        stages = HistogramMetricFamily("driftline_stage_seconds", "Time to process one batch, by stage.",
                                       labels=["stage"])
        for key, histogram in histograms.items():
            if key.startswith("stage."):
                stages.add_metric([key[len("stage."):]], _buckets(histogram), histogram.sum)
        yield stages
        lag = histograms.get("emit_lag", Histogram())
        yield HistogramMetricFamily("driftline_emit_lag_seconds",
                                    "Wall-clock time from a window's end (event time) to its emission.",
                                    buckets=_buckets(lag), sum_value=lag.sum)
        consumer_lag = GaugeMetricFamily("driftline_consumer_lag", "Messages between the read position and the end.",
                                         labels=["topic", "partition"])
        model_metric = GaugeMetricFamily("driftline_model_metric", "The last metrics window's value, per model.",
                                         labels=["model", "segment", "metric"])
        for key, value in self.counters.gauges().items():
            if key.startswith("consumer_lag."):
                topic, _, partition = key[len("consumer_lag."):].rpartition(".")
                consumer_lag.add_metric([topic, partition], value)
            elif key.startswith(MODEL_METRIC + "|"):
                model_metric.add_metric(key.split("|")[1:], value)
        yield consumer_lag
        yield model_metric


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return [(repr(bound), count) for bound, count in zip(histogram.bounds, histogram.buckets)] + \
        [("+Inf", histogram.count)]


def serve_metrics(counters: FlowCounters, port: int, host: str = "0.0.0.0") -> CollectorRegistry:
    """Serve `counters` at http://host:port/metrics from a background thread; returns the registry."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(FlowCollector(counters))
    start_http_server(port, addr=host, registry=registry)
    return registry
